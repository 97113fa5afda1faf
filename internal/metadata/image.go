package metadata

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/quota"
)

// Image is an immutable snapshot of cluster metadata. Never modify an Image
// or anything reachable from it; Apply returns a new one.
type Image struct {
	Offset     int64 // offset of the last record applied, -1 if none
	ClusterID  string
	Topics     map[string]*Topic
	TopicsByID map[UUID]*Topic
	Configs    map[ConfigResource]map[string]string
	Brokers    map[int32]*Broker
	// Controllers are the controllers' endpoints for broker-to-controller
	// requests, by node id.
	Controllers    map[int32]Endpoint
	NextProducerID int64
	// ScramCredentials are the SCRAM users (security.go).
	ScramCredentials map[ScramKey]ScramCredential
	// ACLs are the ACL bindings by id (acl.go).
	ACLs map[UUID]authz.Binding
	// Features are the finalized feature levels above 0 (features.go).
	Features map[string]int16
	// ClientQuotas are the client quotas by entity and key (quota.go).
	ClientQuotas map[quota.Entity]map[string]float64
}

// Endpoint is a host and port.
type Endpoint struct {
	Host string
	Port int32
}

// ConfigResource names a config owner.
type ConfigResource struct {
	Type int8
	Name string
}

// Topic is a topic and its partitions, indexed by partition number.
type Topic struct {
	Name       string
	ID         UUID
	Partitions []*Partition
}

// Partition is a partition's placement and leadership.
type Partition struct {
	Replicas       []int32
	ISR            []int32
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	// ELR are the eligible leader replicas (PartitionRecord.ELR).
	ELR []int32
	// AddingReplicas and RemovingReplicas describe a reassignment in
	// progress (PartitionRecord.AddingReplicas); both empty when none is.
	AddingReplicas   []int32
	RemovingReplicas []int32
	// Directories is each replica's log directory
	// (PartitionRecord.Directories), nil when unassigned.
	Directories []UUID
}

// Reassigning reports whether a reassignment of p is in progress.
func (p *Partition) Reassigning() bool {
	return len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0
}

// TargetReplicas is where a reassignment in progress moves p (Replicas
// without RemovingReplicas), or Replicas when none is.
func (p *Partition) TargetReplicas() []int32 {
	if len(p.RemovingReplicas) == 0 {
		return p.Replicas
	}
	out := make([]int32, 0, len(p.Replicas))
	for _, r := range p.Replicas {
		if !slices.Contains(p.RemovingReplicas, r) {
			out = append(out, r)
		}
	}
	return out
}

// Broker is a registered broker.
type Broker struct {
	NodeID int32
	Epoch  int64
	Host   string
	Port   int32
	Rack   *string
	Fenced bool
	// Incarnation identifies the registered broker process.
	Incarnation UUID
	// Listeners are the broker's client listeners; Host and Port are the
	// inter-broker one's. Empty for a registration from before listeners
	// were recorded.
	Listeners []ListenerEndpoint
	// LogDirs are the log directories the broker registered
	// (RegisterBrokerRecord.LogDirs); OfflineLogDirs those of them it
	// reported offline since (BrokerRegistrationChangeRecord).
	LogDirs        []UUID
	OfflineLogDirs []UUID
}

// EndpointFor returns where clients of the named listener reach the
// broker: Metadata, FindCoordinator and DescribeCluster answer each client
// with the endpoints of the listener it came on, as Kafka does. ok is
// false when the broker has no such listener (it is left out of the
// answer). A broker registered without listeners is reached at Host:Port
// whatever the listener.
func (b *Broker) EndpointFor(listener string) (e Endpoint, ok bool) {
	if len(b.Listeners) == 0 {
		return Endpoint{Host: b.Host, Port: b.Port}, true
	}
	for _, l := range b.Listeners {
		if l.Name == listener {
			return Endpoint{Host: l.Host, Port: l.Port}, true
		}
	}
	return Endpoint{}, false
}

