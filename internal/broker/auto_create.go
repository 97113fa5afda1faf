package broker

// Auto-creation of topics named in Metadata requests, as Kafka does it: the
// request starts the creation and answers the topic with
// LEADER_NOT_AVAILABLE and no partitions; the client retries its metadata
// and finds the topic once it is in this broker's image. The creation runs
// in the background (on a non-controller it is forwarded to the active
// controller), one at a time per name. A creation that fails for a reason
// that retrying cannot fix (an invalid or colliding name, too few brokers
// for the replication factor, a policy) is reported once, to the next
// Metadata request that names the topic; the one after that tries again.

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/internal/controller"
)

const maxRememberedFailures = 1024

type autoCreator struct {
	mu       sync.Mutex
	inflight map[string]bool
	failed   map[string]error
}

// autoCreate answers the error code for a missing topic the request may
// auto-create, starting its creation unless it is under way.
func (b *Broker) autoCreate(name string) int16 {
	a := &b.auto
	a.mu.Lock()
	defer a.mu.Unlock()
	if err, ok := a.failed[name]; ok {
		delete(a.failed, name)
		return errorCode(err)
	}
	if a.inflight[name] {
		return kerr.LeaderNotAvailable.Code
	}
	if a.inflight == nil {
		a.inflight, a.failed = map[string]bool{}, map[string]error{}
	}
	a.inflight[name] = true
	go b.createTopic(name)
	return kerr.LeaderNotAvailable.Code
}

func (b *Broker) createTopic(name string) {
	res := b.opts.Controller.CreateTopics([]controller.CreateTopic{{Name: name, Partitions: -1, ReplicationFactor: -1}}, false)
	var err error
	if len(res) == 1 {
		err = res[0].Err
	}
	code := errorCode(err)
	switch code {
	case 0:
		b.log.Info("auto-created topic", "topic", name, "partitions", res[0].Partitions)
	case kerr.TopicAlreadyExists.Code:
	default:
		b.log.Warn("auto-create topic", "topic", name, "err", err)
	}
	a := &b.auto
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.inflight, name)
	switch code {
	case kerr.InvalidTopicException.Code, kerr.InvalidReplicationFactor.Code, kerr.InvalidPartitions.Code,
		kerr.InvalidConfig.Code, kerr.PolicyViolation.Code:
		if len(a.failed) >= maxRememberedFailures {
			clear(a.failed) // names nobody asked about again
		}
		a.failed[name] = err
	}
}
