package fetchsession

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestCacheConcurrent runs fetchers against a cache too small for them
// all (sessions get evicted under them) and checks that every answer is a
// valid one and that the cache's counts stay consistent with its sessions.
func TestCacheConcurrent(t *testing.T) {
	c := NewCache(Config{Slots: 4})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var id, epoch int32
			for i := range 500 {
				r := Request{SessionID: id, Epoch: epoch, Privileged: g%2 == 0}
				if epoch == 0 {
					for p := range g + 1 {
						r.Partitions = append(r.Partitions, Partition{Key: Key{Topic: fmt.Sprint("t", g), Partition: int32(p)}, Params: Params{FetchOffset: int64(i)}})
					}
				} else if i%3 == 0 {
					r.Partitions = []Partition{{Key: Key{Topic: fmt.Sprint("t", g)}, Params: Params{FetchOffset: int64(i)}}}
				}
				x, err := c.NewContext(r)
				if err != nil {
					if !errors.Is(err, ErrSessionNotFound) {
						t.Errorf("fetcher %d: %v", g, err)
						return
					}
					id, epoch = 0, 0 // evicted: start over
					continue
				}
				res := make([]Result, len(x.Partitions()))
				got, include := x.Finish(res)
				if len(include) != len(res) {
					t.Errorf("fetcher %d: %d inclusions for %d partitions", g, len(include), len(res))
					return
				}
				switch {
				case got == 0:
					id, epoch = 0, 0
				case x.Kind() == Full:
					id, epoch = got, 1
				default:
					epoch = NextEpoch(epoch)
				}
			}
		}()
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := 0
	for _, s := range c.sessions {
		sum += len(s.parts)
	}
	if len(c.sessions) > 4 || sum != c.partitions {
		t.Fatalf("%d sessions holding %d partitions, counted %d", len(c.sessions), sum, c.partitions)
	}
}
