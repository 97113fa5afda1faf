package storage

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/record"
)

// manualClock is an injected clock tests move by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *manualClock { return &manualClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *manualClock) Ms() int64 { return c.Now().UnixMilli() }

// testConfig is a small-segment configuration for tests.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 256
	cfg.RetentionMs = -1
	return cfg
}

type testLog struct {
	*Log
	t     testing.TB
	dir   string
	cfg   Config
	opts  Options
	clock *manualClock
}

func openTestLog(t testing.TB, cfg Config) *testLog {
	t.Helper()
	clock := newClock()
	tl := &testLog{t: t, dir: t.TempDir(), cfg: cfg, clock: clock, opts: Options{Now: clock.Now}}
	tl.reopen()
	t.Cleanup(func() {
		if tl.Log != nil {
			tl.Log.Close()
		}
	})
	return tl
}

// reopen closes the log cleanly (if open) and opens it again.
func (tl *testLog) reopen() {
	tl.t.Helper()
	if tl.Log != nil {
		if err := tl.Log.Close(); err != nil {
			tl.t.Fatalf("close: %v", err)
		}
	}
	tl.Log = nil
	l, err := Open(tl.dir, tl.cfg, tl.opts)
	if err != nil {
		tl.t.Fatalf("open: %v", err)
	}
	tl.Log = l
}

// crash abandons the log without a clean shutdown: the files stay as they
// are (the page cache survives a process crash), the marker is not written.
func (tl *testLog) crash() {
	tl.t.Helper()
	l := tl.Log
	tl.Log = nil
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.bg.Wait()
	for _, s := range l.segs {
		s.release()
	}
}

// reopenErr opens the log dir without failing the test.
func (tl *testLog) reopenErr() error {
	l, err := Open(tl.dir, tl.cfg, tl.opts)
	if err == nil {
		tl.Log = l
	}
	return err
}

type batchSpec struct {
	n       int   // records
	size    int   // value bytes per record
	ts      int64 // first timestamp
	tsDelta []int64
	pid     int64
	epoch   int16
	seq     int32
	codec   record.Codec
}

// makeBatch builds a batch; values are filled with a pattern derived from
// the first timestamp so batches differ.
func makeBatch(t testing.TB, sp batchSpec) []byte {
	t.Helper()
	if sp.n == 0 {
		sp.n = 1
	}
	recs := make([]record.Record, sp.n)
	for i := range recs {
		v := bytes.Repeat([]byte{byte(sp.ts + int64(i))}, sp.size)
		recs[i] = record.Record{OffsetDelta: int32(i), Key: []byte(fmt.Sprintf("k%d", i)), Value: v}
		if i < len(sp.tsDelta) {
			recs[i].TimestampDelta = sp.tsDelta[i]
		}
	}
	opts := record.NewBatchOptions(sp.codec)
	if sp.pid > 0 {
		opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = sp.pid, sp.epoch, sp.seq
	}
	b, err := record.Build(nil, opts, sp.ts, recs)
	if err != nil {
		t.Fatalf("build batch: %v", err)
	}
	return b
}

func (tl *testLog) mustAppend(b []byte) AppendResult {
	tl.t.Helper()
	res, err := tl.Append(b, 0)
	if err != nil {
		tl.t.Fatalf("append: %v", err)
	}
	return res
}

// readAll reads the bytes of a ReadResult and releases it.
func readBytes(t testing.TB, res ReadResult) []byte {
	t.Helper()
	defer res.Release()
	var out []byte
	for _, r := range res.Regions {
		b := make([]byte, r.Len)
		if _, err := r.File.ReadAt(b, r.Offset); err != nil {
			t.Fatalf("read region: %v", err)
		}
		out = append(out, b...)
	}
	if int64(len(out)) != res.Size {
		t.Fatalf("regions hold %d bytes, Size says %d", len(out), res.Size)
	}
	return out
}

// splitBatches validates and splits concatenated batches.
func splitBatches(t testing.TB, b []byte) []record.Header {
	t.Helper()
	var hs []record.Header
	err := record.Split(b, func(batch []byte) error {
		h, err := record.Validate(batch)
		hs = append(hs, h)
		return err
	})
	if err != nil {
		t.Fatalf("split read data: %v", err)
	}
	return hs
}

// appendMany appends count batches of 1..3 records with increasing
// timestamps and returns copies of the stored batches.
func (tl *testLog) appendMany(count int, size int) [][]byte {
	tl.t.Helper()
	var stored [][]byte
	for i := range count {
		b := makeBatch(tl.t, batchSpec{n: 1 + i%3, size: size, ts: 1000 + int64(i)*10})
		tl.mustAppend(b)
		stored = append(stored, b) // Append rewrote it in place
	}
	return stored
}

func (tl *testLog) allBatches() [][]byte {
	tl.t.Helper()
	var out [][]byte
	err := tl.ForEachBatch(0, func(b []byte) error {
		out = append(out, bytes.Clone(b))
		return nil
	})
	if err != nil {
		tl.t.Fatalf("ForEachBatch: %v", err)
	}
	return out
}

func (tl *testLog) segmentCount() int {
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	return len(tl.segs)
}
