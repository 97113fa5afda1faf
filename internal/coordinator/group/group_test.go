package group

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// memLog is an in-memory Log.
type memLog struct {
	batches [][]byte
	fail    error
}

func (l *memLog) Append(b []byte) error {
	if l.fail != nil {
		return l.fail
	}
	l.batches = append(l.batches, append([]byte(nil), b...))
	return nil
}

func (l *memLog) ForEachBatch(fn func([]byte) error) error {
	for _, b := range l.batches {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

type fixture struct {
	t   *testing.T
	clk *clock
	log *memLog
	c   *Coordinator
}

func newFixture(t *testing.T, delay time.Duration) *fixture {
	clk := &clock{now: time.Unix(1700000000, 0)}
	f := &fixture{t: t, clk: clk, log: &memLog{}}
	f.c = f.coordinator(delay)
	return f
}

func (f *fixture) coordinator(delay time.Duration) *Coordinator {
	c := New(Options{Now: f.clk.Now, NumPartitions: 1, InitialRebalanceDelay: delay, MinSessionTimeout: time.Millisecond})
	if err := c.Load(0, f.log); err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) tick(d time.Duration) {
	f.clk.advance(d)
	f.c.Tick()
}

// pendingJoin captures an asynchronous join answer.
type pendingJoin struct{ res *JoinResult }

func (p *pendingJoin) done() bool { return p.res != nil }

func joinReq(member string, protos ...string) JoinRequest {
	r := JoinRequest{Group: "g", MemberID: member, ClientID: "c", SessionTimeout: time.Second, RebalanceTimeout: 2 * time.Second, ProtocolType: "consumer"}
	for _, p := range protos {
		r.Protocols = append(r.Protocols, Protocol{Name: p, Metadata: []byte("meta-" + p)})
	}
	return r
}

func (f *fixture) join(r JoinRequest) *pendingJoin {
	p := &pendingJoin{}
	f.c.Join(r, func(res JoinResult) { p.res = &res })
	return p
}

// newMember joins with KIP-394 and returns the join still pending.
func (f *fixture) newMember(protos ...string) (string, *pendingJoin) {
	f.t.Helper()
	r := joinReq("", protos...)
	r.RequireKnownMemberID = true
	p := f.join(r)
	if !p.done() || !errors.Is(p.res.Err, ErrMemberIDRequired) || p.res.MemberID == "" {
		f.t.Fatalf("first join: %+v, want MEMBER_ID_REQUIRED with an id", p.res)
	}
	id := p.res.MemberID
	r.MemberID = id
	return id, f.join(r)
}

func (f *fixture) sync(member string, gen int32, assign map[string][]byte) *SyncResult {
	var out *SyncResult
	f.c.Sync(SyncRequest{Group: "g", Generation: gen, MemberID: member, Assignments: assign}, func(r SyncResult) { out = &r })
	return out
}

func TestJoinSyncHeartbeatLeave(t *testing.T) {
	f := newFixture(t, 0)
	a, ja := f.newMember("range")
	if !ja.done() || ja.res.Err != nil || ja.res.Generation != 1 || ja.res.Leader != a || len(ja.res.Members) != 1 {
		t.Fatalf("a's join: %+v", ja.res)
	}
	if s := f.sync(a, 1, map[string][]byte{a: []byte("all")}); s == nil || string(s.Assignment) != "all" {
		t.Fatalf("a's sync: %+v", s)
	}
	// b joins: a hears REBALANCE_IN_PROGRESS on heartbeat and rejoins.
	b, jb := f.newMember("range")
	if jb.done() {
		t.Fatal("b's join answered before a rejoined")
	}
	if err := f.c.Heartbeat("g", 1, a, nil); !errors.Is(err, ErrRebalanceInProgress) {
		t.Fatalf("heartbeat during rebalance: %v", err)
	}
	ja = f.join(joinReq(a, "range"))
	if !ja.done() || !jb.done() || ja.res.Generation != 2 || jb.res.Generation != 2 {
		t.Fatalf("joins: %+v %+v", ja.res, jb.res)
	}
	if ja.res.Leader != a || len(ja.res.Members) != 2 || len(jb.res.Members) != 0 {
		t.Fatalf("leader %s got %d members, follower got %d", ja.res.Leader, len(ja.res.Members), len(jb.res.Members))
	}
	if err := f.c.Heartbeat("g", 1, a, nil); !errors.Is(err, ErrIllegalGeneration) {
		t.Fatalf("stale heartbeat: %v", err)
	}
	sb := f.sync(b, 2, nil)
	if sb != nil {
		t.Fatal("follower's sync answered before the leader's")
	}
	var sbRes *SyncResult
	f.c.Sync(SyncRequest{Group: "g", Generation: 2, MemberID: b}, func(r SyncResult) { sbRes = &r })
	sa := f.sync(a, 2, map[string][]byte{a: []byte("A"), b: []byte("B")})
	if sa == nil || string(sa.Assignment) != "A" || sbRes == nil || string(sbRes.Assignment) != "B" {
		t.Fatalf("syncs: %+v %+v", sa, sbRes)
	}
	if err := f.c.Heartbeat("g", 2, b, nil); err != nil {
		t.Fatal(err)
	}
	errs, err := f.c.Leave("g", []LeaveMember{{MemberID: b}, {MemberID: "nobody"}})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrUnknownMember) {
		t.Fatalf("leave: %v %v", errs, err)
	}
	if d := f.c.Describe([]string{"g"})[0]; d.State != "PreparingRebalance" || len(d.Members) != 1 {
		t.Fatalf("after leave: %+v", d)
	}
}

func TestSessionAndRebalanceTimeouts(t *testing.T) {
	f := newFixture(t, 0)
	a, _ := f.newMember("range")
	f.sync(a, 1, map[string][]byte{a: nil})
	b, jb := f.newMember("range")
	// a never rejoins: after the rebalance timeout (2s) it is dropped, but
	// its session (1s) expires first since it stops heartbeating.
	f.tick(1100 * time.Millisecond)
	if !jb.done() || jb.res.Generation != 2 || jb.res.Leader != b {
		t.Fatalf("b's join after a expired: %+v", jb.res)
	}
	f.sync(b, 2, map[string][]byte{b: []byte("x")})
	f.tick(500 * time.Millisecond)
	if err := f.c.Heartbeat("g", 2, b, nil); err != nil {
		t.Fatal(err)
	}
	f.tick(1100 * time.Millisecond)
	if err := f.c.Heartbeat("g", 2, b, nil); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("heartbeat after expiry: %v", err)
	}
	if d := f.c.Describe([]string{"g"})[0]; d.State != "Empty" {
		t.Fatalf("state %s, want Empty", d.State)
	}
}

