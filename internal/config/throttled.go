package config

import (
	"errors"
	"strconv"
	"strings"
)

// ThrottledReplicas is a parsed leader.replication.throttled.replicas or
// follower.replication.throttled.replicas (KIP-73): every replica of the
// topic ("*"), or partition:broker pairs. The zero value throttles nothing.
type ThrottledReplicas struct {
	All   bool
	Pairs map[ReplicaRef]bool
}

// ReplicaRef is one partition:broker pair.
type ReplicaRef struct {
	Partition int32
	Broker    int32
}

// Has reports whether the replica of partition on broker is listed.
func (t ThrottledReplicas) Has(partition, broker int32) bool {
	return t.All || t.Pairs[ReplicaRef{partition, broker}]
}

// Empty reports whether nothing is throttled.
func (t ThrottledReplicas) Empty() bool { return !t.All && len(t.Pairs) == 0 }

var errThrottledList = errors.New("must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId] (and so on)")

// ParseThrottledReplicas parses and validates a throttled-replicas list as
// Kafka's ThrottledReplicaListValidator does: the entries, split on commas
// and trimmed, are either exactly "*" or partition:broker pairs of decimal
// digits that fit an int32; empty entries may only trail ("" is the empty
// list).
func ParseThrottledReplicas(v string) (ThrottledReplicas, error) {
	entries := strings.Split(v, ",")
	for i := range entries {
		entries[i] = strings.TrimSpace(entries[i])
	}
	if len(entries) == 1 && entries[0] == "*" {
		return ThrottledReplicas{All: true}, nil
	}
	var out ThrottledReplicas
	sawEmpty := false
	for _, e := range entries {
		if e == "" {
			sawEmpty = true
			continue
		}
		if sawEmpty {
			return ThrottledReplicas{}, errThrottledList
		}
		ps, bs, ok := strings.Cut(e, ":")
		part, err1 := parseDigits32(ps)
		broker, err2 := parseDigits32(bs)
		if !ok || err1 != nil || err2 != nil {
			return ThrottledReplicas{}, errThrottledList
		}
		if out.Pairs == nil {
			out.Pairs = map[ReplicaRef]bool{}
		}
		out.Pairs[ReplicaRef{part, broker}] = true
	}
	return out, nil
}

// parseDigits32 parses one or more decimal digits (no sign) into an int32.
func parseDigits32(s string) (int32, error) {
	if s == "" {
		return 0, errThrottledList
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errThrottledList
		}
	}
	n, err := strconv.ParseInt(s, 10, 32)
	return int32(n), err
}

func throttledReplicaList(v string) error {
	_, err := ParseThrottledReplicas(v)
	return err
}
