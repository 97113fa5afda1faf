package group

// Regex subscriptions of the consumer protocol (SubscribedTopicRegex), as
// Kafka 4.0 serves them: the coordinator resolves the regex against the
// topics in the metadata, re-resolves it whenever the metadata changed
// since (topics created or deleted), and a member's subscription is its
// topic names plus the topics its regex matches. Internal topics never
// match: the broker leaves them out of ConsumerHeartbeatRequest.TopicNames.
//
// Syntax: Kafka compiles the regex with RE2/J, Go's regexp is RE2: the same
// syntax (Perl classes, (?flags), \Q..\E, named groups; no backreferences
// or lookaround in either). As Kafka (Java's Matcher.matches), the regex
// must match the whole topic name, not a part of it.

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
)

// ErrInvalidRegularExpression is a SubscribedTopicRegex that does not compile.
var ErrInvalidRegularExpression = errors.New("invalid regular expression")

// compileTopicRegex compiles a subscription regex to match whole names.
func compileTopicRegex(s string) (*regexp.Regexp, error) {
	// Compile it alone first: wrapped, an unbalanced "a)|(b" would compile.
	if _, err := regexp.Compile(s); err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrInvalidRegularExpression, s, err)
	}
	return regexp.Compile(`^(?:` + s + `)$`)
}

// regexSub is one regex some member subscribes with and the topics it
// matched at metadata version version.
type regexSub struct {
	re       *regexp.Regexp
	resolved bool
	version  int64
	topics   []string
}

// resolveRegexes brings the matches of every regex in use up to the
// metadata version, and forgets regexes no member uses any more.
func (cg *consumerGroup) resolveRegexes(names func() []string, version int64) {
	used := map[string]bool{}
	for _, m := range cg.members {
		if m.regex != "" {
			used[m.regex] = true
		}
	}
	for rx := range cg.regexes {
		if !used[rx] {
			delete(cg.regexes, rx)
		}
	}
	var all []string
	loaded := false
	for rx := range used {
		s := cg.regexes[rx]
		if s == nil {
			re, err := compileTopicRegex(rx)
			if err != nil {
				continue // refused when it was subscribed
			}
			s = &regexSub{re: re}
			cg.regexes[rx] = s
		}
		if s.resolved && s.version == version || names == nil {
			continue
		}
		if !loaded {
			all, loaded = names(), true
		}
		s.topics = nil
		for _, n := range all {
			if s.re.MatchString(n) {
				s.topics = append(s.topics, n)
			}
		}
		s.resolved, s.version = true, version
	}
}

// memberTopics is a member's whole subscription: its names and its
// regex's matches, sorted.
func (cg *consumerGroup) memberTopics(m *cmember) []string {
	if m.regex == "" || cg.regexes[m.regex] == nil {
		return m.subscribed
	}
	out := append(slices.Clone(m.subscribed), cg.regexes[m.regex].topics...)
	slices.Sort(out)
	return slices.Compact(out)
}
