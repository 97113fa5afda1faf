package broker

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/metadata"
)

const apiKeyApiVersions = 18

type handler struct {
	min, max int16
	fn       func(ctx context.Context, r *request)
	// interBroker APIs (broker to controller) are served but not listed
	// in ApiVersions: clients never call them.
	interBroker bool
	// toController APIs change metadata: a broker that is not the active
	// controller relays them there (Options.Forward).
	toController bool
}

type handlerTable map[int16]handler

// register is the one place that lists the APIs Strata serves and their
// version ranges; ApiVersions answers from this table. Ranges start where
// DESIGN.md section 4 says clients need them (Produce from 0 for librdkafka's
// compression; old Metadata versions for feature detection).
func (b *Broker) register() handlerTable {
	t := handlerTable{
		0:  {min: 0, max: 13, fn: b.handleProduce},
		1:  {min: 4, max: 18, fn: b.handleFetch},
		2:  {min: 0, max: 10, fn: b.handleListOffsets},
		3:  {min: 0, max: 13, fn: b.handleMetadata},
		17: {min: 0, max: 1, fn: b.handleSaslHandshake},
		18: {min: 0, max: 4, fn: b.handleApiVersions},
		19: {min: 0, max: 7, fn: b.handleCreateTopics, toController: true},
		20: {min: 0, max: 6, fn: b.handleDeleteTopics, toController: true},
		21: {min: 0, max: 2, fn: b.handleDeleteRecords},
		22: {min: 0, max: 5, fn: b.handleInitProducerID},
		23: {min: 0, max: 4, fn: b.handleOffsetForLeaderEpoch},
		29: {min: 0, max: 3, fn: b.handleDescribeAcls},
		30: {min: 0, max: 3, fn: b.handleCreateAcls, toController: true},
		31: {min: 0, max: 3, fn: b.handleDeleteAcls, toController: true},
		32: {min: 0, max: 4, fn: b.handleDescribeConfigs},
		33: {min: 0, max: 2, fn: b.handleAlterConfigs, toController: true},
		35: {min: 0, max: 4, fn: b.handleDescribeLogDirs},
		36: {min: 0, max: 2, fn: b.handleSaslAuthenticate},
		37: {min: 0, max: 3, fn: b.handleCreatePartitions, toController: true},
		43: {min: 0, max: 2, fn: b.handleElectLeaders, toController: true},
		44: {min: 0, max: 1, fn: b.handleIncrementalAlterConfigs, toController: true},
		45: {min: 0, max: 1, fn: b.handleAlterPartitionReassignments, toController: true},
		46: {min: 0, max: 0, fn: b.handleListPartitionReassignments, toController: true},
		48: {min: 0, max: 1, fn: b.handleDescribeClientQuotas},
		49: {min: 0, max: 1, fn: b.handleAlterClientQuotas, toController: true},
		50: {min: 0, max: 0, fn: b.handleDescribeUserScramCredentials},
		51: {min: 0, max: 0, fn: b.handleAlterUserScramCredentials, toController: true},
		55: {min: 0, max: 2, fn: b.handleDescribeQuorum},
		57: {min: 0, max: 1, fn: b.handleUpdateFeatures, toController: true},
		// Leader to controller (KIP-497): see alter_partition.go.
		56: {min: 0, max: 3, fn: b.handleAlterPartition, interBroker: true},
		60: {min: 0, max: 2, fn: b.handleDescribeCluster},
		// Broker to controller (KRaft's): see broker_registration.go.
		62: {min: 0, max: 4, fn: b.handleBrokerRegistration, interBroker: true},
		63: {min: 0, max: 2, fn: b.handleBrokerHeartbeat, interBroker: true},
		67: {min: 0, max: 0, fn: b.handleAllocateProducerIDs, interBroker: true},
	}
	// The partition side of transactions (write_txn_markers.go,
	// describe_producers.go). WriteTxnMarkers is listed: the admin
	// client's kafka-transactions.sh abort sends it.
	t[27] = handler{min: 0, max: 2, fn: b.handleWriteTxnMarkers}
	t[61] = handler{min: 0, max: 0, fn: b.handleDescribeProducers}
	if b.opts.Groups != nil {
		// Group APIs from version 0: old clients need them (DESIGN.md 4).
		t[8] = handler{min: 0, max: 9, fn: b.handleOffsetCommit}
		t[9] = handler{min: 0, max: 9, fn: b.handleOffsetFetch}
		t[10] = handler{min: 0, max: 6, fn: b.handleFindCoordinator}
		t[11] = handler{min: 0, max: 9, fn: b.handleJoinGroup}
		t[12] = handler{min: 0, max: 4, fn: b.handleHeartbeat}
		t[13] = handler{min: 0, max: 5, fn: b.handleLeaveGroup}
		t[14] = handler{min: 0, max: 5, fn: b.handleSyncGroup}
		t[15] = handler{min: 0, max: 6, fn: b.handleDescribeGroups}
		t[16] = handler{min: 0, max: 5, fn: b.handleListGroups}
		t[42] = handler{min: 0, max: 3, fn: b.handleDeleteGroups}
		t[47] = handler{min: 0, max: 0, fn: b.handleOffsetDelete}
		t[68] = handler{min: 0, max: 1, fn: b.handleConsumerGroupHeartbeat}
		t[69] = handler{min: 0, max: 1, fn: b.handleConsumerGroupDescribe}
	}
	if b.opts.Txns != nil {
		// Transaction coordinator APIs (add_partitions_to_txn.go ...).
		t[10] = handler{min: 0, max: 6, fn: b.handleFindCoordinator}
		t[24] = handler{min: 0, max: 5, fn: b.handleAddPartitionsToTxn}
		t[26] = handler{min: 0, max: 5, fn: b.handleEndTxn}
		t[65] = handler{min: 0, max: 0, fn: b.handleDescribeTransactions}
		t[66] = handler{min: 0, max: 2, fn: b.handleListTransactions}
		if b.opts.Groups != nil {
			t[25] = handler{min: 0, max: 4, fn: b.handleAddOffsetsToTxn}
			t[28] = handler{min: 0, max: 5, fn: b.handleTxnOffsetCommit}
		}
	}
	return t
}

