package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// MountTmpfs mounts a tmpfs of size bytes at dir for the test (unmounted at
// cleanup), or skips the test where that is not allowed (not root, no
// mount(8)). The metadata log directory (__cluster_metadata-0) is a symlink
// to a directory on the test's own disk: the quorum stops for good when a
// write of its own fails, and the tests that fill the tmpfs are about
// partition storage.
func MountTmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	mount(t, dir, size)
	meta := dir + ".metadata"
	if err := os.MkdirAll(meta, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(meta, filepath.Join(dir, "__cluster_metadata-0")); err != nil {
		t.Fatal(err)
	}
}

// MountMetadataTmpfs is the other way round: the data dir stays on the
// test's disk and only its metadata log directory (__cluster_metadata-0)
// is a symlink to a tmpfs of size bytes, whose mount point it returns (for
// Fill). It skips the test where mounting is not allowed.
func MountMetadataTmpfs(t testing.TB, dataDir string, size int64) string {
	t.Helper()
	meta := dataDir + ".metadata-tmpfs"
	mount(t, meta, size)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(meta, filepath.Join(dataDir, "__cluster_metadata-0")); err != nil {
		t.Fatal(err)
	}
	return meta
}

func mount(t testing.TB, dir string, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// Fill writes a file in dir until its file system is full and returns the
// file's path: removing it frees the space again.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !strings.Contains(err.Error(), "no space left") {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return path
		}
	}
}
