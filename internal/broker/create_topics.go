package broker

// CreateTopics, v0..7. -1 partitions or replication factor take the broker
// defaults (v4+). validate_only checks everything and creates nothing. v5+
// answers with the partition count, replication factor and resulting
// configs; v7+ with the topic id.
//
// A created topic with a replica on this broker whose log cannot be opened
// (a full disk, an I/O error) is reported as failed, KAFKA_STORAGE_ERROR
// with the cause, and deleted again, rather than answered as created with
// an offline partition (openFailure).

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/replication"
)

func (b *Broker) handleCreateTopics(_ context.Context, r *request) {
	req := r.body.(*kmsg.CreateTopicsRequest)
	reqs := make([]controller.CreateTopic, len(req.Topics))
	for i, t := range req.Topics {
		c := controller.CreateTopic{Name: t.Topic, Partitions: t.NumPartitions, ReplicationFactor: t.ReplicationFactor, Internal: r.clientID == InterBrokerClientID}
		if len(t.ReplicaAssignment) > 0 {
			c.Assignment = map[int32][]int32{}
			for _, a := range t.ReplicaAssignment {
				c.Assignment[a.Partition] = a.Replicas
			}
		}
		if len(t.Configs) > 0 {
			c.Configs = map[string]*string{}
			for _, kv := range t.Configs {
				c.Configs[kv.Name] = kv.Value
			}
		}
		reqs[i] = c
	}
	results := b.opts.Controller.CreateTopics(reqs, req.ValidateOnly)
	if !req.ValidateOnly {
		b.checkCreatedLogs(results)
	}
	for i := range results {
		results[i].Err = b.nameLogDir(results[i].Err)
	}
	img := b.image()
	resp := kmsg.NewPtrCreateTopicsResponse()
	for i, res := range results {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = res.Name
		rt.ErrorCode = errorCode(res.Err)
		if r.version >= 1 {
			rt.ErrorMessage = errorMessage(res.Err)
		}
		if res.Err == nil {
			rt.TopicID = res.ID
			rt.NumPartitions = res.Partitions
			rt.ReplicationFactor = res.ReplicationFactor
			// The configs the topic ends up with: its overrides over the
			// broker's. With validate_only the topic does not exist, so
			// resolve against the request's own overrides.
			overrides := map[string]string{}
			for k, v := range reqs[i].Configs {
				if v != nil {
					overrides[k] = *v
				}
			}
			for _, e := range b.describeTopicConfigs(img, overrides, nil, false, false) {
				rt.Configs = append(rt.Configs, kmsg.CreateTopicsResponseTopicConfig{
					Name: e.Name, Value: e.Value, ReadOnly: e.ReadOnly, Source: int8(e.Source), IsSensitive: e.IsSensitive,
				})
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	r.respond(resp)
}

// InterBrokerClientID is the client id Strata brokers use towards each
// other. A CreateTopics request carrying it may create internal topics (a
// broker asking the active controller for __consumer_offsets). Until
// brokers authenticate, this is trust in the network, as Kafka's
// PLAINTEXT inter-broker listener is.
const InterBrokerClientID = "strata-broker"

// createSettleWait bounds how long CreateTopics waits for this broker to
// open the logs of the topics it created.
const createSettleWait = 5 * time.Second

// checkCreatedLogs turns the result of each created topic that has a
// replica on this broker whose log could not be opened, or whose log
// directory is offline (replication.LogDir), into a
// KAFKA_STORAGE_ERROR naming the cause, and deletes the topic again: a
// topic reported as failed must not exist (Kafka would answer it created,
// with the partition offline until the log directory is back; a topic
// nobody can write to is not what the caller asked for). The storage
// layer removes a partition directory it created and could not open, so
// nothing is left behind.
func (b *Broker) checkCreatedLogs(results []controller.CreateTopicResult) {
	img := b.image()
	var created []int
	for i, res := range results {
		if res.Err == nil && b.hostsReplicaOf(img.Topics[res.Name]) {
			created = append(created, i)
		}
	}
	if len(created) == 0 {
		return
	}
	b.opts.Partitions.WaitApplied(img.Offset, createSettleWait)
	failed := b.opts.Partitions.Failed()
	for _, i := range created {
		res := &results[i]
		err := openFailure(res.Name, img.Topics[res.Name], failed)
		if err == nil && b.opts.LogDir.IsOffline() {
			// Offline here, but the controller had not heard yet (the
			// next heartbeat tells it; from then on it places nothing
			// here).
			d := b.opts.LogDir
			err = fmt.Errorf("%w: this broker's log directory %s (id %s) is offline (failed: %v)", replication.ErrStorage, d.Path(), d.ID(), d.Cause())
		}
		if err == nil {
			continue
		}
		b.log.Error("created topic's log could not be opened; deleting the topic", "topic", res.Name, "err", err)
		del := b.opts.Controller.DeleteTopics([]controller.DeleteTopic{{Name: res.Name, ID: res.ID}})
		if derr := del[0].Err; derr != nil {
			err = fmt.Errorf("%w; deleting the topic again failed too (%v): it exists with its partition offline on this broker", err, derr)
		} else {
			err = fmt.Errorf("%w; the topic was not created", err)
		}
		res.Err = err
	}
}

// hostsReplicaOf reports whether this broker holds a replica of t.
func (b *Broker) hostsReplicaOf(t *metadata.Topic) bool {
	if t == nil {
		return false
	}
	for _, p := range t.Partitions {
		if slices.Contains(p.Replicas, b.opts.NodeID) {
			return true
		}
	}
	return false
}

// openFailure is the error for topic t's partitions whose log failed to
// open here, or nil.
func openFailure(name string, t *metadata.Topic, failed map[replication.TopicPartition]error) error {
	if t == nil {
		return nil
	}
	var errs []string
	var parts []int
	for i := range t.Partitions {
		if _, ok := failed[replication.TopicPartition{Topic: name, Partition: int32(i)}]; ok {
			parts = append(parts, i)
		}
	}
	sort.Ints(parts)
	for _, i := range parts {
		errs = append(errs, fmt.Sprintf("partition %d: %v", i, failed[replication.TopicPartition{Topic: name, Partition: int32(i)}]))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the log of %d of %d partitions could not be opened on this broker: %s", replication.ErrStorage, len(errs), len(t.Partitions), strings.Join(errs, "; "))
}

// nameLogDir adds the path and the failure of this broker's log directory
// to an error that names its id: the controller knows directories by id
// only (a topic refused because this broker's directory is offline:
// controller/logdirs.go).
func (b *Broker) nameLogDir(err error) error {
	d := b.opts.LogDir
	if err == nil || d == nil {
		return err
	}
	id := d.ID().String()
	msg := err.Error()
	if !strings.Contains(msg, id) {
		return err
	}
	named := fmt.Sprintf("%s (id %s", d.Path(), id)
	if cause := d.Cause(); cause != nil {
		named += ", failed: " + cause.Error()
	}
	return &renamedError{err: err, msg: strings.Replace(msg, id, named+")", 1)}
}

// renamedError is err with another message.
type renamedError struct {
	err error
	msg string
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }
