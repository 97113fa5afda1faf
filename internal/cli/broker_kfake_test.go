//go:build kfake

package cli

import "testing"

// startBroker starts the cluster the command tests run against: kfake with
// `go test -tags kfake`; by default they run against an in-process Strata
// broker (broker_strata_test.go).
func startBroker(t *testing.T) string { return startKfake(t) }

// testBrokerValidatesConfigs is whether startBroker's cluster rejects bad
// config values (kfake does not).
const testBrokerValidatesConfigs = false

// testBrokerName names the golden files directory of startBroker's output.
const testBrokerName = "kfake"
