// Command pwritecost measures what the storage layout of many partitions
// costs the kernel, without a broker: small writes spread round-robin over
// many files (one pwrite per batch per partition, Strata's layout today)
// against the same bytes written to one file, one write per batch or
// several batches coalesced per write (the write a shared journal would
// make per produce request). It reports CPU seconds per GB (utime + stime
// of this process, so the page-cache floor of BENCHMARKS.md is included)
// and microseconds per write. Issue 14, "many partitions".
//
//	go run ./test/bench/pwritecost --dir /mnt/bench/pw --files 10000 --batch 260 --coalesce 64
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "pwritecost"), "scratch directory (emptied before and removed after)")
	files := flag.Int("files", 10000, "files in the spread layout")
	batch := flag.Int("batch", 260, "bytes per batch")
	total := flag.Int64("bytes", 400<<20, "bytes written by each layout")
	coalesce := flag.Int("coalesce", 64, "batches per write in the coalesced one-file layout")
	flag.Parse()
	if err := run(*dir, *files, *batch, *coalesce, *total); err != nil {
		fmt.Fprintln(os.Stderr, "pwritecost:", err)
		os.Exit(1)
	}
}

func cpu() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(dir string, files, batch, coalesce int, total int64) error {
	buf := make([]byte, batch*coalesce)
	for i := range buf {
		buf[i] = byte(i)
	}
	report := func(name string, writes int64, size int, took, wall time.Duration) {
		fmt.Printf("%-34s %9d writes of %6d B: %6.2f s CPU, %6.2f s wall, %6.2f CPU s/GB, %6.2f us/write\n",
			name, writes, size, took.Seconds(), wall.Seconds(), took.Seconds()/(float64(total)/1e9), float64(took.Microseconds())/float64(writes))
	}
	// spread writes total in batch-sized writes round-robin over n files.
	spread := func(n int) error {
		if err := fresh(dir); err != nil {
			return err
		}
		fs := make([]*os.File, n)
		offs := make([]int64, n)
		for i := range fs {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%06d.log", i)))
			if err != nil {
				return err
			}
			defer f.Close()
			fs[i] = f
		}
		writes := total / int64(batch)
		c0, t0 := cpu(), time.Now()
		for i := range writes {
			k := i % int64(n)
			if _, err := fs[k].WriteAt(buf[:batch], offs[k]); err != nil {
				return err
			}
			offs[k] += int64(batch)
		}
		report(fmt.Sprintf("%d files, a write per batch", n), writes, batch, cpu()-c0, time.Since(t0))
		return nil
	}
	// one writes total to one file, per batches per write.
	one := func(per int) error {
		if err := fresh(dir); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, "journal"))
		if err != nil {
			return err
		}
		defer f.Close()
		size := int64(batch * per)
		var off, writes int64
		c0, t0 := cpu(), time.Now()
		for ; off < total; off += size {
			if _, err := f.WriteAt(buf[:size], off); err != nil {
				return err
			}
			writes++
		}
		report(fmt.Sprintf("1 file, %d batches per write", per), writes, int(size), cpu()-c0, time.Since(t0))
		return nil
	}
	defer os.RemoveAll(dir)
	if err := spread(files); err != nil {
		return err
	}
	if err := spread(6); err != nil {
		return err
	}
	if err := one(1); err != nil {
		return err
	}
	return one(coalesce)
}

func fresh(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o755)
}
