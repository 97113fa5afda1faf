package metadata

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/fuzzbudget"
	"github.com/stratalog/strata/internal/quota"
)

// TestImageRecordsRebuildImage checks that the records of a snapshot
// rebuild the image they were taken from, through an entry round trip.
func TestImageRecordsRebuildImage(t *testing.T) {
	a, b := UUID{1}, UUID{2}
	im := Empty()
	im = apply(t, im, 0, &ClusterIDRecord{ClusterID: "c1"},
		&RegisterBrokerRecord{NodeID: 1, Epoch: 0, Host: "h1", Port: 9092, Listeners: []ListenerEndpoint{
			{Name: "INTERNAL", Host: "h1", Port: 9092, SecurityProtocol: "SSL"}, {Name: "EXTERNAL", Host: "e1", Port: 19092, SecurityProtocol: "SASL_SSL"}}},
		&RegisterBrokerRecord{NodeID: 2, Epoch: 3, Host: "h2", Port: 9093, Rack: strp("r2"), Fenced: true},
		&RegisterControllerRecord{NodeID: 7, Host: "c7", Port: 9097})
	im = apply(t, im, 1, &TopicRecord{Name: "a", ID: a},
		&PartitionRecord{TopicID: a, Partition: 0, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1},
		&PartitionRecord{TopicID: a, Partition: 1, Replicas: []int32{2}, ISR: []int32{2}, Leader: -1, LeaderEpoch: 4, PartitionEpoch: 5},
		&PartitionRecord{TopicID: a, Partition: 2, Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 1, ELR: []int32{2}},
		&PartitionRecord{TopicID: a, Partition: 3, Replicas: []int32{2, 1}, ISR: []int32{1}, Leader: 1,
			AddingReplicas: []int32{2}, RemovingReplicas: []int32{1}},
		&TopicRecord{Name: "b", ID: b},
		&PartitionRecord{TopicID: b, Partition: 0, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1})
	im = apply(t, im, 2, &ConfigRecord{ResourceType: ResourceTopic, ResourceName: "a", Name: "retention.ms", Value: strp("1000")},
		&ConfigRecord{ResourceType: ResourceBroker, Name: "log.retention.ms", Value: strp("5")},
		&ConfigRecord{ResourceType: ResourceBroker, ResourceName: "1", Name: "log.segment.bytes", Value: strp("2000")},
		&ProducerIDsRecord{NodeID: 1, NextProducerID: 3000},
		&FenceBrokerRecord{NodeID: 1, Epoch: 0, Fenced: true},
		&FenceBrokerRecord{NodeID: 2, Epoch: 2, Fenced: false}) // an old registration's: ignored
	im = apply(t, im, 3, &RemoveTopicRecord{ID: b},
		&UserScramCredentialRecord{Name: "alice", Mechanism: "SCRAM-SHA-256", Salt: []byte{1}, StoredKey: []byte{2}, ServerKey: []byte{3}, Iterations: 4096},
		&UserScramCredentialRecord{Name: "alice", Mechanism: "SCRAM-SHA-512", Salt: []byte{4}, StoredKey: []byte{5}, ServerKey: []byte{6}, Iterations: 8192},
		&UserScramCredentialRecord{Name: "bob", Mechanism: "SCRAM-SHA-512", Salt: []byte{7}, StoredKey: []byte{8}, ServerKey: []byte{9}, Iterations: 4096})
	im = apply(t, im, 4, &RemoveUserScramCredentialRecord{Name: "alice", Mechanism: "SCRAM-SHA-256"})
	if len(im.ScramCredentials) != 2 || im.ScramCredentials[ScramKey{"alice", "SCRAM-SHA-512"}].Iterations != 8192 {
		t.Fatalf("credentials %+v", im.ScramCredentials)
	}
	acl1, acl2 := NewUUID(), NewUUID()
	im = apply(t, im, 5,
		&AccessControlEntryRecord{ID: acl1, Binding: authz.Binding{ResourceType: authz.ResourceTopic, ResourceName: "a", PatternType: authz.PatternLiteral,
			Principal: "User:alice", Host: "*", Operation: authz.OpRead, Permission: authz.Allow}},
		&AccessControlEntryRecord{ID: acl2, Binding: authz.Binding{ResourceType: authz.ResourceGroup, ResourceName: "g-", PatternType: authz.PatternPrefixed,
			Principal: "User:bob", Host: "10.0.0.1", Operation: authz.OpAll, Permission: authz.Deny}})
	im = apply(t, im, 6, &RemoveAccessControlEntryRecord{ID: acl1},
		&FeatureLevelRecord{Name: TransactionVersionFeature, FeatureLevel: 2},
		&FeatureLevelRecord{Name: "group.version", FeatureLevel: 1},
		&FeatureLevelRecord{Name: "group.version", FeatureLevel: 0}) // level 0: not finalized
	if im.FeatureLevel(TransactionVersionFeature) != 2 || len(im.Features) != 1 {
		t.Fatalf("features %v", im.Features)
	}
	if len(im.ACLs) != 1 || im.ACLs[acl2].Principal != "User:bob" {
		t.Fatalf("ACLs %+v", im.ACLs)
	}
	alice, def := "alice", (*string)(nil)
	im = apply(t, im, 7,
		&ClientQuotaRecord{Entity: []quota.EntityPart{{Type: quota.TypeUser, Name: &alice}}, Key: quota.ProducerByteRate, Value: 1024},
		&ClientQuotaRecord{Entity: []quota.EntityPart{{Type: quota.TypeUser, Name: &alice}, {Type: quota.TypeClientID, Name: def}}, Key: quota.RequestPercentage, Value: 12.5},
		&ClientQuotaRecord{Entity: []quota.EntityPart{{Type: quota.TypeClientID, Name: def}}, Key: quota.ConsumerByteRate, Value: 2048},
		&ClientQuotaRecord{Entity: []quota.EntityPart{{Type: quota.TypeClientID, Name: def}}, Key: quota.ControllerMutationRate, Value: 5})
	im = apply(t, im, 8, &ClientQuotaRecord{Entity: []quota.EntityPart{{Type: quota.TypeClientID, Name: def}}, Key: quota.ConsumerByteRate, Remove: true})
	if got := im.ClientQuotas[quota.Entity{User: quota.Named("alice"), ClientID: quota.Default}][quota.RequestPercentage]; got != 12.5 || len(im.ClientQuotas) != 3 ||
		len(im.ClientQuotas[quota.Entity{ClientID: quota.Default}]) != 1 {
		t.Fatalf("client quotas %+v", im.ClientQuotas)
	}
	if ep, ok := im.Brokers[1].EndpointFor("EXTERNAL"); !ok || ep.Host != "e1" || ep.Port != 19092 {
		t.Fatalf("EXTERNAL endpoint %+v %v", ep, ok)
	}
	if _, ok := im.Brokers[1].EndpointFor("OTHER"); ok {
		t.Fatal("endpoint for a listener the broker lacks")
	}
	if ep, ok := im.Brokers[2].EndpointFor("ANY"); !ok || ep.Host != "h2" {
		t.Fatalf("broker registered without listeners: %+v %v", ep, ok)
	}

	if !im.Brokers[1].Fenced || !im.Brokers[2].Fenced {
		t.Fatalf("fencing: broker 1 %+v, broker 2 %+v", im.Brokers[1], im.Brokers[2])
	}
	data, err := EncodeEntry(im.Records())
	if err != nil {
		t.Fatal(err)
	}
	recs, err := DecodeEntry(data)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Empty().Apply(im.Offset, recs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := snap(again), snap(im); !reflect.DeepEqual(got, want) {
		t.Fatalf("rebuilt image differs:\n got %+v\nwant %+v", got, want)
	}
}

func TestDecodeEntryRejectsMalformed(t *testing.T) {
	good, err := EncodeEntry([]Record{&ClusterIDRecord{ClusterID: "x"}, &TopicRecord{Name: "t", ID: UUID{3}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeEntry(good); err != nil {
		t.Fatalf("good entry: %v", err)
	}
	tests := map[string]struct {
		in   []byte
		want string
	}{
		"empty":          {nil, "unknown version"},
		"bad version":    {append([]byte{9}, good[1:]...), "unknown version"},
		"huge count":     {[]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, "bad record count"},
		"truncated":      {good[:len(good)-3], "truncated"},
		"trailing bytes": {append(append([]byte(nil), good...), 0), "trailing"},
		"bad key":        {[]byte{1, 1, 1, 99, 2, '{', '}'}, "record key"},
		"bad json":       {[]byte{1, 1, 2, 1, 0, 1, '{'}, "decode record"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeEntry(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeEntry: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func FuzzDecodeEntry(f *testing.F) {
	good, _ := EncodeEntry([]Record{&ClusterIDRecord{ClusterID: "x"}})
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		var recs []Record
		var err error
		fuzzbudget.Run(t, len(b), func() { recs, err = DecodeEntry(b) })
		if err != nil {
			return
		}
		if _, err := EncodeEntry(recs); err != nil {
			t.Fatalf("re-encode of a decoded entry: %v", err)
		}
	})
}

// TestClientQuotaRecordBadEntity checks that a quota record naming an
// entity Kafka would not store stops the apply (the log is then
// inconsistent) rather than being stored under some other entity.
func TestClientQuotaRecordBadEntity(t *testing.T) {
	empty := ""
	for _, parts := range [][]quota.EntityPart{
		nil,
		{{Type: "group", Name: nil}},
		{{Type: quota.TypeUser, Name: &empty}},
		{{Type: quota.TypeUser, Name: nil}, {Type: quota.TypeUser, Name: nil}},
	} {
		if _, err := Empty().Apply(0, []Record{&ClientQuotaRecord{Entity: parts, Key: quota.ProducerByteRate, Value: 1}}); err == nil {
			t.Errorf("entity %+v applied", parts)
		}
	}
}
