package replication

import "testing"

func rung(w *Waiter) bool { return closed(w.C()) }

// TestWaiterWatch: a watching Waiter is rung by an append to any partition it
// watches, keeps a ring that lands before anyone waits, coalesces rings,
// and is not rung once it has stopped watching.
func TestWaiterWatch(t *testing.T) {
	p := hostOne(t, false)
	w := NewWaiter()
	if rung(w) {
		t.Fatal("a new Waiter is rung")
	}
	p.Watch(w)
	p.Watch(w) // twice is once
	for range 3 {
		if _, err := p.Append(buildBatch(t, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if !rung(w) {
		t.Fatal("appends did not ring the watcher")
	}
	if rung(w) {
		t.Fatal("three rings were not coalesced into one")
	}
	wake(p) // a role change rings too
	if !rung(w) {
		t.Fatal("a role change did not ring the watcher")
	}
	p.Unwatch(w)
	if _, err := p.Append(buildBatch(t, 1)); err != nil {
		t.Fatal(err)
	}
	if rung(w) {
		t.Fatal("an append rang a Waiter that stopped watching")
	}
	p.mu.Lock()
	n := len(p.watchers)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d watchers left after Unwatch", n)
	}
}
