package metadata

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/quota"
)

// snapshot is a deep copy of what an image's maps hold, to check that Apply
// never changes an image it was called on.
type snapshot struct {
	offset  int64
	cluster string
	topics  map[string]Topic
	byID    map[UUID]Topic
	parts   map[string][]Partition
	configs map[ConfigResource]map[string]string
	brokers map[int32]Broker
	ctrls   map[int32]Endpoint
	nextPID int64
	scram   map[ScramKey]ScramCredential
	acls    map[UUID]authz.Binding
	feats   map[string]int16
	quotas  map[quota.Entity]map[string]float64
}

func snap(im *Image) snapshot {
	s := snapshot{
		offset: im.Offset, cluster: im.ClusterID, nextPID: im.NextProducerID,
		topics: map[string]Topic{}, byID: map[UUID]Topic{}, parts: map[string][]Partition{},
		configs: map[ConfigResource]map[string]string{}, brokers: map[int32]Broker{}, ctrls: maps.Clone(im.Controllers),
	}
	for n, t := range im.Topics {
		s.topics[n] = Topic{Name: t.Name, ID: t.ID}
		for _, p := range t.Partitions {
			s.parts[n] = append(s.parts[n], Partition{
				Replicas: append([]int32(nil), p.Replicas...), ISR: append([]int32(nil), p.ISR...),
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
				ELR:            append([]int32(nil), p.ELR...),
				AddingReplicas: append([]int32(nil), p.AddingReplicas...), RemovingReplicas: append([]int32(nil), p.RemovingReplicas...),
			})
		}
	}
	for id, t := range im.TopicsByID {
		s.byID[id] = Topic{Name: t.Name, ID: t.ID}
	}
	for r, m := range im.Configs {
		s.configs[r] = maps.Clone(m)
	}
	for id, b := range im.Brokers {
		s.brokers[id] = *b
	}
	if len(im.ScramCredentials) > 0 {
		s.scram = maps.Clone(im.ScramCredentials)
	}
	if len(im.ACLs) > 0 {
		s.acls = maps.Clone(im.ACLs)
	}
	if len(im.Features) > 0 {
		s.feats = maps.Clone(im.Features)
	}
	for e, v := range im.ClientQuotas {
		if s.quotas == nil {
			s.quotas = map[quota.Entity]map[string]float64{}
		}
		s.quotas[e] = maps.Clone(v)
	}
	return s
}

// apply applies recs and checks that prev is unchanged.
func apply(t *testing.T, prev *Image, offset int64, recs ...Record) *Image {
	t.Helper()
	before := snap(prev)
	next, err := prev.Apply(offset, recs)
	if err != nil {
		t.Fatalf("Apply at %d: %v", offset, err)
	}
	if after := snap(prev); !reflect.DeepEqual(before, after) {
		t.Fatalf("Apply changed the previous image:\nbefore %+v\nafter  %+v", before, after)
	}
	if next.Offset != offset {
		t.Fatalf("Offset = %d, want %d", next.Offset, offset)
	}
	return next
}

func applyErr(t *testing.T, prev *Image, want string, recs ...Record) {
	t.Helper()
	before := snap(prev)
	next, err := prev.Apply(prev.Offset+1, recs)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Apply = %v, %v; want error containing %q", next, err, want)
	}
	if after := snap(prev); !reflect.DeepEqual(before, after) {
		t.Fatalf("failed Apply changed the previous image:\nbefore %+v\nafter  %+v", before, after)
	}
}

func partRec(id UUID, p int32, replicas ...int32) *PartitionRecord {
	return &PartitionRecord{TopicID: id, Partition: p, Replicas: replicas, ISR: replicas, Leader: replicas[0]}
}

func TestEmpty(t *testing.T) {
	im := Empty()
	if im.Offset != -1 || im.Topics == nil || im.TopicsByID == nil || im.Configs == nil || im.Brokers == nil || im.NextProducerID != 0 {
		t.Fatalf("Empty() = %+v", im)
	}
}

