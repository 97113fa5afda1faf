package txn

import (
	"fmt"
	"math"
	"sort"
)

// State is a transaction's state, numbered as Kafka's TransactionState
// (the byte written in TransactionLogValue).
type State int8

// The states. PrepareEpochFence is Kafka's transient state of an
// InitProducerId that fences an ongoing transaction; here the fence and the
// abort are one PrepareAbort record with the bumped epoch, so it is never
// held, but it is decoded and named as Kafka does.
const (
	Empty             State = 0
	Ongoing           State = 1
	PrepareCommit     State = 2
	PrepareAbort      State = 3
	CompleteCommit    State = 4
	CompleteAbort     State = 5
	Dead              State = 6
	PrepareEpochFence State = 7
)

var stateNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}

// String is Kafka's name of the state, as DescribeTransactions and
// ListTransactions report it.
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int8(s))
}

// ParseState is the inverse of String; ok is false for an unknown name.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name {
			return State(i), true
		}
	}
	return 0, false
}

// TopicPartition names a partition of a transaction.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// NoProducerID and NoProducerEpoch are Kafka's RecordBatch.NO_PRODUCER_ID
// and NO_PRODUCER_EPOCH.
const (
	NoProducerID    int64 = -1
	NoProducerEpoch int16 = -1
)

// epochExhausted is Kafka's TransactionMetadata.isEpochExhausted: the last
// epoch a producer may be given before its id must rotate (one is kept to
// fence with).
func epochExhausted(e int16) bool { return e >= math.MaxInt16-1 }

// txn is one transactional id's state: exactly what its last record says.
type txn struct {
	id               string
	producerID       int64
	prevProducerID   int64
	nextProducerID   int64
	epoch            int16
	lastEpoch        int16
	timeoutMs        int32
	state            State
	partitions       map[TopicPartition]bool
	startMs          int64 // -1 when no transaction has started
	updateMs         int64
	clientTxnVersion int16
}

func (t *txn) clone() *txn {
	c := *t
	c.partitions = make(map[TopicPartition]bool, len(t.partitions))
	for tp := range t.partitions {
		c.partitions[tp] = true
	}
	return &c
}

// sortedPartitions lists the partitions by topic, then partition.
func (t *txn) sortedPartitions() []TopicPartition {
	out := make([]TopicPartition, 0, len(t.partitions))
	for tp := range t.partitions {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

func (t *txn) prepared() bool { return t.state == PrepareCommit || t.state == PrepareAbort }

func (t *txn) completed() bool {
	return t.state == Empty || t.state == CompleteCommit || t.state == CompleteAbort
}
