package brokerlink

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
)

// TestDuplicateRegistration: DUPLICATE_BROKER_REGISTRATION is retried for
// the grace (the live registration may be this node's previous process,
// killed less than a session ago), then is fatal, naming the node id and
// the other registration; a fresh data dir has no grace; any other answer
// restarts the grace.
func TestDuplicateRegistration(t *testing.T) {
	now := time.Unix(1000, 0)
	dup := fmt.Errorf("%w (DUPLICATE_BROKER_REGISTRATION from the active controller)", controller.ErrDuplicateRegistration)
	other := &metadata.Broker{NodeID: 2, Epoch: 3, Host: "broker-2", Port: 9092}
	lc := NewLifecycle(nil, LifecycleConfig{
		Registration:   controller.BrokerRegistration{NodeID: 2},
		DuplicateGrace: 10 * time.Second,
		Now:            func() time.Time { return now },
	})
	if err := lc.duplicate(dup, other); err != nil {
		t.Fatalf("first duplicate answer: %v, want a retry", err)
	}
	now = now.Add(9 * time.Second)
	if err := lc.duplicate(dup, other); err != nil {
		t.Fatalf("duplicate answers for 9s of a 10s grace: %v, want a retry", err)
	}
	// Another answer in between (the previous process's session expired,
	// then an election) starts the grace again.
	if err := lc.duplicate(controller.ErrNotController, other); err != nil {
		t.Fatalf("NOT_CONTROLLER: %v", err)
	}
	now = now.Add(5 * time.Second)
	if err := lc.duplicate(dup, other); err != nil {
		t.Fatalf("a duplicate answer after another answer: %v, want a retry", err)
	}
	now = now.Add(10 * time.Second)
	err := lc.duplicate(dup, other)
	if !errors.Is(err, ErrNodeIDTaken) || !strings.Contains(err.Error(), "node id 2") || !strings.Contains(err.Error(), "broker-2:9092") {
		t.Fatalf("duplicate answers for the whole grace: %v, want ErrNodeIDTaken naming node id 2 and broker-2:9092", err)
	}

	fresh := NewLifecycle(nil, LifecycleConfig{
		Registration:   controller.BrokerRegistration{NodeID: 2},
		DuplicateGrace: 10 * time.Second,
		Fresh:          true,
		Now:            func() time.Time { return now },
	})
	// Its image does not show the other registration yet: it waits for
	// it, a while.
	if err := fresh.duplicate(dup, nil); err != nil {
		t.Fatalf("a fresh data dir, the other registration not in the image: %v, want a retry", err)
	}
	if err := fresh.duplicate(dup, other); !errors.Is(err, ErrNodeIDTaken) || !strings.Contains(err.Error(), "broker-2:9092") {
		t.Fatalf("a fresh data dir: %v, want ErrNodeIDTaken at once", err)
	}
	now = now.Add(imageWait)
	if err := fresh.duplicate(dup, nil); !errors.Is(err, ErrNodeIDTaken) {
		t.Fatalf("a fresh data dir, no registration in the image after %v: %v, want ErrNodeIDTaken", imageWait, err)
	}
}
