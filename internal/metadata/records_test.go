package metadata

import (
	"reflect"
	"strings"
	"testing"
)

func strp(s string) *string { return &s }

func TestEncodeDecodeRoundTrip(t *testing.T) {
	id := NewUUID()
	recs := []Record{
		&TopicRecord{Name: "orders", ID: id},
		&PartitionRecord{TopicID: id, Partition: 3, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 5},
		&PartitionRecord{TopicID: id, Partition: 4, Replicas: []int32{1, 2, 3}, ISR: []int32{1}, Leader: 1, ELR: []int32{3}},
		&PartitionRecord{TopicID: id, Partition: 5, Replicas: []int32{2, 3, 4, 1}, ISR: []int32{1, 2, 3}, Leader: 1,
			AddingReplicas: []int32{4}, RemovingReplicas: []int32{1}},
		&ConfigRecord{ResourceType: ResourceTopic, ResourceName: "orders", Name: "retention.ms", Value: strp("1000")},
		&ConfigRecord{ResourceType: ResourceBroker, ResourceName: "", Name: "log.retention.ms"},   // delete
		&ConfigRecord{ResourceType: ResourceTopic, ResourceName: "t", Name: "x", Value: strp("")}, // empty, not nil
		&RemoveTopicRecord{ID: id},
		&ProducerIDsRecord{NodeID: 1, NextProducerID: 2000},
		&RegisterBrokerRecord{NodeID: 1, Epoch: 7, Host: "localhost", Port: 9092},
		&RegisterBrokerRecord{NodeID: 2, Epoch: 0, Host: "h", Port: 1, Rack: strp("rack-a")},
		&ClusterIDRecord{ClusterID: "abc"},
		&FeatureLevelRecord{Name: TransactionVersionFeature, FeatureLevel: 2},
	}
	seen := map[RecordType]bool{}
	for _, r := range recs {
		key, value, err := Encode(r)
		if err != nil {
			t.Fatalf("Encode(%T): %v", r, err)
		}
		if len(key) != 2 || key[0] != byte(r.Type()) || key[1] != 0 {
			t.Fatalf("Encode(%T) key = %v", r, key)
		}
		got, err := Decode(key, value)
		if err != nil {
			t.Fatalf("Decode(%T %s): %v", r, value, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip of %T: got %+v, want %+v", r, got, r)
		}
		seen[r.Type()] = true
	}
	for ty := TypeTopic; ty <= TypeClusterID; ty++ {
		if !seen[ty] {
			t.Errorf("record type %d not covered", ty)
		}
	}
	// The topic id is stored in Kafka's text form.
	_, value, _ := Encode(&TopicRecord{Name: "a", ID: id})
	if !strings.Contains(string(value), `"`+id.String()+`"`) {
		t.Fatalf("encoded %s does not hold id %s", value, id)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		key   []byte
		value string
		want  string
	}{
		{"empty key", nil, `{}`, "key of 0 bytes"},
		{"short key", []byte{1}, `{}`, "key of 1 bytes"},
		{"long key", []byte{1, 0, 0}, `{}`, "key of 3 bytes"},
		{"unknown type", []byte{99, 0}, `{}`, "unknown record type 99"},
		{"type zero", []byte{0, 0}, `{}`, "unknown record type 0"},
		{"bad version", []byte{byte(TypeTopic), 1}, `{}`, "unknown version 1"},
		{"bad json", []byte{byte(TypeTopic), 0}, `{"name":`, "decode record type 1"},
		{"wrong json type", []byte{byte(TypePartition), 0}, `{"partition":"x"}`, "decode record type 2"},
		{"bad uuid", []byte{byte(TypeRemoveTopic), 0}, `{"id":"!!"}`, "decode record type 4"},
		{"short uuid", []byte{byte(TypeRemoveTopic), 0}, `{"id":"AAAA"}`, "decode record type 4"},
		{"long uuid", []byte{byte(TypeRemoveTopic), 0}, `{"id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, "decode record type 4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Decode(tc.key, []byte(tc.value))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode = %v, %v; want error containing %q", r, err, tc.want)
			}
		})
	}
}

func TestUUID(t *testing.T) {
	seen := map[UUID]bool{}
	for range 1000 {
		u := NewUUID()
		if u.IsZero() || u == (UUID{15: 1}) {
			t.Fatalf("NewUUID returned reserved id %v", u)
		}
		if seen[u] {
			t.Fatalf("NewUUID repeated %v", u)
		}
		seen[u] = true
		text, err := u.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if len(text) != 22 || string(text) != u.String() {
			t.Fatalf("MarshalText = %q, String = %q", text, u.String())
		}
		var back UUID
		if err := back.UnmarshalText(text); err != nil || back != u {
			t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", text, back, err, u)
		}
	}
	if !(UUID{}).IsZero() || (UUID{3: 1}).IsZero() {
		t.Fatal("IsZero wrong")
	}
	// Kafka's textual form of the metadata topic id.
	if s := (UUID{15: 1}).String(); s != "AAAAAAAAAAAAAAAAAAAAAQ" {
		t.Fatalf("String = %q", s)
	}
	for _, bad := range []string{"", "AAAA", "AAAAAAAAAAAAAAAAAAAAAQ==", "AAAAAAAAAAAAAAAAAAAA+Q", "AAAAAAAAAAAAAAAAAAAAAAAA"} {
		u := UUID{0: 9}
		if err := u.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", bad)
		}
		if u != (UUID{0: 9}) {
			t.Errorf("failed UnmarshalText(%q) changed the id to %v", bad, u)
		}
	}
}

// TestPartitionRecordOldFormat checks that a partition record written
// before reassignments (no adding/removing fields) still decodes, and that
// a record without a reassignment is written without them.
func TestPartitionRecordOldFormat(t *testing.T) {
	id := NewUUID()
	old := `{"topic_id":"` + id.String() + `","partition":0,"replicas":[1,2],"isr":[1],"leader":1,"leader_epoch":2,"partition_epoch":3}`
	r, err := Decode([]byte{byte(TypePartition), 0}, []byte(old))
	if err != nil {
		t.Fatal(err)
	}
	p := r.(*PartitionRecord)
	if p.AddingReplicas != nil || p.RemovingReplicas != nil || p.ELR != nil || !reflect.DeepEqual(p.Replicas, []int32{1, 2}) {
		t.Fatalf("decoded %+v", p)
	}
	_, v, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(v), "adding") || strings.Contains(string(v), "removing") {
		t.Fatalf("a record without a reassignment encodes %s", v)
	}
}
