package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
)

// TestACLElectLeadersPerPartition: without ALTER on the cluster, every
// partition named gets CLUSTER_AUTHORIZATION_FAILED, in v0 (no top-level
// error code) as in v2.
func TestACLElectLeadersPerPartition(t *testing.T) {
	b := newACLBroker(t, authz.Config{})
	for _, version := range []int16{0, 1, 2} {
		r := v(kmsg.NewPtrElectLeadersRequest(), version)
		r.TimeoutMillis = 5000
		r.Topics = []kmsg.ElectLeadersRequestTopic{{Topic: "t", Partitions: []int32{0, 1}}, {Topic: "u", Partitions: []int32{3}}}
		resp, err := serveAs(t, b, aliceConn(), r)
		if err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		er := resp.(*kmsg.ElectLeadersResponse)
		if version >= 1 && er.ErrorCode != codeCluster {
			t.Errorf("v%d: top-level error %d", version, er.ErrorCode)
		}
		n := 0
		for _, rt := range er.Topics {
			for _, p := range rt.Partitions {
				if p.ErrorCode != codeCluster {
					t.Errorf("v%d: %s-%d: error %d", version, rt.Topic, p.Partition, p.ErrorCode)
				}
				n++
			}
		}
		if n != 3 {
			t.Errorf("v%d: %d partitions answered, want 3", version, n)
		}
	}
}

// TestACLFetchDeniedRecordsNotNull: a Fetch of only denied topics is
// answered at once with empty, not null, record sets, as Kafka's: in the
// non-flexible versions librdkafka refuses a size of -1 ("invalid
// MessageSetSize -1", seen with confluent-kafka-python in the interop).
func TestACLFetchDeniedRecordsNotNull(t *testing.T) {
	b := newACLBroker(t, authz.Config{})
	for _, version := range []int16{4, 11, 12} {
		r := v(kmsg.NewPtrFetchRequest(), version)
		r.ReplicaID, r.MaxWaitMillis, r.MaxBytes, r.SessionEpoch = -1, 500, 1<<20, -1
		p := kmsg.NewFetchRequestTopicPartition()
		p.PartitionMaxBytes = 1 << 20
		r.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{p}}}
		resp, err := serveAs(t, b, aliceConn(), r)
		if err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		fr := resp.(*kmsg.FetchResponse)
		if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 1 {
			t.Fatalf("v%d: %+v", version, fr)
		}
		if rp := fr.Topics[0].Partitions[0]; rp.ErrorCode != codeTopic || rp.RecordBatches == nil {
			t.Fatalf("v%d: error %d, records nil: %v", version, rp.ErrorCode, rp.RecordBatches == nil)
		}
	}
}
