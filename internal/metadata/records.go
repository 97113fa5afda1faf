package metadata

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// UUID is a Kafka topic id.
type UUID [16]byte

// NewUUID returns a random id that is neither zero nor Kafka's reserved
// metadata topic id (both all-zero and 0...01 are reserved).
func NewUUID() UUID {
	for {
		var u UUID
		if _, err := rand.Read(u[:]); err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err))
		}
		if u != (UUID{}) && u != (UUID{15: 1}) {
			return u
		}
	}
}

// String is Kafka's textual form: URL-safe base64 without padding.
func (u UUID) String() string { return base64.RawURLEncoding.EncodeToString(u[:]) }

// IsZero reports whether u is the zero id.
func (u UUID) IsZero() bool { return u == UUID{} }

// MarshalText encodes the id as Kafka prints it.
func (u UUID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText decodes the base64 form.
func (u *UUID) UnmarshalText(b []byte) error {
	// Check the length first: Decode writes past a too-small destination
	// (it panics) when the text is longer than 16 bytes' worth.
	var v UUID
	if len(b) != base64.RawURLEncoding.EncodedLen(len(v)) {
		return fmt.Errorf("metadata: bad uuid %q", b)
	}
	if n, err := base64.RawURLEncoding.Decode(v[:], b); err != nil || n != len(v) {
		return fmt.Errorf("metadata: bad uuid %q", b)
	}
	*u = v
	return nil
}

// RecordType identifies a metadata record in the log.
type RecordType uint8

// Record types. Numbers are stable: they are stored.
const (
	TypeTopic          RecordType = 1
	TypePartition      RecordType = 2
	TypeConfig         RecordType = 3
	TypeRemoveTopic    RecordType = 4
	TypeProducerIDs    RecordType = 5
	TypeRegisterBroker RecordType = 6
	TypeClusterID      RecordType = 7
	TypeFenceBroker    RecordType = 8
	TypeController     RecordType = 9
	// SCRAM credentials (security.go).
	TypeUserScramCredential       RecordType = 10
	TypeRemoveUserScramCredential RecordType = 11
	// ACLs (acl.go).
	TypeAccessControlEntry       RecordType = 12
	TypeRemoveAccessControlEntry RecordType = 13
	// Feature levels (features.go).
	TypeFeatureLevel RecordType = 14
	// Client quotas (quota.go).
	TypeClientQuota RecordType = 15
	// Log directories going offline or online (logdirs.go).
	TypeBrokerRegistrationChange RecordType = 16
)

// Record is one metadata record.
type Record interface{ Type() RecordType }

// TopicRecord creates a topic.
type TopicRecord struct {
	Name string `json:"name"`
	ID   UUID   `json:"id"`
}

// PartitionRecord creates a partition or replaces its state.
type PartitionRecord struct {
	TopicID        UUID    `json:"topic_id"`
	Partition      int32   `json:"partition"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
	// ELR are the eligible leader replicas (KIP-966): replicas outside
	// the ISR known to hold every committed record, because they left
	// the ISR while it was smaller than min.insync.replicas. Absent in
	// older logs (none).
	ELR []int32 `json:"elr,omitempty"`
	// AddingReplicas and RemovingReplicas describe a reassignment in
	// progress (KIP-455): Replicas is then the target followed by the
	// replicas being removed; AddingReplicas are the target replicas
	// not yet in the ISR when it started, RemovingReplicas the current
	// ones outside the target. Both empty when none is in progress
	// (and absent in older logs).
	AddingReplicas   []int32 `json:"adding_replicas,omitempty"`
	RemovingReplicas []int32 `json:"removing_replicas,omitempty"`
	// Directories is the log directory of each replica, in Replicas'
	// order (Kafka's PartitionRecord v1 Directories, KIP-858); a zero
	// id is unassigned (the broker's only directory). Absent in older
	// logs.
	Directories []UUID `json:"directories,omitempty"`
}

// Config resource types, as Kafka numbers them.
const (
	ResourceTopic  int8 = 2
	ResourceBroker int8 = 4
)

// ConfigRecord sets (Value non-nil) or removes (nil) one config override.
// A broker resource with an empty name is the cluster-wide default.
type ConfigRecord struct {
	ResourceType int8    `json:"resource_type"`
	ResourceName string  `json:"resource_name"`
	Name         string  `json:"name"`
	Value        *string `json:"value"`
}

// RemoveTopicRecord deletes a topic and its partitions.
type RemoveTopicRecord struct {
	ID UUID `json:"id"`
}

// ProducerIDsRecord records that producer ids below NextProducerID are handed
// out (to NodeID), so they are never reused after a restart.
type ProducerIDsRecord struct {
	NodeID         int32 `json:"node_id"`
	NextProducerID int64 `json:"next_producer_id"`
}

// RegisterBrokerRecord registers a broker and its address.
type RegisterBrokerRecord struct {
	NodeID int32   `json:"node_id"`
	Epoch  int64   `json:"epoch"`
	Host   string  `json:"host"`
	Port   int32   `json:"port"`
	Rack   *string `json:"rack,omitempty"`
	// Fenced registers the broker fenced (a broker joining a multi-node
	// cluster is unfenced by its first heartbeat); absent in older logs.
	Fenced bool `json:"fenced,omitempty"`
	// Incarnation identifies the broker process that registered.
	Incarnation UUID `json:"incarnation"`
	// Listeners are every client listener of the broker (Host and Port
	// are the inter-broker one's); absent in older logs.
	Listeners []ListenerEndpoint `json:"listeners,omitempty"`
	// LogDirs are the ids of the broker's log directories
	// (RegisterBrokerRecord v3 LogDirs, KIP-858): the directory.id of
	// each data dir's meta.properties. Absent in older logs.
	LogDirs []UUID `json:"log_dirs,omitempty"`
}

// ListenerEndpoint is one advertised listener of a broker.
type ListenerEndpoint struct {
	Name             string `json:"name"`
	Host             string `json:"host"`
	Port             int32  `json:"port"`
	SecurityProtocol string `json:"security_protocol"`
}

// FenceBrokerRecord fences (Fenced) or unfences a registered broker. A
// fenced broker leads no partition and is left out of Metadata responses;
// the controller fences a broker that stops heartbeating and unfences it
// when it heartbeats again. Epoch is the registration it applies to: a
// record for an older registration is ignored.
type FenceBrokerRecord struct {
	NodeID int32 `json:"node_id"`
	Epoch  int64 `json:"epoch"`
	Fenced bool  `json:"fenced"`
}

// RegisterControllerRecord records where a controller takes
// broker-to-controller requests (its Kafka-protocol listener). The active
// controller writes its own; brokers send registrations and heartbeats
// there.
type RegisterControllerRecord struct {
	NodeID int32  `json:"node_id"`
	Host   string `json:"host"`
	Port   int32  `json:"port"`
}

// ClusterIDRecord fixes the cluster id; written once when a cluster is
// formatted.
type ClusterIDRecord struct {
	ClusterID string `json:"cluster_id"`
}

// Type implementations.
func (*TopicRecord) Type() RecordType          { return TypeTopic }
func (*PartitionRecord) Type() RecordType      { return TypePartition }
func (*ConfigRecord) Type() RecordType         { return TypeConfig }
func (*RemoveTopicRecord) Type() RecordType    { return TypeRemoveTopic }
func (*ProducerIDsRecord) Type() RecordType    { return TypeProducerIDs }
func (*RegisterBrokerRecord) Type() RecordType { return TypeRegisterBroker }
func (*ClusterIDRecord) Type() RecordType      { return TypeClusterID }
func (*FenceBrokerRecord) Type() RecordType    { return TypeFenceBroker }
func (*RegisterControllerRecord) Type() RecordType {
	return TypeController
}

const recordVersion = 0

// Encode returns the key (type and version) and value (JSON) of r as stored
// in a record of the metadata log. JSON keeps the log readable with any
// Kafka consumer; metadata volume is small.
func Encode(r Record) (key, value []byte, err error) {
	value, err = json.Marshal(r)
	if err != nil {
		return nil, nil, fmt.Errorf("metadata: encode %T: %w", r, err)
	}
	return []byte{byte(r.Type()), recordVersion}, value, nil
}

// Decode parses a record from its key and value.
func Decode(key, value []byte) (Record, error) {
	if len(key) != 2 {
		return nil, fmt.Errorf("metadata: record key of %d bytes, want 2", len(key))
	}
	if key[1] != recordVersion {
		return nil, fmt.Errorf("metadata: record type %d has unknown version %d", key[0], key[1])
	}
	var r Record
	switch RecordType(key[0]) {
	case TypeTopic:
		r = new(TopicRecord)
	case TypePartition:
		r = new(PartitionRecord)
	case TypeConfig:
		r = new(ConfigRecord)
	case TypeRemoveTopic:
		r = new(RemoveTopicRecord)
	case TypeProducerIDs:
		r = new(ProducerIDsRecord)
	case TypeRegisterBroker:
		r = new(RegisterBrokerRecord)
	case TypeClusterID:
		r = new(ClusterIDRecord)
	case TypeFenceBroker:
		r = new(FenceBrokerRecord)
	case TypeController:
		r = new(RegisterControllerRecord)
	case TypeUserScramCredential:
		r = new(UserScramCredentialRecord)
	case TypeRemoveUserScramCredential:
		r = new(RemoveUserScramCredentialRecord)
	case TypeAccessControlEntry:
		r = new(AccessControlEntryRecord)
	case TypeRemoveAccessControlEntry:
		r = new(RemoveAccessControlEntryRecord)
	case TypeFeatureLevel:
		r = new(FeatureLevelRecord)
	case TypeClientQuota:
		r = new(ClientQuotaRecord)
	case TypeBrokerRegistrationChange:
		r = new(BrokerRegistrationChangeRecord)
	default:
		return nil, fmt.Errorf("metadata: unknown record type %d", key[0])
	}
	if err := json.Unmarshal(value, r); err != nil {
		return nil, fmt.Errorf("metadata: decode record type %d: %w", key[0], err)
	}
	return r, nil
}

// Log is where the controller commits metadata records. Append returns once
// the records are durable (and, with a quorum, committed), with the offset of
// the last one. Replay calls fn for every committed group of records in
// order, as they were appended.
type Log interface {
	Append(recs []Record) (offset int64, err error)
	Replay(fn func(offset int64, recs []Record) error) error
	Close() error
}