// apiKeys lists the table as ApiVersions reports it, sorted by key.
func (t handlerTable) apiKeys() []kmsg.ApiVersionsResponseApiKey {
	out := make([]kmsg.ApiVersionsResponseApiKey, 0, len(t))
	for k, h := range t {
		if h.interBroker {
			continue
		}
		out = append(out, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: h.min, MaxVersion: h.max})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}

// api_versions.go would hold only this; it is small enough to live here.

// handleApiVersions answers with every registered API. Version 3+ requests
// carry a client software name and version, validated as Kafka does.
func (b *Broker) handleApiVersions(_ context.Context, r *request) {
	resp := kmsg.NewPtrApiVersionsResponse()
	req := r.body.(*kmsg.ApiVersionsRequest)
	if r.version >= 3 && (!validSoftwareField(req.ClientSoftwareName) || !validSoftwareField(req.ClientSoftwareVersion)) {
		// As Kafka (KIP-511): a malformed client name or version is an
		// INVALID_REQUEST, answered without the key list.
		resp.ErrorCode = kerr.InvalidRequest.Code
		r.respond(resp)
		return
	}
	resp.ApiKeys = b.handlers.apiKeys()
	if r.version >= 3 {
		b.features(resp)
	}
	r.respond(resp)
}

// features fills ApiVersions v3+'s feature fields (KIP-584): the
// transaction.version levels this broker supports, and the levels the
// cluster finalized in the metadata log (FeatureLevelRecord), a feature at
// level 0 left out, as Kafka does. The finalized epoch is the offset of
// the metadata image, which grows with every change. Clients use
// transaction version 2 (EndTxn v5, Produce v12 without
// AddPartitionsToTxn, TxnOffsetCommit v5 without AddOffsetsToTxn) only
// when transaction.version is finalized at 2; the broker serves each
// request by its version whatever the level, as Kafka does (a client
// mid-transaction when the level changes keeps its version).
func (b *Broker) features(resp *kmsg.ApiVersionsResponse) {
	sf := kmsg.NewApiVersionsResponseSupportedFeature()
	sf.Name, sf.MinVersion, sf.MaxVersion = metadata.TransactionVersionFeature, 0, metadata.MaxTransactionVersion
	resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
	img := b.image()
	resp.FinalizedFeaturesEpoch = max(img.Offset, 0)
	names := make([]string, 0, len(img.Features))
	for n := range img.Features {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ff := kmsg.NewApiVersionsResponseFinalizedFeature()
		ff.Name, ff.MaxVersionLevel, ff.MinVersionLevel = n, img.Features[n], img.Features[n]
		resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
	}
}

// validSoftwareField applies KIP-511's rule for ClientSoftwareName and
// ClientSoftwareVersion: letters, digits, '-' and '.', starting and ending
// with a letter or digit.
func validSoftwareField(s string) bool {
	if s == "" {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && !((c == '-' || c == '.') && i > 0 && i < len(s)-1) {
			return false
		}
	}
	return true
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