func TestApplyTopics(t *testing.T) {
	a, b := NewUUID(), NewUUID()
	im0 := apply(t, Empty(), 0, &ClusterIDRecord{ClusterID: "c1"}, &RegisterBrokerRecord{NodeID: 1, Host: "h", Port: 1})
	if im0.ClusterID != "c1" {
		t.Fatalf("ClusterID %q", im0.ClusterID)
	}
	im1 := apply(t, im0, 1, &TopicRecord{Name: "a", ID: a}, partRec(a, 0, 1), partRec(a, 1, 1), &TopicRecord{Name: "b", ID: b})
	ta := im1.Topics["a"]
	if ta == nil || ta.ID != a || len(ta.Partitions) != 2 || im1.TopicsByID[a] != ta {
		t.Fatalf("topic a = %+v", ta)
	}
	if tb := im1.Topics["b"]; tb == nil || len(tb.Partitions) != 0 || im1.TopicsByID[b] != tb {
		t.Fatalf("topic b = %+v", tb)
	}
	if got := im1.SortedTopicNames(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("SortedTopicNames = %v", got)
	}

	// Partitions are appended in order, across Apply calls.
	im2 := apply(t, im1, 2, partRec(b, 0, 1), partRec(b, 1, 1), partRec(b, 2, 1))
	if n := len(im2.Topics["b"].Partitions); n != 3 {
		t.Fatalf("b has %d partitions", n)
	}
	if len(im1.Topics["b"].Partitions) != 0 {
		t.Fatal("old image's topic b grew")
	}
	// Topic a is shared, untouched.
	if im2.Topics["a"] != im1.Topics["a"] {
		t.Fatal("untouched topic a was copied")
	}

	// A partition record for an existing partition replaces its state.
	im3 := apply(t, im2, 3, &PartitionRecord{TopicID: b, Partition: 1, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 5, PartitionEpoch: 2})
	p := im3.Topics["b"].Partitions[1]
	if p.LeaderEpoch != 5 || p.PartitionEpoch != 2 || len(im3.Topics["b"].Partitions) != 3 {
		t.Fatalf("replaced partition = %+v", p)
	}
	if im3.TopicsByID[b] != im3.Topics["b"] {
		t.Fatal("indexes point at different topics")
	}
	if im2.Topics["b"].Partitions[1].LeaderEpoch != 0 {
		t.Fatal("old image's partition changed")
	}

	// Errors leave the image alone.
	applyErr(t, im3, "leaves a gap", partRec(b, 4, 1))
	applyErr(t, im3, "leaves a gap", partRec(b, -1, 1))
	applyErr(t, im3, "unknown topic id", partRec(NewUUID(), 0, 1))
	applyErr(t, im3, "created twice", &TopicRecord{Name: "a", ID: NewUUID()})
	applyErr(t, im3, "created twice", &TopicRecord{Name: "c", ID: NewUUID()}, &TopicRecord{Name: "c", ID: NewUUID()})
	applyErr(t, im3, "remove of unknown topic id", &RemoveTopicRecord{ID: NewUUID()})
	// A good record before a bad one in the same batch changes nothing either.
	applyErr(t, im3, "leaves a gap", &TopicRecord{Name: "d", ID: NewUUID()}, partRec(a, 7, 1))
	if _, ok := im3.Topics["d"]; ok {
		t.Fatal("failed Apply leaked topic d")
	}
}

type bogusRecord struct{}

func (bogusRecord) Type() RecordType { return 200 }

func TestApplyUnknownRecord(t *testing.T) {
	applyErr(t, Empty(), "unhandled record", bogusRecord{})
}

