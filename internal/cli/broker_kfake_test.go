//go:build !strata

package cli

import "testing"

// startBroker starts the cluster the command tests run against: kfake by
// default; `go test -tags strata` runs them against an in-process Strata
// broker instead (broker_strata_test.go).
func startBroker(t *testing.T) string { return startKfake(t) }

// testBrokerValidatesConfigs is whether startBroker's cluster rejects bad
// config values (kfake does not).
const testBrokerValidatesConfigs = false

// testBrokerName names the golden files directory of startBroker's output.
const testBrokerName = "kfake"
