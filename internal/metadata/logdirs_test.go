package metadata

import (
	"reflect"
	"testing"
)

func TestLogDirRecords(t *testing.T) {
	d1, d2 := NewUUID(), NewUUID()
	topic := NewUUID()
	im := apply(t, Empty(), 0,
		&RegisterBrokerRecord{NodeID: 1, Epoch: 3, Host: "a", Port: 1, LogDirs: []UUID{d1, d2}},
		&RegisterBrokerRecord{NodeID: 2, Epoch: 0, Host: "b", Port: 1},
		&TopicRecord{Name: "t", ID: topic},
		&PartitionRecord{TopicID: topic, Partition: 0, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 1, Directories: []UUID{d2, {}}},
	)
	b := im.Brokers[1]
	if !b.DirOnline(d1) || !b.DirOnline(d2) || !b.DirOnline(UUID{}) || b.AllDirsOffline() {
		t.Fatalf("fresh registration: %+v", b)
	}
	p := im.Topics["t"].Partitions[0]
	if p.DirectoryOf(1) != d2 || !p.DirectoryOf(2).IsZero() || !p.DirectoryOf(9).IsZero() {
		t.Fatalf("directories %v", p.Directories)
	}

	// d2 offline; a record for an older registration is ignored.
	im2 := apply(t, im, 1,
		&BrokerRegistrationChangeRecord{NodeID: 1, Epoch: 3, LogDirs: []UUID{d1}},
		&BrokerRegistrationChangeRecord{NodeID: 1, Epoch: 2, LogDirs: nil},
	)
	b = im2.Brokers[1]
	if !reflect.DeepEqual(b.OfflineLogDirs, []UUID{d2}) || b.DirOnline(d2) || !b.DirOnline(d1) || !b.DirOnline(UUID{}) || b.AllDirsOffline() {
		t.Fatalf("d2 offline: %+v", b)
	}
	if len(im.Brokers[1].OfflineLogDirs) != 0 {
		t.Fatal("the old image changed")
	}
	// Both offline: an unassigned directory is offline too.
	im3 := apply(t, im2, 2, &BrokerRegistrationChangeRecord{NodeID: 1, Epoch: 3, LogDirs: []UUID{}})
	if b := im3.Brokers[1]; !b.AllDirsOffline() || b.DirOnline(UUID{}) || b.DirOnline(d1) {
		t.Fatalf("all offline: %+v", b)
	}
	// A broker that registered no directories is never offline.
	if b := im3.Brokers[2]; b.AllDirsOffline() || !b.DirOnline(UUID{}) {
		t.Fatalf("broker without directories: %+v", b)
	}

	// A snapshot keeps the offline directories and the partitions'.
	back := apply(t, Empty(), 2, im2.Records()...)
	if !reflect.DeepEqual(back.Brokers[1], im2.Brokers[1]) {
		t.Fatalf("snapshot: %+v, want %+v", back.Brokers[1], im2.Brokers[1])
	}
	if got := back.Topics["t"].Partitions[0].Directories; !reflect.DeepEqual(got, []UUID{d2, {}}) {
		t.Fatalf("snapshot directories %v", got)
	}
	// Online again; a new registration starts with every directory online.
	im4 := apply(t, im3, 3, &BrokerRegistrationChangeRecord{NodeID: 1, Epoch: 3, LogDirs: []UUID{d2, d1}})
	if b := im4.Brokers[1]; len(b.OfflineLogDirs) != 0 {
		t.Fatalf("online again: %+v", b)
	}
	im5 := apply(t, im3, 3, &RegisterBrokerRecord{NodeID: 1, Epoch: 4, Host: "a", Port: 1, LogDirs: []UUID{d1, d2}})
	if b := im5.Brokers[1]; len(b.OfflineLogDirs) != 0 {
		t.Fatalf("registered again: %+v", b)
	}

	// The record round-trips.
	r := &BrokerRegistrationChangeRecord{NodeID: 1, Epoch: 3, LogDirs: []UUID{d1}}
	key, value, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(key, value)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
}
