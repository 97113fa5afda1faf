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

// A reader walking the log far below its end drops the pages it has
// passed, except the last ones (the drop lag); the tail is untouched; with
// the setting off nothing is dropped.
func TestColdReadDropsPagesBehind(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs(t.TempDir(), &fs); err == nil && fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is a tmpfs, whose pages posix_fadvise cannot drop")
	}
	cfg := testConfig()
	cfg.SegmentBytes = 64 << 10
	for _, on := range []bool{true, false} {
		tl := openTestLog(t, cfg)
		if on {
			tl.opts.ColdReadBytes = 256 << 10 // the drop lag is 128 KiB: two segments
			tl.reopen()
		}
		var ts int64 = 1
		for tl.LogEndOffset() < 1200 {
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
		if len(segs) < 14 {
			t.Fatalf("%d segments", len(segs))
		}
		// Every page is cached after the appends; read the tail once.
		tail := segs[len(segs)-2].path(logSuffix)
		if in, _ := resident(t, segs[0].path(logSuffix)); in == 0 {
			t.Skip("this file system keeps nothing in the page cache")
		}
		tailBefore, _ := resident(t, tail)

		// A reader walks from the start to segment 8, 4 KiB at a time.
		for off := int64(0); off < segs[8].base; {
			rr, err := tl.Read(off, tl.LogEndOffset(), 4096, true)
			if err != nil {
				t.Fatal(err)
			}
			off = rr.End
			rr.Release()
		}
		for i := 0; i <= 7; i++ {
			in, n := resident(t, segs[i].path(logSuffix))
			switch {
			case on && i <= 4 && in != 0:
				t.Errorf("segment %d, passed more than the lag ago: %d of %d pages still cached", i, in, n)
			case on && i == 7 && in == 0:
				t.Errorf("segment %d, within the lag behind the reader: dropped", i)
			case !on && in == 0:
				t.Errorf("setting off: segment %d dropped", i)
			}
		}
		if got := tl.ColdDroppedBytes(); on != (got > 0) {
			t.Errorf("on=%v: %d bytes dropped", on, got)
		}
		if after, _ := resident(t, tail); after != tailBefore {
			t.Errorf("the tail's cached pages changed: %d -> %d", tailBefore, after)
		}
	}
}
