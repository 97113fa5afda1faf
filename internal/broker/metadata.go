package broker

// Metadata, v0..13. v0 means "all topics" with an empty list; v1+ use a null
// list for all and an empty one for none. Auto-creation (auto.create.topics.enable)
// starts for named unknown topics when the request allows it (always before
// v4, by the flag from v4) and answers them LEADER_NOT_AVAILABLE with no
// partitions until they are in the image (auto_create.go). v10+ can name
// topics by id.

import (
	"context"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
)

func (b *Broker) handleMetadata(_ context.Context, r *request) {
	req := r.body.(*kmsg.MetadataRequest)
	resp := kmsg.NewPtrMetadataResponse()
	img := b.image()

	all := req.Topics == nil || (r.version == 0 && len(req.Topics) == 0)
	allowAuto := !all && (r.version < 4 || req.AllowAutoTopicCreation) && b.opts.Static.Bool("auto.create.topics.enable")

	resp.Brokers = brokerList(img, r.conn.ListenerName())
	resp.ClusterID = &img.ClusterID
	resp.ControllerID = b.controllerForClients(img)
	resp.AuthorizedOperations = -2147483648

	if b.opts.Ready != nil && !b.opts.Ready() {
		// Still catching up with the metadata log: the image may name
		// leaders long gone. Every named topic is LEADER_NOT_AVAILABLE,
		// which clients retry; "all topics" is none yet.
		for _, rt := range req.Topics {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
			mt.ErrorCode = kerr.LeaderNotAvailable.Code
			resp.Topics = append(resp.Topics, mt)
		}
		r.respond(resp)
		return
	}
	if all {
		for _, name := range img.SortedTopicNames() {
			resp.Topics = append(resp.Topics, topicMetadata(img, img.Topics[name]))
		}
	} else {
		for _, rt := range req.Topics {
			var t *metadata.Topic
			var mt kmsg.MetadataResponseTopic
			switch {
			case rt.TopicID == [16]byte{}:
				// By name: always before v10, and from v10 when no id
				// is given (Kafka ignores zero ids). "" is an invalid
				// name, not an unknown id.
				name := ""
				if rt.Topic != nil {
					name = *rt.Topic
				}
				t = img.Topics[name]
				if t == nil {
					mt = kmsg.NewMetadataResponseTopic()
					mt.Topic = &name
					mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
					switch {
					case controller.ValidateTopicName(name) != nil:
						mt.ErrorCode = kerr.InvalidTopicException.Code
					case allowAuto && !internalTopic(name):
						mt.ErrorCode = b.autoCreate(name)
					}
					resp.Topics = append(resp.Topics, mt)
					continue
				}
			default:
				t = img.TopicsByID[metadata.UUID(rt.TopicID)]
				if t == nil {
					mt = kmsg.NewMetadataResponseTopic()
					mt.TopicID = rt.TopicID
					mt.ErrorCode = kerr.UnknownTopicID.Code
					resp.Topics = append(resp.Topics, mt)
					continue
				}
			}
			resp.Topics = append(resp.Topics, topicMetadata(img, t))
		}
	}
	r.respond(resp)
}

// brokerList lists the live brokers with their endpoints on listener, the
// one the client connected to.
func brokerList(img *metadata.Image, listener string) []kmsg.MetadataResponseBroker {
	out := make([]kmsg.MetadataResponseBroker, 0, len(img.Brokers))
	for _, id := range sortedBrokerIDs(img) {
		br := img.Brokers[id]
		if br.Fenced {
			continue // as Kafka: fenced brokers are not offered to clients
		}
		ep, ok := br.EndpointFor(listener)
		if !ok {
			continue // as Kafka: a broker without the listener is not offered
		}
		out = append(out, kmsg.MetadataResponseBroker{NodeID: br.NodeID, Host: ep.Host, Port: ep.Port, Rack: br.Rack})
	}
	return out
}

// topicMetadata describes a topic's partitions. A replica whose broker is
// fenced or gone is offline, as KRaft's metadata cache reports it.
func topicMetadata(img *metadata.Image, t *metadata.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = internalTopic(name)
	mt.AuthorizedOperations = -2147483648
	for i, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(i)
		mp.Leader = p.Leader
		mp.LeaderEpoch = p.LeaderEpoch
		mp.Replicas = p.Replicas
		mp.ISR = p.ISR
		mp.OfflineReplicas = []int32{}
		for _, r := range p.Replicas {
			if b := img.Brokers[r]; b == nil || b.Fenced {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		if p.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// SplitHostPort parses an advertised address into host and port.
func SplitHostPort(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, err
	}
	return host, int32(p), nil
}