func TestInitialDelay(t *testing.T) {
	f := newFixture(t, 300*time.Millisecond)
	_, ja := f.newMember("range")
	_, jb := f.newMember("range")
	f.tick(200 * time.Millisecond)
	if ja.done() || jb.done() {
		t.Fatal("join completed inside the initial delay")
	}
	f.tick(200 * time.Millisecond)
	if !ja.done() || !jb.done() || ja.res.Generation != 1 || jb.res.Generation != 1 {
		t.Fatalf("joins: %+v %+v", ja.res, jb.res)
	}
}

func TestProtocolSelection(t *testing.T) {
	tests := []struct {
		members [][]string
		want    string
		err     bool
	}{
		{[][]string{{"range", "roundrobin"}, {"roundrobin", "range"}, {"roundrobin"}}, "roundrobin", false},
		{[][]string{{"a", "b"}, {"a", "b"}}, "a", false},
		{[][]string{{"a"}, {"b"}}, "", true},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			f := newFixture(t, 10*time.Millisecond)
			var joins []*pendingJoin
			for k, ps := range tt.members {
				r := joinReq("", ps...)
				p := f.join(r)
				if k == len(tt.members)-1 && tt.err {
					if !p.done() || !errors.Is(p.res.Err, ErrInconsistentProtocol) {
						t.Fatalf("join: %+v, want INCONSISTENT_GROUP_PROTOCOL", p.res)
					}
					continue
				}
				joins = append(joins, p)
			}
			f.tick(20 * time.Millisecond)
			for _, j := range joins {
				if !j.done() || j.res.Err != nil || (!tt.err && j.res.Protocol != tt.want) {
					t.Fatalf("join: %+v, want protocol %q", j.res, tt.want)
				}
			}
		})
	}
}

