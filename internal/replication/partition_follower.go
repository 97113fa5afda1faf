package replication

// The follower's side of replication: appending what the leader sent,
// truncating where the leader says the log diverges, and the state the
// next fetch asks for.

// appendAsFollower appends what the leader sent and takes its high
// watermark (never past our own log end).
func (p *Partition) appendAsFollower(batches []byte, leaderHW int64) error {
	if len(batches) > 0 {
		if _, err := p.log.AppendAsFollower(batches); err != nil {
			return p.noteLog("append as follower", err)
		}
		if p.env.fsyncAlways {
			if err := p.log.Sync(p.log.LogEndOffset() - 1); err != nil {
				return p.noteLog("fsync", err)
			}
		}
		p.logWritten()
	}
	p.leaderHW.Store(leaderHW)
	p.mu.Lock()
	defer p.mu.Unlock()
	hw := min(leaderHW, p.log.LogEndOffset())
	if !p.setHWLocked(hw) && len(batches) > 0 {
		p.wakeLocked()
	}
	return nil
}

// truncateTo cuts a follower's log at offset, on the leader's word.
func (p *Partition) truncateTo(offset int64) error {
	if offset >= p.log.LogEndOffset() {
		return nil
	}
	p.logger.Info("truncating diverging log", "from", p.log.LogEndOffset(), "to", offset)
	if err := p.log.TruncateTo(offset); err != nil {
		return p.noteLog("truncate", err)
	}
	p.mu.Lock()
	if hw := p.hw.Load(); hw > offset {
		// Only data above the high watermark can diverge; an HW above
		// the new end came from a checkpoint of a log that was ahead.
		p.hw.Store(offset)
	}
	p.mu.Unlock()
	return nil
}

// resetTo empties a follower's log to start at offset (its fetch offset
// fell below the leader's log start).
func (p *Partition) resetTo(offset int64) error {
	p.logger.Info("log is behind the leader's log start; starting over", "log_end", p.log.LogEndOffset(), "leader_log_start", offset)
	if err := p.log.TruncateFullyAndStartAt(offset); err != nil {
		return p.noteLog("truncate fully", err)
	}
	p.mu.Lock()
	p.hw.Store(offset)
	p.mu.Unlock()
	return nil
}

// fetchState is what the follower's next fetch asks for.
func (p *Partition) fetchState() (offset int64, lastEpoch, leaderEpoch int32, logStart int64) {
	e, ok := p.log.LatestEpoch()
	if !ok {
		e = -1
	}
	return p.log.LogEndOffset(), e, p.leaderEpoch.Load(), p.log.LogStartOffset()
}

// localEndOffsetForEpoch is where this replica's log ends epoch.
func (p *Partition) localEndOffsetForEpoch(epoch int32) int64 {
	e, end := p.log.EndOffsetForEpoch(epoch, -1)
	if e < 0 {
		return p.log.LogStartOffset()
	}
	return end
}
