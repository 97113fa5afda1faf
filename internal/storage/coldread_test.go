package storage

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of [0, size) of path in the page cache.
func resident(t *testing.T, path string) (in, total int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		t.Fatalf("stat %s: %v", path, err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	for _, v := range vec {
		if v&1 != 0 {
			in++
		}
	}
	return in, len(vec)
}

// A read far below the log end drops the pages it has passed; a read at
// the tail drops nothing; with the setting off nothing is dropped.
func TestColdReadDropsPagesBehind(t *testing.T) {
	var fs unix.Statfs_t
	dir := t.TempDir()
	if err := unix.Statfs(dir, &fs); err == nil && fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is a tmpfs, whose pages posix_fadvise cannot drop")
	}
	cfg := testConfig()
	cfg.SegmentBytes = 64 << 10
	for _, on := range []bool{true, false} {
		tl := openTestLog(t, cfg)
		if on {
			tl.opts.ColdReadBytes = 128 << 10
			tl.reopen()
		}
		var ts int64 = 1
		for tl.LogEndOffset() < 1000 {
			if _, err := tl.Append(makeBatch(t, batchSpec{n: 4, size: 1000, ts: ts}), 0); err != nil {
				t.Fatal(err)
			}
			ts += 4
		}
		if err := tl.Flush(); err != nil { // clean pages can be dropped, dirty ones not
			t.Fatal(err)
		}
		tl.mu.RLock()
		segs := append([]*segment(nil), tl.segs...)
		tl.mu.RUnlock()
		if len(segs) < 10 {
			t.Fatalf("%d segments", len(segs))
		}
		// Read everything once so that every page is cached.
		for off := int64(0); off < tl.LogEndOffset(); {
			rr, err := tl.Read(off, tl.LogEndOffset(), 1<<20, true)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, rr.Regions[0].Len)
			rr.Regions[0].File.ReadAt(buf, rr.Regions[0].Offset)
			off = rr.End
			rr.Release()
		}
		s2 := segs[2].path(logSuffix)
		if in, _ := resident(t, s2); in == 0 {
			t.Skip("this file system keeps nothing in the page cache")
		}

		// A cold read in segment 3, mid-segment.
		mid := segs[3].base + (segs[4].base-segs[3].base)/2
		rr, err := tl.Read(mid, tl.LogEndOffset(), 4096, true)
		if err != nil {
			t.Fatal(err)
		}
		rr.Release()
		in2, _ := resident(t, s2)
		in3, n3 := resident(t, segs[3].path(logSuffix))
		if on {
			if in2 != 0 {
				t.Errorf("segment 2 (passed by the cold read): %d pages still cached", in2)
			}
			if in3 == 0 || in3 == n3 {
				t.Errorf("segment 3 (the cold read's own): %d of %d pages cached, want its first half dropped", in3, n3)
			}
			if tl.ColdDroppedBytes() == 0 {
				t.Error("no dropped bytes counted")
			}
		} else if in2 == 0 || tl.ColdDroppedBytes() != 0 {
			t.Errorf("setting off: segment 2 has %d pages cached, %d bytes dropped", in2, tl.ColdDroppedBytes())
		}

		// A tail read drops nothing of the tail.
		last := segs[len(segs)-2]
		before, _ := resident(t, last.path(logSuffix))
		rr, err = tl.Read(tl.LogEndOffset()-5, tl.LogEndOffset(), 4096, true)
		if err != nil {
			t.Fatal(err)
		}
		rr.Release()
		if after, _ := resident(t, last.path(logSuffix)); after != before {
			t.Errorf("tail read changed the cached pages of the segment before the active one: %d -> %d", before, after)
		}
	}
}
