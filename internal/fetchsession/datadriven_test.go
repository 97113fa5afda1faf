package fetchsession

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestCacheDataDriven drives a cache through the scripts in testdata/,
// with a manual clock and session ids 1, 2, 3... Commands:
//
//	cache slots=N [evict-after=S]      (a new, empty cache; S seconds)
//	advance s=N                        (the manual clock)
//	fetch [id=I] epoch=E [ids] [follower] [parts=t:p@off,...] [forget=t:p,...]
//	  <t:p> [hw=H] [ls=L] [records] [error] [diverging]   (one line per partition read)
//	                                   (a fetch: what is read, then what the response carries)
//	sessions                           (every session: id, class, epoch, partitions in order)
//
// Partitions not given a result line read hw=0 ls=0, nothing new. With
// ids, t is a topic id (one hex byte, the rest zero) and the name is empty.
func TestCacheDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := &cacheHarness{now: time.Unix(1000, 0)}
		h.reset(1000, DefaultEvictAfter)
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return h.run(t, td)
		})
	})
}

type cacheHarness struct {
	now    time.Time
	nextID int32
	c      *Cache
}

func (h *cacheHarness) reset(slots int, evictAfter time.Duration) {
	h.nextID = 0
	h.c = NewCache(Config{Slots: slots, EvictAfter: evictAfter, Now: func() time.Time { return h.now },
		NewID: func() int32 { h.nextID++; return h.nextID }})
}

func parseKey(t *testing.T, s string, ids bool) Key {
	t.Helper()
	topic, part, ok := strings.Cut(s, ":")
	if !ok {
		t.Fatalf("partition %q: want topic:partition", s)
	}
	p, err := strconv.Atoi(part)
	if err != nil {
		t.Fatalf("partition %q: %v", s, err)
	}
	k := Key{Topic: topic, Partition: int32(p)}
	if ids {
		b, err := strconv.ParseUint(topic, 16, 8)
		if err != nil {
			t.Fatalf("topic id %q: want one hex byte", topic)
		}
		k = Key{Partition: int32(p)}
		k.TopicID[0] = byte(b)
	}
	return k
}

func keyString(k Key) string {
	if k.Topic == "" {
		return fmt.Sprintf("%x:%d", k.TopicID[0], k.Partition)
	}
	return fmt.Sprintf("%s:%d", k.Topic, k.Partition)
}

func (h *cacheHarness) run(t *testing.T, td *datadriven.TestData) string {
	intArg := func(key string, def int) int {
		for _, a := range td.CmdArgs {
			if a.Key == key {
				v, err := strconv.Atoi(a.Vals[0])
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				return v
			}
		}
		return def
	}
	listArg := func(key string) []string {
		for _, a := range td.CmdArgs {
			if a.Key == key {
				return a.Vals
			}
		}
		return nil
	}
	switch td.Cmd {
	case "cache":
		h.reset(intArg("slots", 1000), time.Duration(intArg("evict-after", 120))*time.Second)
		return "ok"
	case "advance":
		h.now = h.now.Add(time.Duration(intArg("s", 0)) * time.Second)
		return fmt.Sprintf("t=%ds", h.now.Unix()-1000)
	case "sessions":
		return h.sessions()
	case "fetch":
		return h.fetch(t, td, intArg, listArg)
	}
	t.Fatalf("unknown command %q", td.Cmd)
	return ""
}

func (h *cacheHarness) fetch(t *testing.T, td *datadriven.TestData, intArg func(string, int) int, listArg func(string) []string) string {
	ids, follower := td.HasArg("ids"), td.HasArg("follower")
	r := Request{SessionID: int32(intArg("id", 0)), Epoch: int32(intArg("epoch", 0)), TopicIDs: ids, Privileged: follower}
	for _, s := range listArg("parts") {
		name, off, ok := strings.Cut(s, "@")
		if !ok {
			t.Fatalf("part %q: want t:p@offset", s)
		}
		o, err := strconv.ParseInt(off, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		r.Partitions = append(r.Partitions, Partition{Key: parseKey(t, name, ids),
			Params: Params{FetchOffset: o, LogStartOffset: -1, MaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1}})
	}
	for _, s := range listArg("forget") {
		r.Forgotten = append(r.Forgotten, parseKey(t, s, ids))
	}
	results := map[Key]Result{}
	for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var res Result
		for _, w := range f[1:] {
			k, v, _ := strings.Cut(w, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "hw":
				res.HighWatermark = n
			case "ls":
				res.LogStartOffset = n
			case "records":
				res.HasRecords = true
			case "error":
				res.Error = true
			case "diverging":
				res.Diverging = true
			default:
				t.Fatalf("result %q", w)
			}
		}
		results[parseKey(t, f[0], ids)] = res
	}
	x, err := h.c.NewContext(r)
	if err != nil {
		switch {
		case errors.Is(err, ErrSessionNotFound):
			return "error FETCH_SESSION_ID_NOT_FOUND"
		case errors.Is(err, ErrInvalidEpoch):
			return "error INVALID_FETCH_SESSION_EPOCH"
		case errors.Is(err, ErrTopicIDMismatch):
			return "error FETCH_SESSION_TOPIC_ID_ERROR"
		}
		return "error " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s", x.Kind())
	if x.Closed != 0 {
		fmt.Fprintf(&b, " (closed session %d)", x.Closed)
	}
	b.WriteString("\nread:")
	parts := x.Partitions()
	res := make([]Result, len(parts))
	for i, p := range parts {
		fmt.Fprintf(&b, " %s@%d", keyString(p.Key), p.FetchOffset)
		res[i] = results[p.Key]
	}
	id, include := x.Finish(res)
	fmt.Fprintf(&b, "\nresponse session=%d:", id)
	for i, p := range parts {
		if include[i] {
			fmt.Fprintf(&b, " %s", keyString(p.Key))
		}
	}
	return b.String()
}

func (h *cacheHarness) sessions() string {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []int32
	for id := range c.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	for _, id := range ids {
		s := c.sessions[id]
		class := "consumer"
		if s.privileged {
			class = "follower"
		}
		fmt.Fprintf(&b, "%d %s epoch=%d:", id, class, s.epoch)
		for _, cp := range s.parts {
			fmt.Fprintf(&b, " %s@%d", keyString(cp.Key), cp.FetchOffset)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "stats: sessions=%d partitions=%d evictions=%d", len(c.sessions), c.partitions, c.evictions)
	return b.String()
}
