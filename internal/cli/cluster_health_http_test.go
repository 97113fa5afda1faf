package cli

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// readyzServer answers /readyz like a broker's HTTP listener.
func readyzServer(t *testing.T, ready bool, reason string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: " + reason + "\n"))
			return
		}
		w.Write([]byte("ready\n"))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestClusterHealthHTTP: --http adds each node's /readyz to the report; a
// node not ready makes the cluster unhealthy (exit status 2) with its
// reason, and so does one that does not answer.
func TestClusterHealthHTTP(t *testing.T) {
	addr := startBroker(t)
	ok := readyzServer(t, true, "")
	r := run(t, addr, "", "cluster", "health", "--http", ok, "--json")
	if r.err != nil {
		t.Fatalf("health with a ready node: %v", r.err)
	}
	var rep healthReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Healthy || len(rep.Nodes) != 1 || !rep.Nodes[0].Ready || rep.Nodes[0].Addr != ok {
		t.Fatalf("report %+v", rep)
	}

	bad := readyzServer(t, false, "3 of 9 hosted partitions not open yet (t-1 among them)")
	r = run(t, addr, "", "cluster", "health", "--http", ok+","+bad)
	var es *ExitStatus
	if r.err == nil || !errors.As(r.err, &es) || es.Code != 2 || !strings.Contains(r.err.Error(), "1 of 2 nodes not ready") {
		t.Fatalf("health with a node not ready: err %v", r.err)
	}
	if !strings.Contains(r.stdout, "3 of 9 hosted partitions not open yet") || !strings.Contains(r.stdout, "unhealthy") {
		t.Fatalf("output lacks the node's reason:\n%s", r.stdout)
	}

	r = run(t, addr, "", "cluster", "health", "--http", "127.0.0.1:1", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if r.err == nil || rep.Healthy || rep.Nodes[0].Ready || !strings.HasPrefix(rep.Nodes[0].Reason, "unreachable") {
		t.Fatalf("unreachable node: err %v, report %+v", r.err, rep)
	}
}
