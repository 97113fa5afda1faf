//go:build !kfake

package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/server"
)

// cutProxy forwards to a broker until cut, then drops every connection and
// refuses new ones: the broker is gone, as after kill -9.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

func (p *cutProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// With the broker gone mid-stream, produce stops within about --timeout
// and reports what was acknowledged, instead of retrying forever (kgo
// cannot time out an idempotent record whose request got no answer).
func TestProduceBrokerGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	cfg, err := config.LoadBroker("", nil, map[string]string{"listen": "127.0.0.1:0", "advertised.address": ln.Addr().String(), "data.dir": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	p.target = srv.Addr().String()
	go p.serve()
	addr := ln.Addr().String()
	mustRun(t, addr, "", "topic", "create", "gone", "-p", "1")

	pr, pw := io.Pipe()
	defer pw.Close()
	var out, errOut syncBuffer
	const timeout = time.Second
	env := &Env{Brokers: []string{addr}, Stdin: pr, Stdout: &out, Stderr: &errOut, Timeout: timeout}
	done := make(chan error, 1)
	go func() {
		done <- Produce(context.Background(), env, ProduceOptions{Topic: "gone", Partition: -1, Acks: "all", Idempotent: true})
	}()
	if _, err := io.WriteString(pw, "a\nb\n"); err != nil {
		t.Fatal(err)
	}
	waitEndOffset(t, addr, "gone", 0, 2)
	p.cut()
	// More input keeps coming: the command must stop on its own.
	go func() {
		for i := 0; ; i++ {
			if _, err := io.WriteString(pw, "more\n"); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	start := time.Now()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("produce succeeded with the broker gone")
		}
		// About --timeout after the last answer; the slack is for a
		// loaded machine, the failure this catches is never returning.
		if took := time.Since(start); took > timeout+5*time.Second {
			t.Errorf("produce took %v to give up with --timeout %v", took, timeout)
		}
		msg := err.Error()
		if !strings.Contains(msg, "did not answer") && !strings.Contains(msg, "records failed") {
			t.Errorf("error %q does not say the cluster stopped answering", msg)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("produce still running 30 s after the broker went away")
	}
	pw.Close()
	if !strings.Contains(out.String(), ": 2 acknowledged, ") {
		t.Errorf("no summary of what was acknowledged: %q", out.String())
	}
	t.Logf("summary: %s", strings.TrimSpace(out.String()))
}