func TestStaticMembership(t *testing.T) {
	f := newFixture(t, 0)
	inst := "instance-1"
	r := joinReq("", "range")
	r.InstanceID, r.RequireKnownMemberID = &inst, true
	j1 := f.join(r)
	if !j1.done() || j1.res.Err != nil {
		t.Fatalf("static join: %+v", j1.res)
	}
	old := j1.res.MemberID
	f.sync(old, 1, map[string][]byte{old: []byte("p")})
	b, _ := f.newMember("range")
	jo := f.join(joinReq(old, "range"))
	if !jo.done() {
		t.Fatal("rebalance did not complete")
	}
	f.sync(old, 2, map[string][]byte{old: []byte("p0"), b: []byte("p1")})
	// The static member restarts with a new member id: no rebalance.
	j2 := f.join(r)
	if !j2.done() || j2.res.Err != nil || j2.res.Generation != 2 || j2.res.MemberID == old {
		t.Fatalf("static rejoin: %+v", j2.res)
	}
	if d := f.c.Describe([]string{"g"})[0]; d.State != "Stable" {
		t.Fatalf("state after static rejoin: %s", d.State)
	}
	if err := f.c.Heartbeat("g", 2, old, &inst); !errors.Is(err, ErrFencedInstanceID) {
		t.Fatalf("old member id heartbeat: %v", err)
	}
	if s := f.sync(j2.res.MemberID, 2, nil); s == nil || string(s.Assignment) != "p0" {
		t.Fatalf("new id's assignment: %+v", s)
	}
	errs, _ := f.c.Leave("g", []LeaveMember{{MemberID: old, InstanceID: &inst}})
	if !errors.Is(errs[0], ErrFencedInstanceID) {
		t.Fatalf("leave with stale id: %v", errs[0])
	}
	errs, _ = f.c.Leave("g", []LeaveMember{{InstanceID: &inst}})
	if errs[0] != nil {
		t.Fatalf("leave by instance id: %v", errs[0])
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, 0)
	big := joinReq("", "range")
	big.Protocols[0].Metadata = make([]byte, DefaultMaxMemberMetadataBytes+1)
	empty := joinReq("")
	noGroup := joinReq("", "range")
	noGroup.Group = ""
	for name, tc := range map[string]struct {
		req  JoinRequest
		want error
	}{
		"empty protocols":   {empty, ErrInconsistentProtocol},
		"oversized":         {big, ErrInvalidRequest},
		"no group id":       {noGroup, ErrInvalidGroupID},
		"unknown member id": {joinReq("ghost", "range"), ErrUnknownMember},
	} {
		if p := f.join(tc.req); !p.done() || !errors.Is(p.res.Err, tc.want) {
			t.Errorf("%s: %+v, want %v", name, p.res, tc.want)
		}
	}
	if err := f.c.Heartbeat("nope", 1, "m", nil); !errors.Is(err, ErrUnknownMember) {
		t.Errorf("unknown group heartbeat: %v", err)
	}
	// The group still works.
	a, ja := f.newMember("range")
	if ja.res == nil || ja.res.Err != nil {
		t.Fatalf("join after bad input: %+v", ja.res)
	}
	f.sync(a, 1, map[string][]byte{a: nil})
	_, err := f.c.Commit(CommitRequest{Group: "g", Generation: 0, MemberID: a, Offsets: []OffsetCommit{{Topic: "t", Offset: 1}}})
	if !errors.Is(err, ErrIllegalGeneration) {
		t.Fatalf("stale generation commit: %v", err)
	}
	md := strings.Repeat("x", 4097)
	errs, err := f.c.Commit(CommitRequest{Group: "g", Generation: 1, MemberID: a, Offsets: []OffsetCommit{{Topic: "t", Offset: 1, Metadata: &md}, {Topic: "t", Partition: 1, Offset: 7}}})
	if err != nil || !errors.Is(errs[0], ErrMetadataTooLarge) || errs[1] != nil {
		t.Fatalf("commit: %v %v", errs, err)
	}
	if _, err := f.c.Commit(CommitRequest{Group: "simple", Generation: -1, Offsets: []OffsetCommit{{Topic: "t", Offset: 3}}}); err != nil {
		t.Fatalf("simple commit: %v", err)
	}
	if _, err := f.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []OffsetCommit{{Topic: "t", Offset: 3}}}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("simple commit to a live group: %v", err)
	}
	errs, _ = f.c.DeleteOffsets("g", []TopicPartition{{"t", 1}})
	_ = errs // "t" is not in the consumer-protocol metadata here
	if got := f.c.DeleteGroups([]string{"g", "none"}); !errors.Is(got[0], ErrNonEmptyGroup) || !errors.Is(got[1], ErrGroupNotFound) {
		t.Fatalf("delete groups: %v", got)
	}
}

