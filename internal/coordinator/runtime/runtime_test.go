package runtime

import (
	"errors"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/record"
)

// counter is a state machine: the sum of the values' lengths.
type counter struct{ n int }

func (c *counter) Replay(batch []byte) error {
	return record.ForEach(batch, func(r *record.Record) error {
		c.n += len(r.Value)
		return nil
	})
}

func add(k int) Op[*counter] {
	return func(c *counter) Result {
		return Result{Records: []Record{{Key: []byte("k"), Value: make([]byte, k)}}, Value: c.n + k}
	}
}

func read(c *counter) Result { return Result{Value: c.n} }

func await(t *testing.T, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
	return answer{}
}

type answer struct {
	v   any
	err error
}

func submit(r *Runtime[*counter], p int32, op Op[*counter]) <-chan answer {
	ch := make(chan answer, 1)
	r.Submit(p, op, func(v any, err error) { ch <- answer{v, err} })
	return ch
}

func TestAnswersWaitForDurability(t *testing.T) {
	r := New[*counter](Options{WriteTimeout: time.Minute})
	defer r.Close()
	log := NewMemLog(false)
	loaded := make(chan answer, 1)
	r.Load(0, 1, log, &counter{}, read, func(v any, err error) { loaded <- answer{v, err} })
	if a := await(t, loaded); a.err != nil || a.v != 0 {
		t.Fatalf("loaded: %+v", a)
	}
	w := submit(r, 0, add(3))
	rd := submit(r, 0, read)
	for deadline := time.Now().Add(10 * time.Second); log.EndOffset() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the write never reached the log")
		}
	}
	// Neither the write nor the read after it may answer before the
	// write is durable.
	select {
	case a := <-w:
		t.Fatalf("write answered before durable: %+v", a)
	case a := <-rd:
		t.Fatalf("read answered before the write it saw was durable: %+v", a)
	default:
	}
	log.SetDurable(1)
	if a := await(t, w); a.err != nil || a.v != 3 {
		t.Fatalf("write: %+v", a)
	}
	if a := await(t, rd); a.err != nil || a.v != 3 {
		t.Fatalf("read: %+v", a)
	}
}

func TestReloadReplaysAndUnloadFailsWaiters(t *testing.T) {
	r := New[*counter](Options{WriteTimeout: time.Minute})
	defer r.Close()
	log := NewMemLog(true)
	r.Load(0, 1, log, &counter{}, nil, nil)
	waitLoaded(t, r, 0)
	for _, k := range []int{1, 2, 4} {
		if a := await(t, submit(r, 0, add(k))); a.err != nil {
			t.Fatal(a.err)
		}
	}
	// A write that never becomes durable is answered NOT_COORDINATOR when
	// the shard is unloaded.
	log2 := log.Reopen(false)
	r.Load(0, 2, log2, &counter{}, nil, nil)
	waitLoaded(t, r, 0)
	if a := await(t, submit(r, 0, read)); a.v != 7 {
		t.Fatalf("reloaded state %v, want 7", a.v)
	}
	w := submit(r, 0, add(1))
	r.Unload(0)
	if a := await(t, w); !errors.Is(a.err, ErrNotCoordinator) {
		t.Fatalf("pending write after unload: %+v", a)
	}
	if a := await(t, submit(r, 0, read)); !errors.Is(a.err, ErrNotCoordinator) {
		t.Fatalf("op on an unloaded partition: %+v", a)
	}
}

func TestLeadershipLossFailsWrite(t *testing.T) {
	r := New[*counter](Options{WriteTimeout: time.Minute})
	defer r.Close()
	log := NewMemLog(false)
	r.Load(3, 1, log, &counter{}, nil, nil)
	waitLoaded(t, r, 3)
	w := submit(r, 3, add(1))
	log.Resign()
	if a := await(t, w); !errors.Is(a.err, ErrNotCoordinator) {
		t.Fatalf("write after resign: %+v", a)
	}
	if a := await(t, submit(r, 3, add(1))); !errors.Is(a.err, ErrNotCoordinator) {
		t.Fatalf("append after resign: %+v", a)
	}
}

