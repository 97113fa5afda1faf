package broker

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiKeyApiVersions = 18

type handler struct {
	min, max int16
	fn       func(ctx context.Context, r *request)
}

type handlerTable map[int16]handler

// register is the one place that lists the APIs Strata serves and their
// version ranges; ApiVersions answers from this table. Ranges start where
// DESIGN.md section 4 says clients need them (Produce from 0 for librdkafka's
// compression; old Metadata versions for feature detection).
func (b *Broker) register() handlerTable {
	t := handlerTable{
		0:  {0, 13, b.handleProduce},
		1:  {4, 17, b.handleFetch},
		2:  {0, 10, b.handleListOffsets},
		3:  {0, 13, b.handleMetadata},
		18: {0, 4, b.handleApiVersions},
		19: {0, 7, b.handleCreateTopics},
		20: {0, 6, b.handleDeleteTopics},
		21: {0, 2, b.handleDeleteRecords},
		22: {0, 5, b.handleInitProducerID},
		23: {0, 4, b.handleOffsetForLeaderEpoch},
		32: {0, 4, b.handleDescribeConfigs},
		33: {0, 2, b.handleAlterConfigs},
		35: {0, 4, b.handleDescribeLogDirs},
		37: {0, 3, b.handleCreatePartitions},
		44: {0, 1, b.handleIncrementalAlterConfigs},
		60: {0, 2, b.handleDescribeCluster},
	}
	if b.opts.Groups != nil {
		// Group APIs from version 0: old clients need them (DESIGN.md 4).
		t[8] = handler{0, 9, b.handleOffsetCommit}
		t[9] = handler{0, 9, b.handleOffsetFetch}
		t[10] = handler{0, 6, b.handleFindCoordinator}
		t[11] = handler{0, 9, b.handleJoinGroup}
		t[12] = handler{0, 4, b.handleHeartbeat}
		t[13] = handler{0, 5, b.handleLeaveGroup}
		t[14] = handler{0, 5, b.handleSyncGroup}
		t[15] = handler{0, 6, b.handleDescribeGroups}
		t[16] = handler{0, 5, b.handleListGroups}
		t[42] = handler{0, 3, b.handleDeleteGroups}
		t[47] = handler{0, 0, b.handleOffsetDelete}
		t[68] = handler{0, 1, b.handleConsumerGroupHeartbeat}
		t[69] = handler{0, 1, b.handleConsumerGroupDescribe}
	}
	return t
}

// apiKeys lists the table as ApiVersions reports it, sorted by key.
func (t handlerTable) apiKeys() []kmsg.ApiVersionsResponseApiKey {
	out := make([]kmsg.ApiVersionsResponseApiKey, 0, len(t))
	for k, h := range t {
		out = append(out, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: h.min, MaxVersion: h.max})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}

// api_versions.go would hold only this; it is small enough to live here.

// handleApiVersions answers with every registered API. Version 3+ requests
// carry a client software name and version, which Kafka validates loosely;
// we accept anything.
func (b *Broker) handleApiVersions(_ context.Context, r *request) {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.ApiKeys = b.handlers.apiKeys()
	r.respond(resp)
}

// apiVersionsUnsupported answers a too-new ApiVersions request in version 0
// format with UNSUPPORTED_VERSION and the full key list, so the client
// retries with a version we support (KIP-511).
func (b *Broker) apiVersionsUnsupported(r *request) {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = b.handlers.apiKeys()
	r.version = 0
	r.respond(resp)
}
