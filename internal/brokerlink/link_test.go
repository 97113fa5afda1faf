package brokerlink

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/kclient"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/metadata/loader"
	"github.com/stratalog/strata/internal/replication"
)

// noLeader is a quorum without a known leader.
type noLeader struct{}

func (noLeader) Leader() int32                 { return -1 }
func (noLeader) State() controller.QuorumState { return controller.QuorumState{LeaderID: -1} }

// TestBrokerOnlyLink: a broker-only node has no controller; every write
// it cannot send (no active controller known) fails with the controller's
// ErrNotController, never a raw Kafka code or a panic.
func TestBrokerOnlyLink(t *testing.T) {
	rpc := kclient.New(time.Second)
	defer rpc.Close()
	l := New(Config{NodeID: 4, Quorum: noLeader{}, Images: loader.New(loader.Options{}), Client: rpc})
	if l.IsActive() || l.ControllerID() != -1 || l.Epoch() != -1 {
		t.Fatalf("IsActive %v, ControllerID %d, Epoch %d", l.IsActive(), l.ControllerID(), l.Epoch())
	}
	notController := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, controller.ErrNotController) {
			t.Errorf("%s: %v, want ErrNotController", what, err)
		}
	}
	notController("CreateTopics", l.CreateTopics([]controller.CreateTopic{{Name: "a", Partitions: 1, ReplicationFactor: 1}}, false)[0].Err)
	notController("DeleteTopics", l.DeleteTopics([]controller.DeleteTopic{{Name: "a"}})[0].Err)
	notController("CreatePartitions", l.CreatePartitionsAll([]controller.CreatePartitions{{Topic: "a", Count: 2}}, false)[0])
	notController("AlterConfigs", l.AlterConfigs([]controller.AlterConfigResource{{Type: metadata.ResourceTopic, Name: "a"}}, false)[0])
	_, err := l.ElectLeaders(controller.ElectPreferred, nil)
	notController("ElectLeaders", err)
	_, err = l.AlterPartitionReassignments(context.Background(), nil, false)
	notController("AlterPartitionReassignments", err)
	if got := l.ListPartitionReassignments(nil); got != nil {
		t.Errorf("ListPartitionReassignments: %v", got)
	}
	_, err = l.RegisterBroker(controller.BrokerRegistration{NodeID: 5})
	notController("RegisterBroker", err)
	_, err = l.AllocateProducerIDs(10)
	notController("AllocateProducerIDs", err)
	_, err = l.register(controller.BrokerRegistration{NodeID: 4, Host: "h", Port: 1}, "c")
	notController("register", err)
	if _, err := (ISR{l}).AlterPartition(context.Background(), replication.ISRChange{Topic: "a"}); !errors.Is(err, controller.ErrBrokerNotRegistered) {
		t.Errorf("ISR change before registration: %v", err)
	}
	if err := l.ControlledShutdown(); err != nil {
		t.Errorf("ControlledShutdown before registration: %v", err)
	}
}
