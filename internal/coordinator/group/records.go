package group

// The __consumer_offsets record formats, as Kafka writes them:
//
//	key version 0/1: OffsetCommitKey{group, topic, partition}; value
//	  OffsetCommitValue v3 {offset, leader epoch, metadata, commit time}
//	key version 2: GroupMetadataKey{group}; value GroupMetadataValue v3
//	  {protocol type, generation, protocol, leader, state time, members}
//
// A nil value is a tombstone: the offset, or the whole group, is gone.
// applyRecord is the one function that turns records into state, at load
// time and after every write.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/record"
)

type kv struct{ key, value []byte }

type topicPartition struct {
	topic     string
	partition int32
}

// committed is one committed offset.
type committed struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitTime  int64 // unix millis
	// seq orders the commits of a group as their records are in the log:
	// a transactional commit materialized by its marker does not replace
	// a later plain commit (Kafka compares their log offsets).
	seq uint64
}

func offsetKey(groupID string, tp topicPartition) []byte {
	k := kmsg.OffsetCommitKey{Version: 1, Group: groupID, Topic: tp.topic, Partition: tp.partition}
	return k.AppendTo(nil)
}

func offsetValue(c committed) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = 3
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = c.offset, c.leaderEpoch, c.metadata, c.commitTime
	return v.AppendTo(nil)
}

func groupKey(groupID string) []byte {
	k := kmsg.GroupMetadataKey{Version: 2, Group: groupID}
	return k.AppendTo(nil)
}

// groupValue encodes the group's durable part: generation, protocol,
// leader and each member with its subscription (the selected protocol's
// metadata) and assignment.
func groupValue(g *group) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		p := g.protocol
		v.Protocol = &p
	}
	if g.leader != "" {
		l := g.leader
		v.Leader = &l
	}
	v.CurrentStateTimestamp = g.stateTime.UnixMilli()
	for _, id := range g.order {
		m := g.members[id]
		v.Members = append(v.Members, kmsg.GroupMetadataValueMember{
			MemberID:               m.id,
			InstanceID:             m.instanceID,
			ClientID:               m.clientID,
			ClientHost:             m.clientHost,
			RebalanceTimeoutMillis: int32(m.rebalanceTimeout / time.Millisecond),
			SessionTimeoutMillis:   int32(m.sessionTimeout / time.Millisecond),
			Subscription:           m.metadataFor(g.protocol),
			Assignment:             m.assignment,
		})
	}
	return v.AppendTo(nil)
}

// buildBatch makes an uncompressed batch of recs, offset deltas 0..n-1; a
// transactional one of producer pid at epoch from sequence seq when pid >=
// 0 (TxnOffsetCommit).
func buildBatch(recs []kv, ts int64, pid int64, epoch int16, seq int32) ([]byte, error) {
	rs := make([]record.Record, len(recs))
	for i, r := range recs {
		rs[i] = record.Record{OffsetDelta: int32(i), Key: r.key, Value: r.value}
	}
	opts := record.NewBatchOptions(record.CodecNone)
	if pid >= 0 {
		opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = pid, epoch, seq, true
	}
	b, err := record.Build(nil, opts, ts, rs)
	if err != nil {
		return nil, fmt.Errorf("build __consumer_offsets batch: %w", err)
	}
	return b, nil
}

// applyBatch applies one batch at load: its records, transactional ones
// pending under their producer, or a control batch's commit or abort of
// the pending offsets of its producer.
func applyBatch(groups map[string]*group, p int32, batch []byte, now time.Time) error {
	h, err := record.ParseHeader(batch)
	if err != nil {
		return err
	}
	if h.IsControl() {
		var commit, found bool
		err := record.ForEach(batch, func(r *record.Record) error {
			if len(r.Key) >= 4 {
				commit, found = binary.BigEndian.Uint16(r.Key[2:]) == 1, true
			}
			return nil
		})
		if err != nil || !found {
			return err
		}
		for _, g := range groups {
			g.completeTxn(h.ProducerID, commit)
		}
		return nil
	}
	pid := int64(-1)
	if h.IsTransactional() {
		pid = h.ProducerID
	}
	return record.ForEach(batch, func(r *record.Record) error {
		return applyRecord(groups, p, r.Key, r.Value, h.FirstTimestamp+r.TimestampDelta, now, pid)
	})
}

