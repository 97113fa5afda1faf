package group

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var (
	topicA = [16]byte{1}
	topicB = [16]byte{2}
)

func testTopics(name string) (TopicMeta, bool) {
	switch name {
	case "a":
		return TopicMeta{ID: topicA, Partitions: 6}, true
	case "b":
		return TopicMeta{ID: topicB, Partitions: 3}, true
	}
	return TopicMeta{}, false
}

// cm is a test member of a consumer protocol group: it remembers its
// epoch and what it owns, as a client does.
type cm struct {
	f        *fixture
	id       string
	epoch    int32
	owned    []TopicPartitions
	topics   []string
	assignor *string
	instance *string
}

func (f *fixture) consumer(id string, topics ...string) *cm {
	return &cm{f: f, id: id, topics: topics}
}

func (m *cm) req(epoch int32) ConsumerHeartbeatRequest {
	owned := m.owned
	if owned == nil {
		owned = []TopicPartitions{}
	}
	return ConsumerHeartbeatRequest{
		Group: "g", MemberID: m.id, MemberEpoch: epoch, InstanceID: m.instance,
		RebalanceTimeout: 2 * time.Second, SubscribedTopics: m.topics, ServerAssignor: m.assignor,
		Owned: owned, SessionTimeout: time.Second, Topics: testTopics,
	}
}

// beat sends a full heartbeat and, like a client, takes the assignment it
// gets as what it owns.
func (m *cm) beat() ConsumerHeartbeatResult {
	m.f.t.Helper()
	r := m.f.c.ConsumerHeartbeat(m.req(m.epoch))
	if r.Err != nil {
		m.f.t.Fatalf("%s heartbeat at epoch %d: %v", m.id, m.epoch, r.Err)
	}
	m.epoch = r.MemberEpoch
	if r.Assignment != nil {
		m.owned = r.Assignment
	}
	return r
}

func (m *cm) parts() string {
	s := ""
	for _, t := range m.owned {
		s += fmt.Sprintf("%d:%v", t.TopicID[0], t.Partitions)
	}
	return s
}

func (f *fixture) describe() ConsumerDescription {
	return f.c.ConsumerDescribe([]string{"g"})[0]
}

func TestConsumerJoinAndIncrementalReconciliation(t *testing.T) {
	f := newFixture(t, 0)
	a := f.consumer("a", "a")
	if r := a.beat(); r.MemberEpoch != 1 || a.parts() != "1:[0 1 2 3 4 5]" {
		t.Fatalf("a joined: %+v, owns %s", r, a.parts())
	}
	b := f.consumer("b", "a")
	b.beat()
	if b.epoch != 2 || b.parts() != "" {
		t.Fatalf("b joined at epoch %d owning %q; want epoch 2 and nothing (a still holds them)", b.epoch, b.parts())
	}
	if d := f.describe(); d.State != "Reconciling" || d.Epoch != 2 || d.AssignmentEpoch != 2 {
		t.Fatalf("describe: %+v", d)
	}
	// a is told to revoke half; its epoch stays until it has.
	a.beat()
	if a.epoch != 1 || a.parts() != "1:[0 1 2]" {
		t.Fatalf("a at epoch %d owns %s, want epoch 1 owning 0-2", a.epoch, a.parts())
	}
	b.beat()
	if b.parts() != "" {
		t.Fatalf("b got %s before a revoked", b.parts())
	}
	// A keepalive (owned unchanged, nil) does not count as revoking.
	req := a.req(a.epoch)
	req.Owned = nil
	if r := f.c.ConsumerHeartbeat(req); r.Err != nil || r.MemberEpoch != 1 {
		t.Fatalf("keepalive: %+v", r)
	}
	a.beat() // reports owning 0-2: revocation done
	if a.epoch != 2 {
		t.Fatalf("a at epoch %d after revoking, want 2", a.epoch)
	}
	b.beat()
	if b.parts() != "1:[3 4 5]" {
		t.Fatalf("b owns %s, want 3-5", b.parts())
	}
	d := f.describe()
	if d.State != "Stable" || d.Assignor != "uniform" || len(d.Members) != 2 || d.Members[1].TargetAssignment[0].Topic != "a" {
		t.Fatalf("describe: %+v", d)
	}
}

