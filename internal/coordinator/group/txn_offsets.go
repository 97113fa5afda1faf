package group

// Transactional offset commits (KIP-98, with KIP-447's member checks):
// TxnOffsetCommit writes the offsets as a transactional batch of the
// producer to the group's __consumer_offsets partition, and they stay
// pending, invisible to OffsetFetch, until the transaction's marker lands on
// that partition (the transaction coordinator added the partition to the
// transaction with AddOffsetsToTxn). A commit marker materializes them, an
// abort marker drops them; the same happens when a load replays the
// partition's control batches (applyBatch).

import "github.com/stratalog/strata/internal/record"

// TxnCommitRequest is a TxnOffsetCommit. Generation -1 and an empty member
// id skip the member checks (clients before KIP-447).
type TxnCommitRequest struct {
	TransactionalID string
	Group           string
	ProducerID      int64
	ProducerEpoch   int16
	Generation      int32
	MemberID        string
	InstanceID      *string
	Offsets         []OffsetCommit
}

// CommitTxn stores offsets pending in the producer's transaction. A non-nil
// error applies to every partition; otherwise the result has one error (or
// nil) per offset.
func (c *Coordinator) CommitTxn(req TxnCommitRequest) ([]error, error) {
	var fx effects
	g, part, err := c.enter(req.Group)
	if err != nil {
		return nil, err
	}
	defer fx.run()
	defer part.mu.Unlock()
	if g == nil {
		g = c.newGroup(part, req.Group)
	}
	// Kafka's doTxnCommitOffsets checks, in this order; a KIP-848
	// group checks the member epoch as for OffsetCommit.
	simple := req.MemberID == "" && req.Generation < 0
	switch {
	case g.state == StateDead:
		return nil, ErrCoordinatorNotAvail
	case g.consumer != nil:
		if !simple {
			cr := CommitRequest{Group: req.Group, Generation: req.Generation, MemberID: req.MemberID, InstanceID: req.InstanceID, Offsets: req.Offsets}
			if err := g.consumer.validateCommit(&cr); err != nil {
				return nil, err
			}
		}
	case g.fenced(req.MemberID, req.InstanceID):
		return nil, ErrFencedInstanceID
	case req.MemberID != "" && g.members[req.MemberID] == nil:
		return nil, ErrUnknownMember
	case req.Generation >= 0 && req.Generation != g.generation:
		return nil, ErrIllegalGeneration
	}
	now := c.opts.Now()
	out := make([]error, len(req.Offsets))
	recs := make([]kv, 0, len(req.Offsets))
	idx := make([]int, 0, len(req.Offsets))
	for i, o := range req.Offsets {
		var md string
		if o.Metadata != nil {
			md = *o.Metadata
		}
		if len(md) > c.opts.MaxMetadataBytes {
			out[i] = ErrMetadataTooLarge
			continue
		}
		tp := topicPartition{o.Topic, o.Partition}
		recs = append(recs, kv{offsetKey(g.id, tp), offsetValue(committed{offset: o.Offset, leaderEpoch: o.LeaderEpoch, metadata: md, commitTime: now.UnixMilli()})})
		idx = append(idx, i)
	}
	if err := c.writeTxn(part, g, recs, req.ProducerID, req.ProducerEpoch); err != nil {
		for _, i := range idx {
			out[i] = err
		}
	}
	return out, nil
}

func (g *group) addPendingTxn(pid int64, tp topicPartition, c committed) {
	if g.pendingTxn == nil {
		g.pendingTxn = map[int64]map[topicPartition]committed{}
	}
	m := g.pendingTxn[pid]
	if m == nil {
		m = map[topicPartition]committed{}
		g.pendingTxn[pid] = m
	}
	m[tp] = c
}

// completeTxn applies a marker of producer pid: a commit makes its pending
// offsets the committed ones (unless a later plain commit replaced them),
// an abort drops them.
func (g *group) completeTxn(pid int64, commit bool) {
	pending := g.pendingTxn[pid]
	if pending == nil {
		return
	}
	delete(g.pendingTxn, pid)
	if !commit {
		return
	}
	for tp, c := range pending {
		if cur, ok := g.offsets[tp]; !ok || cur.seq < c.seq {
			g.offsets[tp] = c
		}
	}
}

// OnTxnMarker applies a transaction marker written at offset on
// __consumer_offsets partition p (the partition calls it once the marker is
// durable): the pending offsets of producer pid in the partition's groups
// are committed or dropped. A partition this coordinator does not own is
// ignored (its load replays the marker).
func (c *Coordinator) OnTxnMarker(p int32, pid int64, epoch int16, commit bool, offset int64) {
	c.mu.Lock()
	part := c.parts[p]
	c.mu.Unlock()
	if part == nil {
		return
	}
	part.mu.Lock()
	defer part.mu.Unlock()
	switch {
	case part.unloaded:
		return
	case part.loading:
		// The load may already have read past this offset: keep the
		// marker for Load to apply if its replay ended before it.
		part.early = append(part.early, txnMarker{pid: pid, commit: commit, offset: offset})
		return
	}
	if n := part.applyMarker(pid, commit); n > 0 {
		c.log.Debug("transaction marker applied to pending offsets", "partition", p, "producer_id", pid, "epoch", epoch, "commit", commit, "offset", offset, "groups", n)
	}
}

// txnMarker is a marker OnTxnMarker saw while the partition was loading.
type txnMarker struct {
	pid    int64
	commit bool
	offset int64
}

// applyMarker commits or drops producer pid's pending offsets in the
// partition's groups and returns how many groups had some. Callers hold
// part.mu.
func (part *partition) applyMarker(pid int64, commit bool) int {
	n := 0
	for _, g := range part.groups {
		if g.pendingTxn[pid] != nil {
			g.completeTxn(pid, commit)
			n++
		}
	}
	return n
}

// PendingTxnOffsets reports, for OffsetFetch with RequireStable (KIP-447),
// whether any of the group's partitions tps has a transactional commit
// waiting for its marker. An unknown group has none.
func (c *Coordinator) PendingTxnOffsets(groupID string, tps []TopicPartition) ([]bool, error) {
	g, part, err := c.enter(groupID)
	if err != nil {
		return nil, err
	}
	defer part.mu.Unlock()
	out := make([]bool, len(tps))
	if g == nil {
		return out, nil
	}
	for i, tp := range tps {
		k := topicPartition{tp.Topic, tp.Partition}
		for _, m := range g.pendingTxn {
			if _, ok := m[k]; ok {
				out[i] = true
				break
			}
		}
	}
	return out, nil
}

// txnSeqKey and txnSeq: the next sequence of a producer's transactional
// batches on a partition, in its epoch.
type txnSeqKey struct {
	partition int32
	pid       int64
}

type txnSeq struct {
	epoch int16
	next  int32
}

// noteTxnSeq records, at load, where a transactional data batch leaves its
// producer's sequence on partition p (a newer epoch starts over).
func noteTxnSeq(seqs map[txnSeqKey]txnSeq, p int32, batch []byte) {
	h, err := record.ParseHeader(batch)
	if err != nil || h.IsControl() || !h.IsTransactional() || h.ProducerID < 0 {
		return
	}
	k := txnSeqKey{p, h.ProducerID}
	if cur, ok := seqs[k]; ok && cur.epoch > h.ProducerEpoch {
		return
	}
	seqs[k] = txnSeq{h.ProducerEpoch, h.LastSequence() + 1}
}
