//go:build kfake

package cli

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// startBroker starts the cluster the command tests run against: kfake with
// `go test -tags kfake`; by default they run against an in-process Strata
// broker (broker_strata_test.go).
func startBroker(t *testing.T) string { return startKfake(t) }

// testBrokerValidatesConfigs is whether startBroker's cluster rejects bad
// config values (kfake does not).
const testBrokerValidatesConfigs = false

// testBrokerName names the golden files directory of startBroker's output.
const testBrokerName = "kfake"

// startKfake starts franz-go's in-memory fake cluster with a fixed cluster
// id, for output that does not depend on the run.
func startKfake(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ClusterID("test-cluster"))
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}
