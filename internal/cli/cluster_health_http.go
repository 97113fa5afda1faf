package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// nodeReadiness is one node's /readyz answer (cluster health --http).
type nodeReadiness struct {
	Addr   string `json:"addr"`
	Ready  bool   `json:"ready"`
	Reason string `json:"reason"`
}

// readNodes asks each node's HTTP listener (host:port, as in
// --http-listen) for /readyz, in parallel: the same state a load balancer
// or a Kubernetes probe sees.
func readNodes(ctx context.Context, addrs []string) []nodeReadiness {
	out := make([]nodeReadiness, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = readNode(ctx, addr)
		}()
	}
	wg.Wait()
	return out
}

func readNode(ctx context.Context, addr string) nodeReadiness {
	r := nodeReadiness{Addr: addr}
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(url, "/")+"/readyz", nil)
	if err != nil {
		r.Reason = fmt.Sprintf("bad address: %v", err)
		return r
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.Reason = fmt.Sprintf("unreachable: %v", err)
		return r
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(string(body))
	switch resp.StatusCode {
	case http.StatusOK:
		r.Ready, r.Reason = true, text
	case http.StatusServiceUnavailable:
		r.Reason = strings.TrimPrefix(text, "not ready: ")
	default:
		r.Reason = fmt.Sprintf("/readyz answered %s", resp.Status)
	}
	return r
}

func printNodes(w io.Writer, color bool, nodes []nodeReadiness) error {
	fmt.Fprintln(w)
	t := newTable("NODE", "READY", "REASON")
	for _, n := range nodes {
		s := plain
		ready := "yes"
		if !n.Ready {
			s, ready = red, "no"
		}
		t.styledRow(s, n.Addr, ready, n.Reason)
	}
	return t.write(w, color)
}
