package quota

import (
	"testing"
	"time"
)

// TestNoQuotaNoAllocation: with no quota of a type set (none at all, or
// only others), every question about it is answered without allocating
// or locking: the broker asks on every request.
func TestNoQuotaNoAllocation(t *testing.T) {
	m := NewManager(Options{})
	check := func(what string) {
		t.Helper()
		if n := testing.AllocsPerRun(1000, func() {
			_ = m.Active(Produce)
			_ = m.Record(Produce, "alice", "app", 1024)
			_ = m.Record(Fetch, "alice", "app", 1024)
			_ = m.RequestThrottle("alice", "app")
			m.RecordRequestTime("alice", "app", time.Millisecond)
			_ = m.Mutation("alice", "app", true)
		}); n != 0 {
			t.Fatalf("%s: %v allocations per request", what, n)
		}
	}
	check("no quotas")
	m.Set(map[Entity]map[string]float64{{User: Named("bob")}: {ControllerMutationRate: 1}})
	check("only a controller mutation quota of another user") // Mutation looks up, and finds none for alice
}

// BenchmarkRecordNoQuota is the cost a request pays when no quota is set.
func BenchmarkRecordNoQuota(b *testing.B) {
	m := NewManager(Options{})
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Record(Produce, "alice", "app", 1024)
	}
}

// BenchmarkRecordQuota is the cost with a quota that applies.
func BenchmarkRecordQuota(b *testing.B) {
	m := NewManager(Options{})
	m.Set(map[Entity]map[string]float64{{User: Default}: {ProducerByteRate: 1 << 30}})
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Record(Produce, "alice", "app", 1024)
	}
}
