package storage

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/record"
)

// A clean runs while readers hold regions of the old segments and while
// appends, reads and flushes go on: held regions stay readable with their
// original bytes, and the result has the latest value of every key.
func TestCleanerConcurrentWithReadsAndAppends(t *testing.T) {
	tl := openTestLog(t, compactConfig())
	want := fillLog(t, tl, 40, 10, record.CodecNone)
	held, err := tl.Read(0, 1<<62, 1<<30, true)
	if err != nil {
		t.Fatal(err)
	}
	before := tl.allBatches()

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(2)
	var appended []string
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			key := fmt.Sprintf("new%d", i%5)
			b, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), tl.clock.Ms(), []record.Record{{Key: []byte(key), Value: []byte(fmt.Sprint(i))}})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := tl.Append(b, 0); err != nil {
				t.Error(err)
				return
			}
			appended = append(appended, key, fmt.Sprint(i))
			if i%10 == 0 {
				if err := tl.Flush(); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			res, err := tl.Read(tl.LogStartOffset(), 1<<62, 64<<10, true)
			if err != nil {
				t.Error(err)
				return
			}
			readBytes(t, res)
		}
	}()
	for range 3 {
		if _, err := tl.Clean(tl.clock.Now(), CleanOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()

	var old [][]byte
	if err := record.Split(readBytes(t, held), func(b []byte) error { old = append(old, b); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(old) != len(before) {
		t.Fatalf("held read has %d batches, the log had %d", len(old), len(before))
	}
	for i := range old {
		if !bytes.Equal(old[i], before[i]) {
			t.Fatalf("held batch %d changed under the reader", i)
		}
	}
	for i := 0; i < len(appended); i += 2 {
		want[appended[i]] = appended[i+1]
	}
	if got := latestValues(t, tl); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	tl.reopen()
	if got := latestValues(t, tl); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopen got %v\nwant %v", got, want)
	}
}

// A map cap far below the number of keys takes several passes, each
// continuing where the last stopped, to the same result as one big pass.
func TestCleanerPartialPasses(t *testing.T) {
	cfg := compactConfig()
	cfg.SegmentBytes = 8 << 10
	tl := openTestLog(t, cfg)
	want := fillLog(t, tl, 300, 6, record.CodecZstd)
	passes := 0
	for {
		st, err := tl.Clean(tl.clock.Now(), CleanOptions{Force: true, MaxMapEntries: 100})
		if err != nil {
			t.Fatal(err)
		}
		passes++
		if st.Keys > 110 {
			t.Fatalf("pass mapped %d keys, cap 100", st.Keys)
		}
		if !st.Partial {
			break
		}
		if passes > 100 {
			t.Fatal("cleaning does not converge")
		}
	}
	if passes < 5 {
		t.Errorf("%d passes; expected the cap to split the work", passes)
	}
	if got := latestValues(t, tl); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	tl.clock.Advance(2 * time.Second) // past delete.retention.ms: the next pass drops tombstones
	if _, err := tl.Clean(tl.clock.Now(), CleanOptions{}); err != nil {
		t.Fatal(err)
	}
	for k, n := range countRecords(t, tl) {
		if _, live := want[k]; !live || n != 1 {
			t.Errorf("key %s: %d records, live=%t", k, n, live)
		}
	}
}

func TestCleanerPicksDirtiest(t *testing.T) {
	mk := func(versions int, compact bool) *testLog {
		cfg := compactConfig()
		cfg.Compact = compact
		tl := openTestLog(t, cfg)
		fillLog(t, tl, 10, versions, record.CodecNone)
		if _, err := tl.Clean(tl.clock.Now(), CleanOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		fillLog(t, tl, 10, versions, record.CodecNone)
		return tl
	}
	a, b, plain := mk(2, true), mk(8, true), mk(20, false)
	c := NewCleaner(CleanerConfig{Now: a.clock.Now})
	logs := []*Log{plain.Log, a.Log, b.Log}
	l, st, err := c.CleanDirtiest(logs)
	if err != nil || l != b.Log || !st.Cleaned {
		t.Fatalf("first pick: %v %+v %v, want log b", l == b.Log, st, err)
	}
	l, _, err = c.CleanDirtiest(logs)
	if err != nil || l != a.Log {
		t.Fatalf("second pick: a=%v err=%v", l == a.Log, err)
	}
	l, _, err = c.CleanDirtiest(logs)
	if err != nil || l != nil {
		t.Fatalf("third pick: %v %v, want none", l, err)
	}
}

func TestThrottle(t *testing.T) {
	clock := newClock()
	var slept []time.Duration
	th := &Throttle{rate: 1000, now: clock.Now, sleep: func(d time.Duration) { slept = append(slept, d); clock.Advance(d) }}
	th.Wait(100) // 100 ms of budget used at once: sleep it off
	th.Wait(400)
	clock.Advance(2 * time.Second) // a new window
	th.Wait(10)
	want := []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 10 * time.Millisecond}
	if fmt.Sprint(slept) != fmt.Sprint(want) {
		t.Fatalf("slept %v, want %v", slept, want)
	}
	var unlimited *Throttle
	unlimited.Wait(1 << 30)
	NewThrottle(0).Wait(1 << 30)
}

// TestCleanerLoadsPendingCompactedLogs: a compacted log left dirty at a
// clean shutdown opens pending after it, and the cleaner still cleans it
// once time makes it eligible, though nothing reads or writes it; a
// pending log that is not compacted stays pending.
func TestCleanerLoadsPendingCompactedLogs(t *testing.T) {
	clock := newClock()
	var want map[string]string
	mk := func(name string, compact bool) *testLog {
		cfg := compactConfig()
		cfg.Compact = compact
		cfg.MinCompactionLagMs = int64(time.Hour / time.Millisecond) // not eligible before the restart
		tl := &testLog{t: t, dir: filepath.Join(t.TempDir(), name), cfg: cfg, clock: clock, opts: deferredOpts(clock)}
		tl.reopen()
		if w := fillLog(t, tl, 10, 8, record.CodecNone); compact {
			want = w
		}
		t.Cleanup(func() { tl.Close() })
		return tl
	}
	compacted, plain := mk("c-0", true), mk("p-0", false)
	c := NewCleaner(CleanerConfig{Now: clock.Now})
	if l, _, err := c.CleanDirtiest([]*Log{compacted.Log, plain.Log}); err != nil || l != nil {
		t.Fatalf("before the lag: cleaned %v (%v), want nothing", l != nil, err)
	}
	sizeBefore := compacted.Size()
	compacted.reopen()
	plain.reopen()
	if !compacted.pending.Load() || !plain.pending.Load() {
		t.Fatal("cleanly closed logs were loaded at Open")
	}
	clock.Advance(2 * time.Hour)
	l, st, err := c.CleanDirtiest([]*Log{compacted.Log, plain.Log})
	if err != nil || l != compacted.Log || !st.Cleaned {
		t.Fatalf("after the lag: compacted picked %v, %+v, %v", l == compacted.Log, st, err)
	}
	if compacted.Size() >= sizeBefore {
		t.Fatalf("size %d after cleaning, %d before", compacted.Size(), sizeBefore)
	}
	if !plain.pending.Load() {
		t.Fatal("the cleaner loaded a log that is not compacted")
	}
	if got := latestValues(t, compacted); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after cleaning: %v\nwant %v", got, want)
	}
}
