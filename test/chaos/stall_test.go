package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRingLogKeepsTheLastLines(t *testing.T) {
	var r ringLog
	for i := 0; i < ringLines+10; i++ {
		r.Log(kgo.LogLevelDebug, "line", "i", i)
	}
	var b bytes.Buffer
	r.WriteTo(&b)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != ringLines {
		t.Fatalf("%d lines kept, want %d", len(lines), ringLines)
	}
	if first, last := lines[0], lines[len(lines)-1]; !strings.HasSuffix(first, "[i 10]") || !strings.HasSuffix(last, fmt.Sprintf("[i %d]", ringLines+9)) {
		t.Fatalf("kept %q .. %q", first, last)
	}
}

func TestDumpGoroutines(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "g.txt")
	if err := dumpGoroutines(strings.TrimPrefix(srv.URL, "http://"), path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Contains(b, []byte("goroutine ")) || !bytes.Contains(b, []byte("TestDumpGoroutines")) {
		t.Fatalf("dump: %v %.200s", err, b)
	}
	if err := dumpGoroutines("127.0.0.1:1", path); err == nil {
		t.Fatal("no error from a closed port")
	}
}