func TestReplayRebuildsState(t *testing.T) {
	f := newFixture(t, 0)
	a, _ := f.newMember("range")
	f.sync(a, 1, map[string][]byte{a: []byte("assign")})
	f.c.Commit(CommitRequest{Group: "g", Generation: 1, MemberID: a, Offsets: []OffsetCommit{{Topic: "t", Partition: 2, Offset: 42, LeaderEpoch: 3}}})
	f.c.Commit(CommitRequest{Group: "s", Generation: -1, Offsets: []OffsetCommit{{Topic: "t", Offset: 5}}})
	f.c.Commit(CommitRequest{Group: "gone", Generation: -1, Offsets: []OffsetCommit{{Topic: "t", Offset: 5}}})
	if errs := f.c.DeleteGroups([]string{"gone"}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	want := f.c.Describe([]string{"g", "s", "gone"})
	wantOffsets, _ := f.c.Offsets("g")

	re := f.coordinator(0)
	if got := re.Describe([]string{"g", "s", "gone"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("replayed groups:\n%+v\nwant\n%+v", got, want)
	}
	if got, _ := re.Offsets("g"); !reflect.DeepEqual(got, wantOffsets) {
		t.Fatalf("replayed offsets %v, want %v", got, wantOffsets)
	}
	// The replayed member keeps heartbeating into the same generation.
	if err := re.Heartbeat("g", 1, a, nil); err != nil {
		t.Fatal(err)
	}
}

func TestAppendFailure(t *testing.T) {
	f := newFixture(t, 0)
	a, _ := f.newMember("range")
	f.log.fail = errors.New("disk full")
	if s := f.sync(a, 1, map[string][]byte{a: nil}); s == nil || !errors.Is(s.Err, ErrCoordinatorNotAvail) {
		t.Fatalf("sync with a failing log: %+v", s)
	}
	errs, err := f.c.Commit(CommitRequest{Group: "x", Generation: -1, Offsets: []OffsetCommit{{Topic: "t"}}})
	if err != nil || !errors.Is(errs[0], ErrCoordinatorNotAvail) {
		t.Fatalf("commit with a failing log: %v %v", errs, err)
	}
}

func TestPartitionFor(t *testing.T) {
	// Values from Kafka: abs("my-group".hashCode()) % 50 and friends.
	for _, tc := range []struct {
		id   string
		want int32
	}{{"", 0}, {"a", 97 % 50}, {"ab", (97*31 + 98) % 50}} {
		if got := PartitionFor(tc.id, 50); got != tc.want {
			t.Errorf("PartitionFor(%q) = %d, want %d", tc.id, got, tc.want)
		}
	}
}

func TestLoadInProgress(t *testing.T) {
	c := New(Options{NumPartitions: 2})
	c.BeginLoad(0, &memLog{})
	p := PartitionFor("g", 2)
	_, err := c.Offsets("g")
	if p == 0 && !errors.Is(err, ErrLoadInProgress) || p == 1 && !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("offsets during load: %v", err)
	}
}

// A storage failure of the offsets partition answers NOT_COORDINATOR, as
// Kafka's coordinators turn KAFKA_STORAGE_ERROR into, and nothing is
// applied; once the log takes writes again the commit goes through.
func TestAppendStorageFailure(t *testing.T) {
	f := newFixture(t, 0)
	f.log.fail = fmt.Errorf("%w: __consumer_offsets-0: no space left on device", ErrLogStorage)
	errs, err := f.c.Commit(CommitRequest{Group: "x", Generation: -1, Offsets: []OffsetCommit{{Topic: "t", Offset: 5}}})
	if err != nil || !errors.Is(errs[0], ErrNotCoordinator) {
		t.Fatalf("commit with a full offsets partition: %v %v", errs, err)
	}
	if offs, err := f.c.Offsets("x"); err != nil || len(offs["t"]) != 0 {
		t.Fatalf("a failed commit was applied: %v %v", offs, err)
	}
	f.log.fail = nil
	errs, err = f.c.Commit(CommitRequest{Group: "x", Generation: -1, Offsets: []OffsetCommit{{Topic: "t", Offset: 5}}})
	if err != nil || errs[0] != nil {
		t.Fatalf("commit once the log takes writes: %v %v", errs, err)
	}
	if offs, _ := f.c.Offsets("x"); offs["t"][0].Offset != 5 {
		t.Fatalf("offsets after the commit: %v", offs)
	}
}