// Empty returns the image before any record.
func Empty() *Image {
	return &Image{
		Offset:      -1,
		Topics:      map[string]*Topic{},
		TopicsByID:  map[UUID]*Topic{},
		Configs:     map[ConfigResource]map[string]string{},
		Brokers:     map[int32]*Broker{},
		Controllers: map[int32]Endpoint{},
	}
}

// TopicConfig returns the overrides of a topic (nil if none).
func (im *Image) TopicConfig(name string) map[string]string {
	return im.Configs[ConfigResource{ResourceTopic, name}]
}

// SortedTopicNames returns every topic name in order.
func (im *Image) SortedTopicNames() []string {
	out := make([]string, 0, len(im.Topics))
	for n := range im.Topics {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// SortedConfigResources returns the resources with configs, by type and
// then name.
func (im *Image) SortedConfigResources() []ConfigResource {
	out := make([]ConfigResource, 0, len(im.Configs))
	for r := range im.Configs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Apply returns the image after recs, committed at offset. It fails, leaving
// im untouched, if a record does not fit the image (unknown topic id, a
// partition number with a gap): the log is then inconsistent and the caller
// must stop.
func (im *Image) Apply(offset int64, recs []Record) (*Image, error) {
	next := *im
	next.Offset = offset
	var copiedTopics, copiedConfigs, copiedBrokers, copiedScram, copiedACLs, copiedQuotas bool
	cowTopics := func() {
		if !copiedTopics {
			next.Topics = maps.Clone(im.Topics)
			next.TopicsByID = maps.Clone(im.TopicsByID)
			copiedTopics = true
		}
	}
	for _, r := range recs {
		switch r := r.(type) {
		case *ClusterIDRecord:
			next.ClusterID = r.ClusterID
		case *TopicRecord:
			cowTopics()
			if _, ok := next.Topics[r.Name]; ok {
				return nil, fmt.Errorf("metadata: offset %d: topic %q created twice", offset, r.Name)
			}
			t := &Topic{Name: r.Name, ID: r.ID}
			next.Topics[r.Name] = t
			next.TopicsByID[r.ID] = t
		case *PartitionRecord:
			cowTopics()
			old, ok := next.TopicsByID[r.TopicID]
			if !ok {
				return nil, fmt.Errorf("metadata: offset %d: partition for unknown topic id %s", offset, r.TopicID)
			}
			if int(r.Partition) > len(old.Partitions) || r.Partition < 0 {
				return nil, fmt.Errorf("metadata: offset %d: topic %s partition %d leaves a gap", offset, old.Name, r.Partition)
			}
			t := &Topic{Name: old.Name, ID: old.ID, Partitions: append([]*Partition(nil), old.Partitions...)}
			p := &Partition{Replicas: r.Replicas, ISR: r.ISR, Leader: r.Leader, LeaderEpoch: r.LeaderEpoch, PartitionEpoch: r.PartitionEpoch, ELR: r.ELR,
				AddingReplicas: r.AddingReplicas, RemovingReplicas: r.RemovingReplicas, Directories: r.Directories}
			if int(r.Partition) == len(t.Partitions) {
				t.Partitions = append(t.Partitions, p)
			} else {
				t.Partitions[r.Partition] = p
			}
			next.Topics[t.Name] = t
			next.TopicsByID[t.ID] = t
		case *RemoveTopicRecord:
			cowTopics()
			t, ok := next.TopicsByID[r.ID]
			if !ok {
				return nil, fmt.Errorf("metadata: offset %d: remove of unknown topic id %s", offset, r.ID)
			}
			delete(next.Topics, t.Name)
			delete(next.TopicsByID, t.ID)
			if !copiedConfigs {
				next.Configs = maps.Clone(im.Configs)
				copiedConfigs = true
			}
			delete(next.Configs, ConfigResource{ResourceTopic, t.Name})
		case *ConfigRecord:
			if !copiedConfigs {
				next.Configs = maps.Clone(im.Configs)
				copiedConfigs = true
			}
			res := ConfigResource{r.ResourceType, r.ResourceName}
			m := maps.Clone(next.Configs[res])
			if m == nil {
				m = map[string]string{}
			}
			if r.Value == nil {
				delete(m, r.Name)
			} else {
				m[r.Name] = *r.Value
			}
			if len(m) == 0 {
				delete(next.Configs, res)
			} else {
				next.Configs[res] = m
			}
		case *ProducerIDsRecord:
			if r.NextProducerID > next.NextProducerID {
				next.NextProducerID = r.NextProducerID
			}
		case *RegisterBrokerRecord:
			if !copiedBrokers {
				next.Brokers = maps.Clone(im.Brokers)
				copiedBrokers = true
			}
			next.Brokers[r.NodeID] = &Broker{NodeID: r.NodeID, Epoch: r.Epoch, Host: r.Host, Port: r.Port, Rack: r.Rack, Fenced: r.Fenced, Incarnation: r.Incarnation, Listeners: r.Listeners, LogDirs: r.LogDirs}
		case *BrokerRegistrationChangeRecord:
			b, ok := next.Brokers[r.NodeID]
			if !ok || b.Epoch != r.Epoch {
				continue // an older registration's record
			}
			if !copiedBrokers {
				next.Brokers = maps.Clone(im.Brokers)
				copiedBrokers = true
			}
			nb := *b
			nb.OfflineLogDirs = offlineDirs(b.LogDirs, r.LogDirs)
			next.Brokers[r.NodeID] = &nb
		case *RegisterControllerRecord:
			next.Controllers = maps.Clone(im.Controllers)
			if next.Controllers == nil {
				next.Controllers = map[int32]Endpoint{}
			}
			next.Controllers[r.NodeID] = Endpoint{Host: r.Host, Port: r.Port}
		case *FenceBrokerRecord:
			b, ok := next.Brokers[r.NodeID]
			if !ok || b.Epoch != r.Epoch || b.Fenced == r.Fenced {
				continue // an older registration's record, or no change
			}
			if !copiedBrokers {
				next.Brokers = maps.Clone(im.Brokers)
				copiedBrokers = true
			}
			nb := *b
			nb.Fenced = r.Fenced
			next.Brokers[r.NodeID] = &nb
		case *UserScramCredentialRecord, *RemoveUserScramCredentialRecord:
			if !copiedScram {
				next.ScramCredentials = maps.Clone(im.ScramCredentials)
				if next.ScramCredentials == nil {
					next.ScramCredentials = map[ScramKey]ScramCredential{}
				}
				copiedScram = true
			}
			applyScram(next.ScramCredentials, r)
		case *AccessControlEntryRecord, *RemoveAccessControlEntryRecord:
			if !copiedACLs {
				next.ACLs = maps.Clone(im.ACLs)
				if next.ACLs == nil {
					next.ACLs = map[UUID]authz.Binding{}
				}
				copiedACLs = true
			}
			applyACL(next.ACLs, r)
		case *FeatureLevelRecord:
			next.Features = maps.Clone(next.Features)
			if next.Features == nil {
				next.Features = map[string]int16{}
			}
			if r.FeatureLevel <= 0 {
				delete(next.Features, r.Name)
			} else {
				next.Features[r.Name] = r.FeatureLevel
			}
		case *ClientQuotaRecord:
			if !copiedQuotas {
				next.ClientQuotas = maps.Clone(im.ClientQuotas)
				if next.ClientQuotas == nil {
					next.ClientQuotas = map[quota.Entity]map[string]float64{}
				}
				copiedQuotas = true
			}
			if err := applyQuota(next.ClientQuotas, r); err != nil {
				return nil, fmt.Errorf("metadata: offset %d: %w", offset, err)
			}
		default:
			return nil, fmt.Errorf("metadata: offset %d: unhandled record %T", offset, r)
		}
	}
	return &next, nil
}
