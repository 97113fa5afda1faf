package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Stall diagnostics. franz-go never fails an idempotent record whose
// request got no answer, so a transactional producer whose records stay
// unanswered is given up after stuckAfter (txn.go). Why they stayed
// unanswered is in two places, both saved the moment it happens: the
// client's own recent log (what it sent, to whom, what it retried) and
// every broker's goroutines (a produce request parked in the broker, a
// replication wait, a lock).

// ringLog is a kgo.Logger that keeps the client's last lines in memory.
type ringLog struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

const ringLines = 4000

func (r *ringLog) Level() kgo.LogLevel { return kgo.LogLevelDebug }

func (r *ringLog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	line := fmt.Sprintf("%s %s %s %v", time.Now().UTC().Format("15:04:05.000"), level, msg, keyvals)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lines == nil {
		r.lines = make([]string, ringLines)
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % ringLines
	if r.next == 0 {
		r.full = true
	}
}

// WriteTo writes the kept lines, oldest first.
func (r *ringLog) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	write := func(lines []string) error {
		for _, l := range lines {
			m, err := fmt.Fprintln(w, l)
			n += int64(m)
			if err != nil {
				return err
			}
		}
		return nil
	}
	if r.full {
		if err := write(r.lines[r.next:]); err != nil {
			return n, err
		}
	}
	return n, write(r.lines[:r.next])
}

// stallRecorder saves the diagnostics of a schedule's stalls under dir,
// once per producer.
type stallRecorder struct {
	c   *Cluster
	dir string
	tl  *Timeline

	mu   sync.Mutex
	seen map[string]bool
}

// record saves producer's client log and every running broker's
// goroutines; it returns the directory, or "" if this producer's stall
// was already recorded or nothing could be written.
func (s *stallRecorder) record(producer, why string, client *ringLog) string {
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	first := !s.seen[producer]
	s.seen[producer] = true
	s.mu.Unlock()
	if !first {
		return ""
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "stall diagnostics:", err)
		return ""
	}
	stamp := time.Now().UTC().Format("150405.000")
	if client != nil {
		if f, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("client-%s-%s.log", producer, stamp))); err == nil {
			client.WriteTo(f)
			f.Close()
		}
	}
	for _, n := range s.c.Nodes {
		if !n.Running() || n.Paused() {
			continue
		}
		path := filepath.Join(s.dir, fmt.Sprintf("goroutines-n%d-%s.txt", n.ID, stamp))
		if err := dumpGoroutines(s.c.net.HTTP(n.ID), path); err != nil {
			os.WriteFile(path, []byte(err.Error()+"\n"), 0o644)
		}
	}
	s.tl.Add("stall of %s (%s): client log and goroutine dumps in %s", producer, why, s.dir)
	return s.dir
}

// dumpGoroutines saves a broker's goroutine stacks from its pprof endpoint.
func dumpGoroutines(httpAddr, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/debug/pprof/goroutine?debug=2", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("goroutines of %s: %w", httpAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("goroutines of %s: %s", httpAddr, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
