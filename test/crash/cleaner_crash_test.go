package crash

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const compactedTopic = "compacted"

// keyState is what the producer knows about one key: the sequence number
// and offset of its last acknowledged write.
type keyState struct {
	seq    int64
	offset int64
}

// keyAcks records the acknowledged writes per key of a compacted topic.
type keyAcks struct {
	mu    sync.Mutex
	last  map[string]keyState
	count int
}

func (a *keyAcks) add(r *kgo.Record, seq int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count++
	// Acks of one partition arrive in offset order, so the last ack is the
	// latest write.
	if prev, ok := a.last[string(r.Key)]; !ok || seq > prev.seq {
		a.last[string(r.Key)] = keyState{seq: seq, offset: r.Offset}
	}
}

// TestCrashKill9DuringCleaning kills the broker with SIGKILL while the log
// cleaner is compacting a topic under sustained keyed produce, many times
// in a row. The cleaner runs back to back (log.cleaner.backoff.ms=10, tiny
// segments, any dirt is enough), so kills land during its passes and swaps.
// After each restart the whole log is read back: offsets ascend, each key's
// writes appear in the order they were made and at most once, and every
// key's latest acknowledged write (value or tombstone) is still there at
// the offset it was acknowledged with, unless a later write of the key
// replaced it.
func TestCrashKill9DuringCleaning(t *testing.T) {
	rounds := 20
	if n, err := strconv.Atoi(os.Getenv("STRATA_CRASH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	p := &process{t: t, bin: binary(t), dir: t.TempDir(), addr: freeAddr(t),
		args: []string{"--set", "log.cleaner.backoff.ms=10"}}
	p.start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := map[string]*string{
		"cleanup.policy":            new("compact"),
		"segment.bytes":             new("16384"),
		"min.cleanable.dirty.ratio": new("0.01"),
		"delete.retention.ms":       new("3600000"), // tombstones stay: every key stays checkable
	}
	producer := newProducer(t, ctx, p, compactedTopic, 1, cfg)

	ack := &keyAcks{last: map[string]keyState{}}
	var seq int64
	produceTick := func() {
		for range 10 {
			seq++
			s := seq
			key := fmt.Sprintf("k%03d", rand.IntN(200))
			r := &kgo.Record{Key: []byte(key), Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(strconv.FormatInt(s, 10))}}}
			if s%17 != 0 { // every 17th write is a tombstone
				r.Value = fmt.Appendf(nil, "%s=%d", key, s)
			}
			producer.Produce(ctx, r, func(r *kgo.Record, err error) {
				if err == nil {
					ack.add(r, s)
				}
			})
		}
	}
	var read int64
	killRounds(t, ctx, p, producer, rounds, produceTick, func(round int) { read = verifyCompacted(t, p, ack, round) })
	p.stop()
	logText, _ := os.ReadFile(filepath.Join(p.dir, "strata.log"))
	passes := strings.Count(string(logText), `msg="cleaned log"`)
	finished := strings.Count(string(logText), "completing an interrupted cleaner swap")
	discarded := strings.Count(string(logText), "discarding unfinished cleaner output")
	ack.mu.Lock()
	defer ack.mu.Unlock()
	t.Logf("%d rounds: %d writes acknowledged, %d records left in the log, %d cleaner passes logged; at restarts %d interrupted swaps completed, %d unfinished cleaner files discarded",
		rounds, ack.count, read, passes, finished, discarded)
	if passes == 0 || read >= int64(ack.count) {
		t.Fatalf("the cleaner did not run: %d passes, %d records read of %d acknowledged", passes, read, ack.count)
	}
}

// verifyCompacted reads the compacted partition from its start to its end
// and checks it against the acknowledged writes; it returns the number of
// records read.
func verifyCompacted(t *testing.T, p *process, ack *keyAcks, round int) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	end, _ := endOffsets(t, ctx, p, compactedTopic, round).Lookup(compactedTopic, 0)
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{compactedTopic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	type seen struct {
		seq    int64
		offset int64
	}
	last := map[string]seen{}
	var read int64
	prevOffset := int64(-1)
	for prevOffset < end.Offset-1 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("round %d: read up to offset %d of %d before timing out", round, prevOffset, end.Offset)
		}
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Fatalf("round %d: fetch: %v", round, e.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			if r.Offset <= prevOffset {
				t.Fatalf("round %d: offset %d after %d", round, r.Offset, prevOffset)
			}
			prevOffset = r.Offset
			if len(r.Headers) != 1 || r.Headers[0].Key != "seq" {
				t.Fatalf("round %d: record at %d lost its header: %v", round, r.Offset, r.Headers)
			}
			s, err := strconv.ParseInt(string(r.Headers[0].Value), 10, 64)
			if err != nil {
				t.Fatalf("round %d: record at %d: bad seq header %q", round, r.Offset, r.Headers[0].Value)
			}
			k := string(r.Key)
			if r.Value != nil && string(r.Value) != fmt.Sprintf("%s=%d", k, s) {
				t.Fatalf("round %d: record at %d: key %s seq %d has value %q", round, r.Offset, k, s, r.Value)
			}
			if prev, ok := last[k]; ok && s <= prev.seq {
				t.Fatalf("round %d: key %s: seq %d at offset %d after seq %d at %d", round, k, s, r.Offset, prev.seq, prev.offset)
			}
			last[k] = seen{seq: s, offset: r.Offset}
		})
	}
	ack.mu.Lock()
	defer ack.mu.Unlock()
	for k, a := range ack.last {
		got, ok := last[k]
		switch {
		case !ok:
			t.Fatalf("round %d: key %s (last acknowledged seq %d at offset %d) is gone", round, k, a.seq, a.offset)
		case got.seq < a.seq:
			t.Fatalf("round %d: key %s ends at seq %d (offset %d), but seq %d was acknowledged at offset %d", round, k, got.seq, got.offset, a.seq, a.offset)
		case got.seq == a.seq && got.offset != a.offset:
			t.Fatalf("round %d: key %s seq %d at offset %d, acknowledged at %d", round, k, a.seq, got.offset, a.offset)
		}
	}
	t.Logf("round %d: %d records in [0, %d), %d keys, all latest acknowledged writes present", round, read, end.Offset, len(last))
	return read
}