func TestApplyRemoveTopic(t *testing.T) {
	a, b := NewUUID(), NewUUID()
	im := apply(t, Empty(), 0,
		&TopicRecord{Name: "a", ID: a}, partRec(a, 0, 1),
		&TopicRecord{Name: "b", ID: b}, partRec(b, 0, 1),
		&ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "retention.ms", Value: strp("1")},
		&ConfigRecord{ResourceType: ResourceTopic, ResourceName: "b", Name: "retention.ms", Value: strp("2")},
		&ConfigRecord{ResourceType: ResourceBroker, ResourceName: "", Name: "log.retention.ms", Value: strp("3")},
	)
	next := apply(t, im, 1, &RemoveTopicRecord{ID: a})
	if _, ok := next.Topics["a"]; ok {
		t.Fatal("topic a still indexed by name")
	}
	if _, ok := next.TopicsByID[a]; ok {
		t.Fatal("topic a still indexed by id")
	}
	if next.TopicConfig("a") != nil {
		t.Fatal("topic a's configs survived")
	}
	if next.TopicConfig("b")["retention.ms"] != "2" || next.Configs[ConfigResource{ResourceBroker, ""}]["log.retention.ms"] != "3" {
		t.Fatalf("other configs lost: %v", next.Configs)
	}
	if next.Topics["b"] == nil || next.TopicsByID[b] == nil {
		t.Fatal("topic b lost")
	}
	// Recreating the name gives a fresh topic without the old configs.
	c := NewUUID()
	re := apply(t, next, 2, &TopicRecord{Name: "a", ID: c}, partRec(c, 0, 1))
	if re.Topics["a"].ID != c || re.TopicConfig("a") != nil || re.TopicsByID[a] != nil {
		t.Fatalf("recreated topic = %+v configs %v", re.Topics["a"], re.TopicConfig("a"))
	}
	// Remove and recreate in one batch.
	d := NewUUID()
	re2 := apply(t, re, 3, &RemoveTopicRecord{ID: c}, &TopicRecord{Name: "a", ID: d})
	if re2.Topics["a"].ID != d || len(re2.Topics["a"].Partitions) != 0 {
		t.Fatalf("topic a = %+v", re2.Topics["a"])
	}
}

func TestApplyConfigs(t *testing.T) {
	topicA := ConfigResource{ResourceTopic, "a"}
	cluster := ConfigResource{ResourceBroker, ""}
	im1 := apply(t, Empty(), 0,
		&ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "x", Value: strp("1")},
		&ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "y", Value: strp("2")},
		&ConfigRecord{ResourceType: ResourceBroker, ResourceName: "", Name: "z", Value: strp("3")},
	)
	if !reflect.DeepEqual(im1.Configs[topicA], map[string]string{"x": "1", "y": "2"}) || im1.Configs[cluster]["z"] != "3" {
		t.Fatalf("configs %v", im1.Configs)
	}
	im2 := apply(t, im1, 1,
		&ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "x", Value: strp("10")},
		&ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "y"},
	)
	if !reflect.DeepEqual(im2.Configs[topicA], map[string]string{"x": "10"}) {
		t.Fatalf("after set/delete %v", im2.Configs[topicA])
	}
	if im1.Configs[topicA]["x"] != "1" || im1.Configs[topicA]["y"] != "2" {
		t.Fatalf("old image changed: %v", im1.Configs[topicA])
	}
	// Deleting the last key removes the resource entry.
	im3 := apply(t, im2, 2, &ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "x"})
	if _, ok := im3.Configs[topicA]; ok {
		t.Fatalf("empty config map kept: %v", im3.Configs)
	}
	// Deleting a key that is not set is a no-op, and leaves no empty map.
	im4 := apply(t, im3, 3, &ConfigRecord{ResourceType: ResourceTopic, ResourceName: "nope", Name: "x"})
	if _, ok := im4.Configs[ConfigResource{ResourceTopic, "nope"}]; ok {
		t.Fatal("delete of unset key created an entry")
	}
	if len(im4.Configs) != 1 || im4.Configs[cluster]["z"] != "3" {
		t.Fatalf("configs %v", im4.Configs)
	}
	// An empty string is a value, not a deletion.
	im5 := apply(t, im4, 4, &ConfigRecord{ResourceType: ResourceBroker, ResourceName: "1", Name: "k", Value: strp("")})
	if v, ok := im5.Configs[ConfigResource{ResourceBroker, "1"}]["k"]; !ok || v != "" {
		t.Fatalf("empty value lost: %v", im5.Configs)
	}
}

