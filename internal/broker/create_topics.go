package broker

// CreateTopics, v0..7. -1 partitions or replication factor take the broker
// defaults (v4+). validate_only checks everything and creates nothing. v5+
// answers with the partition count, replication factor and resulting
// configs; v7+ with the topic id.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
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