func TestConsumerAssignors(t *testing.T) {
	rangeName := AssignorRange
	for _, tc := range []struct {
		assignor *string
		topics   [2][]string
		want     [2]string
	}{
		{nil, [2][]string{{"a"}, {"a"}}, [2]string{"1:[0 1 2]", "1:[3 4 5]"}},
		{nil, [2][]string{{"a", "b"}, {"a", "b"}}, [2]string{"1:[0 1 2 3 4]", "1:[5]2:[0 1 2]"}},
		{nil, [2][]string{{"a"}, {"a", "b"}}, [2]string{"1:[0 1 2 3 4]", "1:[5]2:[0 1 2]"}},
		{&rangeName, [2][]string{{"a", "b"}, {"a", "b"}}, [2]string{"1:[0 1 2]2:[0 1]", "1:[3 4 5]2:[2]"}},
		{&rangeName, [2][]string{{"b"}, {"a", "b"}}, [2]string{"2:[0 1]", "1:[0 1 2 3 4 5]2:[2]"}},
	} {
		t.Run(fmt.Sprint(tc.topics), func(t *testing.T) {
			f := newFixture(t, 0)
			ms := []*cm{f.consumer("m0", tc.topics[0]...), f.consumer("m1", tc.topics[1]...)}
			for _, m := range ms {
				m.assignor = tc.assignor
				m.beat()
			}
			d := f.describe()
			for i, m := range d.Members {
				got := (&cm{owned: m.TargetAssignment}).parts()
				if got != tc.want[i] {
					t.Errorf("member %s target %s, want %s", m.MemberID, got, tc.want[i])
				}
			}
			if tc.assignor != nil && d.Assignor != *tc.assignor {
				t.Errorf("assignor %s", d.Assignor)
			}
		})
	}
}

func TestConsumerUniformIsSticky(t *testing.T) {
	f := newFixture(t, 0)
	ms := []*cm{f.consumer("m0", "a"), f.consumer("m1", "a"), f.consumer("m2", "a")}
	for range 3 {
		for _, m := range ms {
			m.beat()
		}
	}
	before := map[string]string{}
	for _, m := range f.describe().Members {
		before[m.MemberID] = (&cm{owned: m.Assignment}).parts()
	}
	// m2 leaves: m0 and m1 keep what they had and split m2's partitions.
	if r := f.c.ConsumerHeartbeat(ConsumerHeartbeatRequest{Group: "g", MemberID: "m2", MemberEpoch: -1}); r.Err != nil || r.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", r)
	}
	for _, m := range f.describe().Members {
		tgt := map[int32]bool{}
		for _, p := range m.TargetAssignment[0].Partitions {
			tgt[p] = true
		}
		for _, p := range m.Assignment[0].Partitions {
			if !tgt[p] {
				t.Fatalf("member %s lost partition %d (had %s)", m.MemberID, p, before[m.MemberID])
			}
		}
		if len(tgt) != 3 {
			t.Fatalf("member %s target %v", m.MemberID, tgt)
		}
	}
}

func TestConsumerEpochFencing(t *testing.T) {
	f := newFixture(t, 0)
	a := f.consumer("a", "a")
	a.beat()
	b := f.consumer("b", "a")
	b.beat()
	a.beat()
	a.beat() // revoked: epoch 2
	for _, tc := range []struct {
		name  string
		epoch int32
		owned []TopicPartitions
		want  error
	}{
		{"newer epoch", 3, a.owned, ErrFencedMemberEpoch},
		{"previous epoch, owned within assignment", 1, a.owned, nil},
		{"previous epoch, owning more", 1, []TopicPartitions{{TopicID: topicA, Partitions: []int32{0, 1, 2, 3}}}, ErrFencedMemberEpoch},
		{"previous epoch, keepalive", 1, nil, ErrFencedMemberEpoch},
		{"current", 2, a.owned, nil},
	} {
		req := a.req(tc.epoch)
		req.Owned = tc.owned
		if r := f.c.ConsumerHeartbeat(req); !errors.Is(r.Err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, r.Err, tc.want)
		}
	}
	req := a.req(2)
	req.MemberID = "nobody"
	if r := f.c.ConsumerHeartbeat(req); !errors.Is(r.Err, ErrUnknownMember) {
		t.Errorf("unknown member: %v", r.Err)
	}
}

