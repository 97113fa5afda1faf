package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cleanedSize is the size of the .log.cleaned file in dir, 0 if none.
func cleanedSize(t *testing.T, dir string) int64 {
	t.Helper()
	names, err := readDirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasSuffix(n, logSuffix+cleanedSuffix) {
			fi, err := os.Stat(filepath.Join(dir, n))
			if err != nil {
				t.Fatal(err)
			}
			return fi.Size()
		}
	}
	return 0
}

func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, de := range ents {
		names[i] = de.Name()
	}
	return names, nil
}

func truncateHalf(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() < 2 {
		return fmt.Errorf("%s is too small to tear", path)
	}
	return os.Truncate(path, fi.Size()/2)
}
