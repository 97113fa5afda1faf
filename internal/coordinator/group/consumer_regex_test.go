package group

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"
)

func TestCompileTopicRegex(t *testing.T) {
	for _, tc := range []struct {
		regex   string
		match   []string
		nomatch []string
		invalid bool
	}{
		// The whole name must match (Java's Matcher.matches), not a part.
		{regex: "orders", match: []string{"orders"}, nomatch: []string{"orders-eu", "my-orders"}},
		{regex: "orders-.*", match: []string{"orders-eu", "orders-"}, nomatch: []string{"orders", "x-orders-eu"}},
		{regex: ".*orders.*", match: []string{"orders", "my-orders-eu"}},
		{regex: "a|b", match: []string{"a", "b"}, nomatch: []string{"ab", "ba"}},
		// RE2 syntax shared with RE2/J: classes, flags, quoting.
		{regex: `t\d+`, match: []string{"t1", "t42"}, nomatch: []string{"t", "tx"}},
		{regex: `[[:alpha:]]+`, match: []string{"abc"}, nomatch: []string{"a1"}},
		{regex: `(?i)Orders`, match: []string{"ORDERS", "orders"}},
		{regex: `\Qa.b\E`, match: []string{"a.b"}, nomatch: []string{"axb"}},
		{regex: `(?P<n>x)y`, match: []string{"xy"}},
		// Not RE2 (nor RE2/J): backreferences, lookaround; and malformed.
		{regex: `(a)\1`, invalid: true},
		{regex: `a(?=b)`, invalid: true},
		{regex: `a(`, invalid: true},
		{regex: `a)|(b`, invalid: true},
	} {
		re, err := compileTopicRegex(tc.regex)
		if tc.invalid {
			if !errors.Is(err, ErrInvalidRegularExpression) {
				t.Errorf("%q: %v, want invalid", tc.regex, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.regex, err)
			continue
		}
		for _, n := range tc.match {
			if !re.MatchString(n) {
				t.Errorf("%q does not match %q", tc.regex, n)
			}
		}
		for _, n := range tc.nomatch {
			if re.MatchString(n) {
				t.Errorf("%q matches %q", tc.regex, n)
			}
		}
	}
}

// regexWorld is the metadata a regex group resolves against; every change
// moves its version, as the image offset does.
type regexWorld struct {
	topics  map[string]TopicMeta
	version int64
}

func (w *regexWorld) set(name string, parts int32) {
	if parts == 0 {
		delete(w.topics, name)
	} else {
		w.topics[name] = TopicMeta{ID: [16]byte{byte(w.version + 1)}, Partitions: parts}
	}
	w.version++
}

func (w *regexWorld) req(id string, epoch int32, regex *string, names []string, owned []TopicPartitions) ConsumerHeartbeatRequest {
	return ConsumerHeartbeatRequest{
		Group: "g", MemberID: id, MemberEpoch: epoch, RebalanceTimeout: 2 * time.Second,
		SubscribedTopics: names, SubscribedRegex: regex, Owned: owned, SessionTimeout: time.Second,
		Topics: func(n string) (TopicMeta, bool) { tm, ok := w.topics[n]; return tm, ok },
		// The broker leaves the internal topics out.
		TopicNames:      func() []string { return slices.Sorted(maps.Keys(w.topics)) },
		MetadataVersion: w.version,
	}
}

func ownedTopics(ts []TopicPartitions, w *regexWorld) []string {
	var out []string
	for _, t := range ts {
		for n, tm := range w.topics {
			if tm.ID == t.TopicID {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestConsumerRegexSubscription(t *testing.T) {
	f := newFixture(t, 0)
	w := &regexWorld{topics: map[string]TopicMeta{}}
	w.set("t-1", 2)
	w.set("other", 1)
	rx := "t-.*"
	owned := []TopicPartitions{}
	epoch := int32(0)
	beat := func(regex *string) ConsumerHeartbeatResult {
		t.Helper()
		r := f.c.ConsumerHeartbeat(w.req("a", epoch, regex, nil, owned))
		if r.Err != nil {
			t.Fatalf("heartbeat: %v", r.Err)
		}
		epoch = r.MemberEpoch
		if r.Assignment != nil {
			owned = r.Assignment
		}
		return r
	}
	beat(&rx)
	if got := ownedTopics(owned, w); !slices.Equal(got, []string{"t-1"}) {
		t.Fatalf("joined by regex, owns %v", got)
	}
	if d := f.describe(); d.Members[0].SubscribedRegex != rx {
		t.Fatalf("describe: %+v", d.Members[0])
	}
	// A matching topic created while the group runs: picked up on the
	// next heartbeat (which does not repeat the regex).
	w.set("t-2", 3)
	w.set("u-1", 1)
	before := epoch
	beat(nil)
	if got := ownedTopics(owned, w); !slices.Equal(got, []string{"t-1", "t-2"}) || epoch <= before {
		t.Fatalf("after t-2 was created: owns %v at epoch %d (was %d)", got, epoch, before)
	}
	// No metadata change: nothing moves.
	before = epoch
	beat(nil)
	if epoch != before {
		t.Fatalf("epoch moved from %d to %d with nothing changed", before, epoch)
	}
	// A matching topic deleted: revoked.
	w.set("t-1", 0)
	beat(nil)
	beat(nil)
	if got := ownedTopics(owned, w); !slices.Equal(got, []string{"t-2"}) {
		t.Fatalf("after t-1 was deleted: owns %v", got)
	}
	// A second member by names and regex: its subscription is the union.
	rx2 := "u-.*"
	r := f.c.ConsumerHeartbeat(w.req("b", 0, &rx2, []string{"other"}, []TopicPartitions{}))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := ownedTopics(r.Assignment, w); !slices.Equal(got, []string{"other", "u-1"}) {
		t.Fatalf("b by names and regex owns %v", got)
	}
	// Switching a back from the regex to names (an empty regex clears it).
	empty := ""
	r = f.c.ConsumerHeartbeat(w.req("a", epoch, &empty, []string{"other"}, owned))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if d := f.describe(); d.Members[0].SubscribedRegex != "" || !slices.Equal(d.Members[0].SubscribedTopics, []string{"other"}) {
		t.Fatalf("after clearing the regex: %+v", d.Members[0])
	}
	if g := f.c.testGroup("g"); len(g.consumer.regexes) != 1 {
		t.Fatalf("regexes kept: %v", g.consumer.regexes)
	}
}