func TestConsumerSessionExpiryAndRevokeTimeout(t *testing.T) {
	f := newFixture(t, 0)
	a, b := f.consumer("a", "a"), f.consumer("b", "a")
	a.beat()
	b.beat()
	a.beat()
	a.beat()
	b.beat()
	// b goes silent: after its session it is gone and a gets everything.
	f.tick(600 * time.Millisecond)
	a.beat()
	f.tick(600 * time.Millisecond)
	if d := f.describe(); len(d.Members) != 1 {
		t.Fatalf("members after b's session: %+v", d.Members)
	}
	a.beat()
	if a.parts() != "1:[0 1 2 3 4 5]" || a.epoch != 3 {
		t.Fatalf("a owns %s at epoch %d", a.parts(), a.epoch)
	}
	// c joins; a is told to revoke but never does: after its rebalance
	// timeout it is fenced out and c gets the partitions.
	c := f.consumer("c", "a")
	c.beat()
	req := a.req(a.epoch)
	if r := f.c.ConsumerHeartbeat(req); r.Err != nil || len(r.Assignment[0].Partitions) != 3 {
		t.Fatalf("a told to revoke: %+v", r)
	}
	for range 5 {
		f.tick(500 * time.Millisecond)
		c.beat()
		req.Owned = nil // keepalives only
		if r := f.c.ConsumerHeartbeat(req); r.Err != nil {
			break
		}
	}
	if d := f.describe(); len(d.Members) != 1 || d.Members[0].MemberID != "c" {
		t.Fatalf("members: %+v", d.Members)
	}
	c.beat()
	if c.parts() != "1:[0 1 2 3 4 5]" {
		t.Fatalf("c owns %s", c.parts())
	}
	if r := f.c.ConsumerHeartbeat(req); !errors.Is(r.Err, ErrUnknownMember) {
		t.Fatalf("fenced a heartbeats: %v", r.Err)
	}
}

func TestConsumerStaticMembership(t *testing.T) {
	f := newFixture(t, 0)
	inst := "i1"
	a := f.consumer("a1", "a")
	a.instance = &inst
	a.beat()
	owned := a.parts()
	// Another member with the same instance id is refused while a is in.
	b := f.consumer("a2", "a")
	b.instance = &inst
	if r := f.c.ConsumerHeartbeat(b.req(0)); !errors.Is(r.Err, ErrUnreleasedInstanceID) {
		t.Fatalf("duplicate instance: %v", r.Err)
	}
	// a leaves temporarily (-2): it comes back as a2 with its partitions.
	if r := f.c.ConsumerHeartbeat(ConsumerHeartbeatRequest{Group: "g", MemberID: "a1", MemberEpoch: -2}); r.Err != nil || r.MemberEpoch != -2 {
		t.Fatalf("static leave: %+v", r)
	}
	epoch := f.describe().Epoch
	b.beat()
	if b.parts() != owned || b.epoch != a.epoch || f.describe().Epoch != epoch {
		t.Fatalf("a2 owns %s at %d (group epoch %d), want %s at %d without a new epoch", b.parts(), b.epoch, f.describe().Epoch, owned, a.epoch)
	}
}

func TestConsumerBadRequests(t *testing.T) {
	f := newFixture(t, 0)
	bad := "sticky"
	regex := "a(.*"
	m := f.consumer("a", "a")
	for _, tc := range []struct {
		name string
		mod  func(*ConsumerHeartbeatRequest)
		want error
	}{
		{"unknown assignor", func(r *ConsumerHeartbeatRequest) { r.ServerAssignor = &bad }, ErrUnsupportedAssignor},
		{"no group", func(r *ConsumerHeartbeatRequest) { r.Group = "" }, ErrInvalidRequest},
		{"no member id (v1)", func(r *ConsumerHeartbeatRequest) { r.MemberID = "" }, ErrInvalidRequest},
		{"join owning partitions", func(r *ConsumerHeartbeatRequest) {
			r.Owned = []TopicPartitions{{TopicID: topicA, Partitions: []int32{1}}}
		}, ErrInvalidRequest},
		{"join without subscription", func(r *ConsumerHeartbeatRequest) { r.SubscribedTopics = nil }, ErrInvalidRequest},
		{"join without rebalance timeout", func(r *ConsumerHeartbeatRequest) { r.RebalanceTimeout = -1 }, ErrInvalidRequest},
		{"invalid regex", func(r *ConsumerHeartbeatRequest) { r.SubscribedRegex = &regex }, ErrInvalidRegularExpression},
		{"epoch -3", func(r *ConsumerHeartbeatRequest) { r.MemberEpoch = -3 }, ErrInvalidRequest},
		{"heartbeat before joining", func(r *ConsumerHeartbeatRequest) { r.MemberEpoch = 1 }, ErrUnknownMember},
	} {
		req := m.req(0)
		tc.mod(&req)
		if r := f.c.ConsumerHeartbeat(req); !errors.Is(r.Err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, r.Err, tc.want)
		}
	}
	// v0: the coordinator names the member.
	req := m.req(0)
	req.MemberID, req.GenerateMemberID = "", true
	if r := f.c.ConsumerHeartbeat(req); r.Err != nil || r.MemberID == "" || r.MemberEpoch != 1 {
		t.Fatalf("v0 join: %+v", r)
	}
}