func TestApplyProducerIDs(t *testing.T) {
	im := Empty()
	steps := []struct {
		next, want int64
	}{{1000, 1000}, {2000, 2000}, {1500, 2000}, {2000, 2000}, {3000, 3000}}
	for i, s := range steps {
		im = apply(t, im, int64(i), &ProducerIDsRecord{NodeID: 1, NextProducerID: s.next})
		if im.NextProducerID != s.want {
			t.Fatalf("step %d: NextProducerID = %d, want %d", i, im.NextProducerID, s.want)
		}
	}
	// Several in one batch.
	im = apply(t, im, 10, &ProducerIDsRecord{NextProducerID: 5000}, &ProducerIDsRecord{NextProducerID: 4000})
	if im.NextProducerID != 5000 {
		t.Fatalf("NextProducerID = %d", im.NextProducerID)
	}
}

func TestApplyBrokers(t *testing.T) {
	rack := "r1"
	im1 := apply(t, Empty(), 0, &RegisterBrokerRecord{NodeID: 1, Epoch: 0, Host: "a", Port: 1})
	im2 := apply(t, im1, 1, &RegisterBrokerRecord{NodeID: 1, Epoch: 1, Host: "b", Port: 2, Rack: &rack}, &RegisterBrokerRecord{NodeID: 2, Host: "c", Port: 3})
	if b := im2.Brokers[1]; b == nil || b.Epoch != 1 || b.Host != "b" || b.Port != 2 || b.Rack == nil || *b.Rack != "r1" {
		t.Fatalf("broker 1 = %+v", b)
	}
	if b := im2.Brokers[2]; b == nil || b.NodeID != 2 || b.Host != "c" {
		t.Fatalf("broker 2 = %+v", b)
	}
	if b := im1.Brokers[1]; b.Host != "a" || b.Epoch != 0 || len(im1.Brokers) != 1 {
		t.Fatalf("old image's broker changed: %+v", b)
	}
}

// TestApplyNeverMutates runs a long sequence of mixed records and checks
// every intermediate image is unchanged at the end.
func TestApplyNeverMutates(t *testing.T) {
	ids := []UUID{NewUUID(), NewUUID(), NewUUID()}
	batches := [][]Record{
		{&ClusterIDRecord{ClusterID: "c"}, &RegisterBrokerRecord{NodeID: 1, Host: "h", Port: 1}},
		{&TopicRecord{Name: "t0", ID: ids[0]}, partRec(ids[0], 0, 1)},
		{&ConfigRecord{ResourceType: ResourceTopic, ResourceName: "t0", Name: "k", Value: strp("v")}},
		{partRec(ids[0], 1, 1), &TopicRecord{Name: "t1", ID: ids[1]}},
		{&ProducerIDsRecord{NextProducerID: 10}, &RegisterBrokerRecord{NodeID: 1, Epoch: 1, Host: "h2", Port: 1}},
		{&PartitionRecord{TopicID: ids[0], Partition: 0, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 9}},
		{&RemoveTopicRecord{ID: ids[0]}},
		{&TopicRecord{Name: "t0", ID: ids[2]}, &ConfigRecord{ResourceType: ResourceTopic, ResourceName: "t1", Name: "k", Value: strp("w")}},
	}
	images := []*Image{Empty()}
	var snaps []snapshot
	for i, b := range batches {
		snaps = append(snaps, snap(images[i]))
		images = append(images, apply(t, images[i], int64(i), b...))
	}
	for i, s := range snaps {
		if got := snap(images[i]); !reflect.DeepEqual(got, s) {
			t.Fatalf("image %d changed after later Applies:\nwas %+v\nnow %+v", i, s, got)
		}
	}
}

func TestPartitionTargetReplicas(t *testing.T) {
	p := &Partition{Replicas: []int32{4, 5, 1, 2}, AddingReplicas: []int32{4, 5}, RemovingReplicas: []int32{1, 2}}
	if !p.Reassigning() || !slices.Equal(p.TargetReplicas(), []int32{4, 5}) {
		t.Fatalf("reassigning=%t target=%v", p.Reassigning(), p.TargetReplicas())
	}
	q := &Partition{Replicas: []int32{1, 2}}
	if q.Reassigning() || !slices.Equal(q.TargetReplicas(), []int32{1, 2}) {
		t.Fatalf("reassigning=%t target=%v", q.Reassigning(), q.TargetReplicas())
	}
}
