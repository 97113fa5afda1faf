package quorum

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
)

// testSM appends every applied entry to a slice; a snapshot is the slice.
// It records the first broken invariant (an index applied out of order or
// twice, a snapshot restored at the wrong index).
type testSM struct {
	mu       sync.Mutex
	entries  []string
	indexes  []uint64
	applied  uint64
	restores []uint64 // indexes restored from
	err      error
}

type testSnap struct {
	Entries []string `json:"entries"`
	Indexes []uint64 `json:"indexes"`
	Applied uint64   `json:"applied"`
}

func (s *testSM) Apply(index uint64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index <= s.applied && s.err == nil {
		s.err = fmt.Errorf("entry %d applied after %d", index, s.applied)
	}
	s.entries = append(s.entries, string(data))
	s.indexes = append(s.indexes, index)
	s.applied = index
	return nil
}

func (s *testSM) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(testSnap{Entries: s.entries, Indexes: s.indexes, Applied: s.applied})
}

func (s *testSM) Restore(data []byte, index uint64) error {
	var ts testSnap
	if err := json.Unmarshal(data, &ts); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts.Applied > index && s.err == nil {
		s.err = fmt.Errorf("snapshot at index %d holds state applied to %d", index, ts.Applied)
	}
	s.entries, s.indexes, s.applied = ts.Entries, ts.Indexes, index
	s.restores = append(s.restores, index)
	return nil
}

func (s *testSM) state() (entries []string, applied uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.entries), s.applied, s.err
}

func (s *testSM) restoredFrom() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.restores)
}

// logSink collects log lines and passes them to t.Log until the test ends.
type logSink struct {
	mu    sync.Mutex
	t     testing.TB
	done  bool
	lines []string
}

func newLogSink(t testing.TB) *logSink {
	s := &logSink{t: t}
	t.Cleanup(func() {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
	})
	return s
}

func (s *logSink) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	if !s.done {
		s.t.Log(line)
	}
	return len(p), nil
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// count returns how many lines contain all of subs.
func (s *logSink) count(subs ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
outer:
	for _, l := range s.lines {
		for _, sub := range subs {
			if !strings.Contains(l, sub) {
				continue outer
			}
		}
		n++
	}
	return n
}

func entryNames(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// history returns the entries applied and the index each came at.
func (s *testSM) history() ([]string, []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.entries), slices.Clone(s.indexes)
}