func TestConsumerGroupMaxSize(t *testing.T) {
	f := newFixture(t, 0)
	f.c = New(Options{Now: f.clk.Now, NumPartitions: 1, MaxGroupSize: 1})
	if err := f.c.Load(0, f.log); err != nil {
		t.Fatal(err)
	}
	f.consumer("a", "a").beat()
	if r := f.c.ConsumerHeartbeat(f.consumer("b", "a").req(0)); !errors.Is(r.Err, ErrGroupMaxSize) {
		t.Fatalf("second member: %v", r.Err)
	}
}

func TestConsumerCommitAndClassicInterplay(t *testing.T) {
	f := newFixture(t, 0)
	a, b := f.consumer("a", "a"), f.consumer("b", "a")
	a.beat()
	b.beat()
	a.beat() // told to revoke 3-5, still epoch 1
	commit := func(member string, epoch int32, parts ...int32) error {
		req := CommitRequest{Group: "g", Generation: epoch, MemberID: member}
		for _, p := range parts {
			req.Offsets = append(req.Offsets, OffsetCommit{Topic: "a", Partition: p, Offset: 10, LeaderEpoch: -1})
		}
		_, err := f.c.Commit(req)
		return err
	}
	for _, tc := range []struct {
		name   string
		member string
		epoch  int32
		parts  []int32
		want   error
	}{
		{"current epoch", "a", 1, []int32{0, 5}, nil},
		{"newer epoch", "a", 2, []int32{0}, ErrStaleMemberEpoch},
		{"unknown member", "x", 1, []int32{0}, ErrUnknownMember},
		{"simple commit to a group with members", "", -1, []int32{0}, ErrUnknownMember},
	} {
		if err := commit(tc.member, tc.epoch, tc.parts...); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	a.beat() // revoked: epoch 2
	if err := commit("a", 1, 0, 1); err != nil {
		t.Errorf("older epoch, partitions still owned: %v", err)
	}
	if err := commit("a", 1, 4); !errors.Is(err, ErrStaleMemberEpoch) {
		t.Errorf("older epoch, partition given up: %v", err)
	}
	// Classic requests on the consumer group.
	j := f.join(joinReq("", "range"))
	if !j.done() || !errors.Is(j.res.Err, ErrInconsistentProtocol) {
		t.Fatalf("classic join: %+v", j.res)
	}
	if d := f.c.Describe([]string{"g"})[0]; !errors.Is(d.Err, ErrGroupNotFound) {
		t.Fatalf("DescribeGroups: %+v", d)
	}
	l, _ := f.c.List(nil, []string{"consumer"})
	if len(l) != 1 || l[0].State != "Reconciling" {
		t.Fatalf("list: %+v", l)
	}
	// Once everyone left, offsets survive a reload and a classic member
	// may take the group over.
	for _, id := range []string{"a", "b"} {
		f.c.ConsumerHeartbeat(ConsumerHeartbeatRequest{Group: "g", MemberID: id, MemberEpoch: -1})
	}
	if l, _ := f.c.List([]string{"Empty"}, []string{"consumer"}); len(l) != 1 {
		t.Fatalf("list empty consumer groups: %+v", l)
	}
	f.c = f.coordinator(0)
	if o, _ := f.c.Offsets("g"); o["a"][0].Offset != 10 || o["a"][1].Offset != 10 {
		t.Fatalf("offsets after reload: %+v", o)
	}
	// A ConsumerGroupHeartbeat on a classic group with members is refused.
	_, jc := f.newMember("range")
	if !jc.done() || jc.res.Err != nil {
		t.Fatalf("classic join: %+v", jc.res)
	}
	if r := f.c.ConsumerHeartbeat(f.consumer("z", "a").req(0)); !errors.Is(r.Err, ErrGroupNotFound) {
		t.Fatalf("consumer heartbeat on a classic group: %v", r.Err)
	}
}
