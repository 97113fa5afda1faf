package cluster

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"
)

// httpGet asks a node's HTTP listener; code 0 when it does not answer.
func (n *node) httpGet(path string) (int, string) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + n.http + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the sum of a family's series with the given label pairs
// on one node (-1 when the node does not export it).
func (n *node) metric(name string, labels ...string) float64 {
	code, body := n.httpGet("/metrics")
	if code != 200 {
		return -1
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil || fams[name] == nil {
		return -1
	}
	sum := 0.0
next:
	for _, m := range fams[name].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if !hasLabel(m, labels[i], labels[i+1]) {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == k && lp.GetValue() == v {
			return true
		}
	}
	return false
}

// TestReadyzAndMetricsAcrossACluster: a node of a three-voter quorum
// started alone is up (/healthz) but not ready (/readyz 503: it cannot
// register without a quorum); with the others (and a broker-only node)
// started every node becomes ready; the nodes agree on one active controller and quorum leader; a
// replicated topic shows on every replica, and a stopped broker makes the
// remaining leaders report under-replicated partitions.
func TestReadyzAndMetricsAcrossACluster(t *testing.T) {
	c := prepareCluster(t, 3, 1, "") // node 4 is broker-only, observing the quorum
	n1 := c.node(1)
	n1.start()
	if code, _ := n1.httpGet("/healthz"); code != 200 {
		t.Fatalf("/healthz of a started node: %d", code)
	}
	// The HTTP listener is bound before the rest of the node starts
	// ("starting"); alone, the node then stays unregistered: it has no
	// quorum. Await that state, and see that it is never ready meanwhile.
	var code int
	var body string
	waitFor(t, "/readyz of one node of three to say it is not registered", 30*time.Second, func() bool {
		code, body = n1.httpGet("/readyz")
		if code == 200 {
			t.Fatalf("/readyz of one node of three is ready: %q", body)
		}
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not registered")
	})
	c.node(2).start()
	c.node(3).start()
	c.node(4).start()
	for _, n := range c.nodes {
		waitFor(t, "node ready", 30*time.Second, func() bool { code, _ := n.httpGet("/readyz"); return code == 200 })
	}
	waitFor(t, "one active controller", 10*time.Second, func() bool {
		active, leaders := 0.0, map[float64]bool{}
		for _, n := range c.nodes {
			active += n.metric("strata_controller_active")
			leaders[n.metric("strata_quorum_leader")] = true
		}
		return active == 1 && len(leaders) == 1 && !leaders[-1]
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.admin().CreateTopic(ctx, 3, 3, nil, "obs"); err != nil {
		t.Fatal(err)
	}
	cl := c.client(kgo.DefaultProduceTopic("obs"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 30 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "messages in counted on the leaders, every replica hosted and in sync", 20*time.Second, func() bool {
		in, hosted, under, leaders := 0.0, 0.0, 0.0, 0.0
		for _, n := range c.nodes {
			in += n.metric("strata_partition_messages_in_total", "topic", "obs")
			hosted += n.metric("strata_partition_replicas", "topic", "obs")
			under += n.metric("strata_partitions_under_replicated")
			leaders += n.metric("strata_partition_leader", "topic", "obs")
		}
		return in == 30 && hosted == 27 && under == 0 && leaders == 3
	})

	// Stop the node that is not the active controller: the leaders left
	// see fewer in-sync replicas than replicas.
	var victim *node
	for _, n := range c.nodes {
		if n.metric("strata_controller_active") == 0 {
			victim = n
			break
		}
	}
	victim.kill()
	waitFor(t, "under-replicated partitions reported", 30*time.Second, func() bool {
		under := 0.0
		for _, n := range c.nodes {
			if n != victim {
				under += n.metric("strata_partitions_under_replicated")
			}
		}
		return under > 0
	})
}