// applyRecord applies one record to groups (the groups of partition p). It
// copies what it keeps. Unknown key versions are skipped, as Kafka does.
// An offset commit of a transaction (txnPID >= 0) stays pending until the
// transaction's marker.
func applyRecord(groups map[string]*group, p int32, key, value []byte, ts int64, now time.Time, txnPID int64) error {
	if len(key) < 2 {
		return fmt.Errorf("__consumer_offsets record with a %d-byte key", len(key))
	}
	switch ver := int16(binary.BigEndian.Uint16(key)); ver {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return fmt.Errorf("decode offset commit key: %w", err)
		}
		tp := topicPartition{k.Topic, k.Partition}
		g := groups[k.Group]
		if value == nil {
			if g != nil {
				delete(g.offsets, tp)
			}
			return nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(value); err != nil {
			return fmt.Errorf("decode offset commit value for group %q: %w", k.Group, err)
		}
		if g == nil {
			g = newGroup(k.Group, p, now)
			groups[k.Group] = g
		}
		if v.Version < 3 {
			v.LeaderEpoch = -1
		}
		g.seq++
		c := committed{offset: v.Offset, leaderEpoch: v.LeaderEpoch, metadata: v.Metadata, commitTime: v.CommitTimestamp, seq: g.seq}
		if txnPID >= 0 {
			g.addPendingTxn(txnPID, tp, c)
			return nil
		}
		g.offsets[tp] = c
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return fmt.Errorf("decode group metadata key: %w", err)
		}
		if value == nil {
			delete(groups, k.Group)
			return nil
		}
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(value); err != nil {
			return fmt.Errorf("decode group metadata for %q: %w", k.Group, err)
		}
		g := groups[k.Group]
		if g == nil {
			g = newGroup(k.Group, p, now)
			groups[k.Group] = g
		}
		g.applyMetadata(&v)
	}
	return nil
}

// applyMetadata sets the durable fields from a GroupMetadataValue. Members
// already in memory keep their runtime state (waiters, deadlines, all
// their protocols); the rest are created; members the value does not list
// are dropped (at run time the value always lists exactly the members).
func (g *group) applyMetadata(v *kmsg.GroupMetadataValue) {
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	g.protocol, g.leader = "", ""
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.Leader != nil {
		g.leader = *v.Leader
	}
	if v.CurrentStateTimestamp > 0 {
		g.stateTime = time.UnixMilli(v.CurrentStateTimestamp)
	}
	keep := make(map[string]bool, len(v.Members))
	order := make([]string, 0, len(v.Members))
	for _, vm := range v.Members {
		keep[vm.MemberID] = true
		order = append(order, vm.MemberID)
		m := g.members[vm.MemberID]
		if m == nil {
			m = &member{id: vm.MemberID, protocolType: v.ProtocolType}
			m.protocols = []protocol{{name: g.protocol, metadata: bytes.Clone(vm.Subscription)}}
			g.members[vm.MemberID] = m
		}
		if vm.InstanceID != nil {
			s := *vm.InstanceID
			m.instanceID = &s
			g.static[s] = m.id
		}
		m.clientID, m.clientHost = vm.ClientID, vm.ClientHost
		m.rebalanceTimeout = time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond
		m.sessionTimeout = time.Duration(vm.SessionTimeoutMillis) * time.Millisecond
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		m.assignment = bytes.Clone(vm.Assignment)
	}
	for id, m := range g.members {
		if !keep[id] {
			if m.instanceID != nil && g.static[*m.instanceID] == id {
				delete(g.static, *m.instanceID)
			}
			delete(g.members, id)
		}
	}
	g.order = order
}
