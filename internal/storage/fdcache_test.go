package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratalog/strata/internal/record"
)

// openSegmentFDs counts this process's descriptors open on segment (.log)
// files under root, from /proc/self/fd: what the cache bounds, seen by the
// kernel rather than by the cache's own counter.
func openSegmentFDs(t testing.TB, root string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // closed since the listing
		}
		if strings.HasPrefix(target, root+string(filepath.Separator)) &&
			(strings.HasSuffix(target, logSuffix) || strings.HasSuffix(target, logSuffix+deletedSuffix) ||
				strings.HasSuffix(target, logSuffix+deletedSuffix+" (deleted)") || strings.HasSuffix(target, logSuffix+" (deleted)")) {
			n++
		}
	}
	return n
}

// oneRecordBatch is the batch appended at offset off in these tests: one
// record whose first timestamp encodes its offset, so a reader can tell a
// batch read from the wrong file or position.
func oneRecordBatch(t testing.TB, off int64) []byte {
	return makeBatch(t, batchSpec{n: 1, size: 100, ts: 1_000_000 + off})
}

// checkBatchesAt validates the batches of b (CRCs) and that they are the
// ones appended at offsets from want on, one record each.
func checkBatchesAt(b []byte, want int64) (int64, error) {
	n := int64(0)
	err := record.Split(b, func(batch []byte) error {
		h, err := record.Validate(batch)
		if err != nil {
			return err
		}
		if h.BaseOffset != want+n || h.FirstTimestamp != 1_000_000+h.BaseOffset {
			return fmt.Errorf("batch at offset %d (timestamp %d), want offset %d", h.BaseOffset, h.FirstTimestamp, want+n)
		}
		n++
		return nil
	})
	return n, err
}

