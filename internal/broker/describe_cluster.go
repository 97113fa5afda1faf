package broker

// DescribeCluster, v0..2: brokers, controller and cluster id from the
// metadata image. v1 asks for brokers (endpoint type 1). Controller
// endpoints (type 2) are not exposed separately: as from a Kafka broker, that
// type answers MISMATCHED_ENDPOINT_TYPE, and an unknown type
// UNSUPPORTED_ENDPOINT_TYPE. Fenced brokers are listed only when a v2
// request asks for them (IncludeFencedBrokers), marked IsFenced.

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/metadata"
)

func (b *Broker) handleDescribeCluster(_ context.Context, r *request) {
	req := r.body.(*kmsg.DescribeClusterRequest)
	img := b.image()
	resp := kmsg.NewPtrDescribeClusterResponse()
	if r.version >= 1 && req.EndpointType != 1 {
		var msg string
		if req.EndpointType == 2 {
			resp.ErrorCode = kerr.MismatchedEndpointType.Code
			msg = "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"
		} else {
			resp.ErrorCode = kerr.UnsupportedEndpointType.Code
			msg = fmt.Sprintf("Unsupported endpoint type %d", req.EndpointType)
		}
		resp.ErrorMessage = &msg
		r.respond(resp)
		return
	}
	resp.EndpointType = 1
	resp.ClusterID = img.ClusterID
	resp.ControllerID = b.controllerForClients(img)
	resp.ClusterAuthorizedOperations = -2147483648
	for _, id := range sortedBrokerIDs(img) {
		br := img.Brokers[id]
		if br.Fenced && (r.version < 2 || !req.IncludeFencedBrokers) {
			continue
		}
		ep, ok := br.EndpointFor(r.conn.ListenerName())
		if !ok {
			continue
		}
		resp.Brokers = append(resp.Brokers, kmsg.DescribeClusterResponseBroker{NodeID: br.NodeID, Host: ep.Host, Port: ep.Port, Rack: br.Rack, IsFenced: br.Fenced})
	}
	r.respond(resp)
}

func sortedBrokerIDs(img *metadata.Image) []int32 {
	ids := make([]int32, 0, len(img.Brokers))
	for id := range img.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
