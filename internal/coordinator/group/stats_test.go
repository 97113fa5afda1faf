package group

import (
	"reflect"
	"testing"
)

// TestStats: a scrape sees each group's type, state, members and
// committed offsets.
func TestStats(t *testing.T) {
	f := newFixture(t, 0)
	a, _ := f.newMember("range")
	f.sync(a, 1, map[string][]byte{a: []byte("all")})
	if _, err := f.c.Commit(CommitRequest{Group: "g", Generation: 1, MemberID: a, Offsets: []OffsetCommit{{Topic: "t", Partition: 2, Offset: 42}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Commit(CommitRequest{Group: "simple", Generation: -1, Offsets: []OffsetCommit{{Topic: "t", Offset: 3}}}); err != nil {
		t.Fatal(err)
	}
	want := []Stats{
		{Group: "g", Type: "classic", State: "Stable", Members: 1, Offsets: map[TopicPartition]int64{{"t", 2}: 42}},
		{Group: "simple", Type: "classic", State: "Empty", Members: 0, Offsets: map[TopicPartition]int64{{"t", 0}: 3}},
	}
	if got := f.c.Stats(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Stats() = %+v\nwant %+v", got, want)
	}
}