// TestFDCacheBoundsOpenFiles: many logs with several segments each share a
// cache of 3 descriptors; appends, reads of every offset, a clean restart
// and a crash keep at most 3 segment files open, and every record reads
// back as written.
func TestFDCacheBoundsOpenFiles(t *testing.T) {
	root := t.TempDir()
	cache := NewFDCache(3, nil)
	cfg := testConfig()
	cfg.SegmentBytes = 1024 // a few batches per segment
	clock := newClock()
	opts := Options{Now: clock.Now, FDCache: cache, Lazy: true}
	const logs, perLog = 8, 40
	open := func() []*Log {
		var ls []*Log
		for i := range logs {
			l, err := Open(filepath.Join(root, fmt.Sprintf("t-%d", i)), cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			ls = append(ls, l)
		}
		return ls
	}
	ls := open()
	for off := range int64(perLog) {
		for _, l := range ls {
			if _, err := l.Append(oneRecordBatch(t, off), 0); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range ls {
			l.bg.Wait() // the flush a roll queues pins files while it runs
		}
		if n := openSegmentFDs(t, root); n > cache.Size() {
			t.Fatalf("after appending offset %d: %d segment files open, cache size %d", off, n, cache.Size())
		}
	}
	if segs := len(ls[0].segs); segs < 4 {
		t.Fatalf("want several segments per log, have %d", segs)
	}
	readAll := func(ls []*Log) {
		t.Helper()
		for _, l := range ls {
			for off := range int64(perLog) {
				res, err := l.Read(off, perLog, 1, true)
				if err != nil {
					t.Fatal(err)
				}
				b, err := readRegions(res)
				res.Release()
				if err != nil {
					t.Fatal(err)
				}
				if n, err := checkBatchesAt(b, off); err != nil || n != 1 {
					t.Fatalf("%s offset %d: %d batches, %v", l.dir, off, n, err)
				}
			}
		}
		if n := openSegmentFDs(t, root); n > cache.Size() {
			t.Fatalf("%d segment files open after reading, cache size %d", n, cache.Size())
		}
	}
	readAll(ls)
	st := cache.Stats()
	if st.Reopens == 0 || st.Closes == 0 || st.Open > int64(cache.Size()) {
		t.Fatalf("cache stats %+v: want files closed and reopened, at most %d open", st, cache.Size())
	}

	// A clean restart, then a crash (no close) and a restart: the logs
	// open through the cache and still hold every record.
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := openSegmentFDs(t, root); n != 0 || cache.Stats().Open != 0 {
		t.Fatalf("%d segment files open after closing every log (cache says %d)", n, cache.Stats().Open)
	}
	ls = open()
	readAll(ls)
	for _, l := range ls {
		tl := &testLog{Log: l, t: t}
		tl.crash()
	}
	ls = open()
	readAll(ls)
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFDCacheConcurrentFetchAndRetention runs, on logs sharing a cache of 2
// descriptors, an appender, readers that hold a ReadResult across other
// reads (so its files are pinned while the cache closes others), and
// retention deleting old segments under them. Every read returns the
// records appended at its offsets, intact; offsets retention removed are
// ErrOffsetOutOfRange; at the end no deleted segment file is left and at
// most 2 files are open. Run with -race.
func TestFDCacheConcurrentFetchAndRetention(t *testing.T) {
	root := t.TempDir()
	cache := NewFDCache(2, nil)
	cfg := testConfig()
	cfg.SegmentBytes = 1024
	cfg.RetentionBytes = 4096 // a few segments
	cfg.FileDeleteDelayMs = 0
	clock := newClock()
	const logs, total = 3, 600
	var ls []*Log
	for i := range logs {
		l, err := Open(filepath.Join(root, fmt.Sprintf("t-%d", i)), cfg, Options{Now: clock.Now, FDCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()

	var done atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		done.Store(true)
	}
	wg.Add(1)
	go func() { // the appender
		defer wg.Done()
		defer done.Store(true)
		for off := range int64(total) {
			for _, l := range ls {
				if _, err := l.Append(oneRecordBatch(t, off), 0); err != nil {
					fail(fmt.Errorf("append %d: %w", off, err))
					return
				}
			}
		}
	}()
	wg.Add(1)
	go func() { // retention, with the log end as the high watermark
		defer wg.Done()
		for i := 0; !done.Load(); i++ {
			l := ls[i%logs]
			if err := l.EnforceRetention(l.LogEndOffset()); err != nil {
				fail(fmt.Errorf("retention: %w", err))
				return
			}
			if i%7 == 0 {
				if _, err := l.DeleteRecordsBefore(max(l.LogStartOffset(), l.LogEndOffset()-40)); err != nil {
					fail(fmt.Errorf("delete records: %w", err))
					return
				}
			}
		}
	}()
	var reads atomic.Int64
	for r := range 4 {
		wg.Add(1)
		go func() { // readers: hold one result while taking the next
			defer wg.Done()
			var held ReadResult
			var heldFrom int64
			// Each region holds the batches appended at its offsets,
			// the first at from; a read that crossed segments retention
			// deleted meanwhile may skip to the next segment still
			// there (as before the cache), so regions after the first
			// only move forward.
			check := func(res ReadResult, from int64) error {
				want := from
				for i, r := range res.Regions {
					b := make([]byte, r.Len)
					if _, err := r.File.ReadAt(b, r.Offset); err != nil {
						return fmt.Errorf("read region %d from %d: %w", i, from, err)
					}
					if i > 0 {
						h, err := record.ParseHeader(b)
						if err != nil || h.BaseOffset < want {
							return fmt.Errorf("read from %d: region %d starts at %d, below %d (%v)", from, i, h.BaseOffset, want, err)
						}
						want = h.BaseOffset
					}
					n, err := checkBatchesAt(b, want)
					if err != nil {
						return fmt.Errorf("read from %d, region %d: %w", from, i, err)
					}
					want += n
				}
				return nil
			}
			for i := r; !done.Load(); i++ {
				l := ls[i%logs]
				start, end := l.LogStartOffset(), l.LogEndOffset()
				if end == start {
					continue
				}
				from := start + int64(i*37)%(end-start)
				res, err := l.Read(from, end, 600, true)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue // retention moved the start meanwhile
				}
				if err != nil {
					fail(fmt.Errorf("read %d: %w", from, err))
					return
				}
				if held.Size > 0 {
					// Its segments may have been closed by the cache
					// (not while pinned) or deleted by retention since.
					if err := check(held, heldFrom); err != nil {
						fail(err)
						return
					}
				}
				held.Release()
				held, heldFrom = res, from
				reads.Add(1)
			}
			if held.Size > 0 {
				if err := check(held, heldFrom); err != nil {
					fail(err)
				}
			}
			held.Release()
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if reads.Load() == 0 {
		t.Fatal("no reads happened")
	}
	for _, l := range ls {
		l.bg.Wait() // the flushes rolls queued pin files while they run
	}
	st := cache.Stats()
	if st.Closes == 0 || st.Reopens == 0 {
		t.Fatalf("cache stats %+v: want files closed and reopened during the run", st)
	}
	if n := openSegmentFDs(t, root); n > cache.Size() || st.Open > int64(cache.Size()) {
		t.Fatalf("%d segment files open (cache says %d), cache size %d", n, st.Open, cache.Size())
	}
	for _, l := range ls {
		// Once more with nothing running, in case the appender outran it.
		if err := l.EnforceRetention(l.LogEndOffset()); err != nil {
			t.Fatal(err)
		}
		if l.LogStartOffset() == 0 {
			t.Fatalf("%s: retention deleted nothing", l.dir)
		}
		ents, err := os.ReadDir(l.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), deletedSuffix) {
				t.Fatalf("%s: deleted segment file %s left behind after every read was released", l.dir, e.Name())
			}
		}
		// Everything still in the log reads back.
		for off := l.LogStartOffset(); off < total; off++ {
			res, err := l.Read(off, total, 1, true)
			if err != nil {
				t.Fatal(err)
			}
			b, err := readRegions(res)
			res.Release()
			if err != nil {
				t.Fatal(err)
			}
			if n, err := checkBatchesAt(b, off); err != nil || n != 1 {
				t.Fatalf("%s offset %d: %d batches, %v", l.dir, off, n, err)
			}
		}
	}
}

func readRegions(res ReadResult) ([]byte, error) {
	var out []byte
	for _, r := range res.Regions {
		b := make([]byte, r.Len)
		if _, err := r.File.ReadAt(b, r.Offset); err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

func TestAutoFDCacheSize(t *testing.T) {
	for _, c := range []struct {
		nofile uint64
		want   int
	}{
		{1024, 512},        // half the limit: the rest would leave nothing
		{4096, 3072},       // 1,024 left for the rest
		{20000, 15000},     // three quarters
		{1048576, 786432},  // systemd unit's LimitNOFILE
		{1 << 62, 1 << 20}, // RLIM_INFINITY-like limits are capped
		{1, 1},
	} {
		if got := AutoFDCacheSize(c.nofile); got != c.want {
			t.Errorf("AutoFDCacheSize(%d) = %d, want %d", c.nofile, got, c.want)
		}
	}
}
