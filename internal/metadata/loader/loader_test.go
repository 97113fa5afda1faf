package loader

import (
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/metadata"
)

func entry(t *testing.T, recs ...metadata.Record) []byte {
	t.Helper()
	b, err := metadata.EncodeEntry(recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func topicEntry(t *testing.T, name string, id byte) []byte {
	uid := metadata.UUID{0: id}
	return entry(t, &metadata.TopicRecord{Name: name, ID: uid},
		&metadata.PartitionRecord{TopicID: uid, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1})
}

// recorder is a publisher that can be held (a slow publisher).
type recorder struct {
	mu     sync.Mutex
	deltas []*Delta
	hold   chan struct{} // when set, Publish waits for it before returning
	in     chan struct{} // signalled when Publish is entered
}

func (r *recorder) Publish(d *Delta) {
	if r.in != nil {
		r.in <- struct{}{}
	}
	if r.hold != nil {
		<-r.hold
	}
	r.mu.Lock()
	r.deltas = append(r.deltas, d)
	r.mu.Unlock()
}

func (r *recorder) seen() []*Delta {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Delta(nil), r.deltas...)
}

// await polls (with a deadline) until cond holds.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLoaderCoalesces: Apply never waits for a publisher; a publisher that
// is busy then sees one delta from what it saw last to the newest image,
// and a publisher registered late starts from the empty image.
func TestLoaderCoalesces(t *testing.T) {
	l := New(Options{})
	slow := &recorder{hold: make(chan struct{}), in: make(chan struct{}, 10)}
	l.Register(slow)
	l.Start()
	defer l.Close()

	if err := l.Apply(1, topicEntry(t, "a", 1)); err != nil {
		t.Fatal(err)
	}
	<-slow.in // the publisher holds the first delta
	// The quorum goes on meanwhile.
	for i, name := range []string{"b", "c", "d"} {
		if err := l.Apply(uint64(2+i), topicEntry(t, name, byte(2+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Apply(5, entry(t, &metadata.RemoveTopicRecord{ID: metadata.UUID{0: 3}})); err != nil {
		t.Fatal(err)
	}
	if got := l.Image().Offset; got != 5 {
		t.Fatalf("image offset %d while a publisher is busy, want 5", got)
	}
	slow.hold <- struct{}{}
	<-slow.in
	slow.hold <- struct{}{}
	await(t, "the second delta", func() bool { return len(slow.seen()) == 2 })
	ds := slow.seen()
	if ds[0].Prev.Offset != -1 || ds[0].Image.Offset != 1 || ds[1].Prev != ds[0].Image || ds[1].Image.Offset != 5 {
		t.Fatalf("deltas span %d..%d then %d..%d, want -1..1 then 1..5", ds[0].Prev.Offset, ds[0].Image.Offset, ds[1].Prev.Offset, ds[1].Image.Offset)
	}
	var created []string
	for _, c := range ds[1].Topics() {
		created = append(created, c.Name)
	}
	if len(created) != 2 || created[0] != "b" || created[1] != "d" {
		t.Fatalf("merged delta's topics %v, want [b d] (c came and went)", created)
	}
	close(slow.hold)

	late := &recorder{}
	l.Register(late)
	await(t, "the late publisher's first delta", func() bool { return len(late.seen()) == 1 })
	if d := late.seen()[0]; d.Prev.Offset != -1 || d.Image.Offset != 5 || len(d.Topics()) != 3 {
		t.Fatalf("late publisher's first delta: %d..%d with %d topics", d.Prev.Offset, d.Image.Offset, len(d.Topics()))
	}
}

// TestLoaderRejected: an entry the image refuses is skipped, its reason
// kept once for the proposer, and publishers still see the offset move.
func TestLoaderRejected(t *testing.T) {
	l := New(Options{})
	r := &recorder{}
	l.Register(r)
	l.Start()
	defer l.Close()
	if err := l.Apply(1, entry(t, &metadata.RemoveTopicRecord{ID: metadata.UUID{0: 9}})); err != nil {
		t.Fatal(err)
	}
	if err := l.Rejected(1); err == nil {
		t.Fatal("Rejected(1) = nil for an entry removing an unknown topic")
	}
	if err := l.Rejected(1); err != nil {
		t.Fatalf("Rejected(1) a second time = %v", err)
	}
	await(t, "the skipped offset published", func() bool {
		ds := r.seen()
		return len(ds) == 1 && ds[0].Image.Offset == 1 && ds[0].LocalChanges(1).Empty()
	})
	if err := l.Apply(1, topicEntry(t, "a", 1)); err != nil || l.Image().Topics["a"] != nil {
		t.Fatalf("an entry at an offset already applied changed the image (err %v)", err)
	}
}

// TestLoaderRestore: a snapshot replaces the image, and publishers get the
// full comparison with what they had.
func TestLoaderRestore(t *testing.T) {
	src := New(Options{})
	if err := src.Apply(1, topicEntry(t, "a", 1)); err != nil {
		t.Fatal(err)
	}
	if err := src.Apply(2, topicEntry(t, "b", 2)); err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	l := New(Options{})
	if err := l.Apply(1, topicEntry(t, "a", 1)); err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	l.Register(r)
	if err := l.Restore(snap, 2); err != nil {
		t.Fatal(err)
	}
	l.Start()
	defer l.Close()
	await(t, "the restored image published", func() bool { ds := r.seen(); return len(ds) > 0 && ds[len(ds)-1].Image.Offset == 2 })
	ds := r.seen()
	if len(ds) != 1 || ds[0].Prev.Offset != -1 {
		t.Fatalf("want one delta from the empty image, got %d", len(ds))
	}
	lc := ds[0].LocalChanges(1)
	if len(lc.Leaders) != 2 || lc.Leaders[0].Topic != "a" || lc.Leaders[1].Topic != "b" {
		t.Fatalf("local changes after restore: %+v", lc)
	}
	if err := l.Restore([]byte{0xff}, 3); err == nil {
		t.Fatal("Restore of a corrupt snapshot succeeded")
	}
}

// TestWaitFor: WaitFor wakes on the image change that satisfies its
// condition, and gives up at its timeout.
func TestWaitFor(t *testing.T) {
	l := New(Options{})
	done := make(chan bool)
	go func() {
		done <- l.WaitFor(func(img *metadata.Image) bool { return img.Topics["a"] != nil }, time.Minute)
	}()
	if err := l.Apply(1, topicEntry(t, "a", 1)); err != nil {
		t.Fatal(err)
	}
	if !<-done {
		t.Fatal("WaitFor did not see the topic")
	}
	if l.WaitFor(func(img *metadata.Image) bool { return img.Topics["never"] != nil }, 10*time.Millisecond) {
		t.Fatal("WaitFor held for a topic that does not exist")
	}
}

// TestCloseWaitsForPublisher: Close returns after the publisher in
// progress has, and nothing is published after it.
func TestCloseWaitsForPublisher(t *testing.T) {
	l := New(Options{})
	r := &recorder{hold: make(chan struct{}), in: make(chan struct{}, 1)}
	l.Register(r)
	l.Start()
	if err := l.Apply(1, topicEntry(t, "a", 1)); err != nil {
		t.Fatal(err)
	}
	<-r.in
	closed := make(chan struct{})
	go func() { l.Close(); close(closed) }()
	close(r.hold)
	<-closed
	if n := len(r.seen()); n != 1 {
		t.Fatalf("Close returned with %d deltas published, want the one in progress", n)
	}
	if err := l.Apply(2, topicEntry(t, "b", 2)); err != nil {
		t.Fatal(err)
	}
	if n := len(r.seen()); n != 1 {
		t.Fatalf("%d deltas published, want 1 (none after Close)", n)
	}
}