func waitLoaded(t *testing.T, r *Runtime[*counter], p int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := await(t, submit(r, p, read))
		if !errors.Is(a.err, ErrLoading) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("partition never loaded")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestEffectsOfALateDurableWrite: a write whose answer timed out (not
// durable in time) still runs its AfterDurable once it becomes durable:
// the state already holds it, so its effects (a coordinator's markers)
// must follow.
func TestEffectsOfALateDurableWrite(t *testing.T) {
	r := New[*counter](Options{WriteTimeout: time.Millisecond})
	defer r.Close()
	log := NewMemLog(false)
	r.Load(0, 1, log, &counter{}, nil, nil)
	waitLoaded(t, r, 0)
	ran := make(chan struct{})
	w := submit(r, 0, func(c *counter) Result {
		res := add(1)(c)
		res.AfterDurable = func() { close(ran) }
		return res
	})
	if a := await(t, w); !errors.Is(a.err, ErrNotAvailable) {
		t.Fatalf("answer of a write not durable in time: %+v", a)
	}
	select {
	case <-ran:
		t.Fatal("effects ran before the write was durable")
	default:
	}
	log.SetDurable(1)
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("effects of the write never ran once it was durable")
	}
}

// TestAppendRefused: an append the leader refuses (fewer in-sync replicas
// than min.insync.replicas) is retriable (ErrNotAvailable), not
// ErrNotCoordinator, and changes no state; once the log takes appends
// again, the same operation goes through. A lost leadership is still
// ErrNotCoordinator.
func TestAppendRefused(t *testing.T) {
	r := New[*counter](Options{WriteTimeout: time.Minute})
	defer r.Close()
	log := NewMemLog(true)
	loaded := make(chan answer, 1)
	r.Load(0, 1, log, &counter{}, read, func(v any, err error) { loaded <- answer{v, err} })
	await(t, loaded)
	log.FailAppends(errors.New("not enough replicas"))
	if a := await(t, submit(r, 0, add(2))); !errors.Is(a.err, ErrNotAvailable) || errors.Is(a.err, ErrNotCoordinator) {
		t.Fatalf("refused append answered %v, want ErrNotAvailable", a.err)
	}
	if a := await(t, submit(r, 0, read)); a.err != nil || a.v != 0 {
		t.Fatalf("state after a refused append: %+v, want 0", a)
	}
	log.FailAppends(nil)
	if a := await(t, submit(r, 0, add(2))); a.err != nil || a.v != 2 {
		t.Fatalf("append after recovery: %+v", a)
	}
	log.Resign()
	if a := await(t, submit(r, 0, add(1))); !errors.Is(a.err, ErrNotCoordinator) {
		t.Fatalf("append after resigning answered %v, want ErrNotCoordinator", a.err)
	}
}

// TestEffectsAtLoadWhileTheISRIsShort: a new leader loads a log whose
// records are below the high watermark while its ISR is below
// min.insync.replicas, so the log answers "not durable" at once instead of
// waiting (what a transaction coordinator met in the chaos harness: the
// markers of the transactions it found prepared were never sent). The
// effects of the load must run once the ISR is back, and not before.
func TestEffectsAtLoadWhileTheISRIsShort(t *testing.T) {
	first := NewMemLog(true)
	r := New[*counter](Options{WriteTimeout: time.Minute, RetryBackoff: time.Millisecond})
	defer r.Close()
	r.Load(0, 1, first, &counter{}, nil, nil)
	waitLoaded(t, r, 0)
	if a := await(t, submit(r, 0, add(2))); a.err != nil {
		t.Fatal(a.err)
	}
	r.Unload(0)

	first.SetShortISR(true)
	log := first.Reopen(false)
	ran := make(chan struct{})
	loaded := make(chan answer, 1)
	resume := func(c *counter) Result { return Result{Value: c.n, AfterDurable: func() { close(ran) }} }
	r.Load(0, 2, log, &counter{}, resume, func(v any, err error) { loaded <- answer{v, err} })
	if a := await(t, loaded); !errors.Is(a.err, ErrNotAvailable) {
		t.Fatalf("load answered %+v with the ISR short, want not available", a)
	}
	// The answer's wait and the first wait for the late effects were
	// both refused before the ISR grows back.
	for deadline := time.Now().Add(10 * time.Second); log.Refused() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d refused waits, want 2", log.Refused())
		}
	}
	select {
	case <-ran:
		t.Fatal("effects of the load ran while the ISR was short")
	default:
	}
	log.SetShortISR(false)
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("effects of the load never ran once the ISR was back")
	}
}
