package cli

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumeProgress tracks, per partition, the next offset to print against
// the end offset seen at start, so that a bounded read (no --follow) knows
// when it is done. In a group only the partitions assigned to this member
// count, and each starts where the group's committed offset says when the
// assignment arrives: other members may have moved it since startup, and a
// member whose share is already read must stop at once, not after an idle
// --timeout.
type consumeProgress struct {
	mu       sync.Mutex
	to       map[int32]int64 // end offsets seen at start
	pos      map[int32]int64 // next offset per partition
	group    bool
	assigned map[int32]bool // group only: this member's partitions
}

func newConsumeProgress(ranges map[int32]partitionRange, group bool) *consumeProgress {
	p := &consumeProgress{to: map[int32]int64{}, pos: map[int32]int64{}, group: group, assigned: map[int32]bool{}}
	for part, r := range ranges {
		p.to[part], p.pos[part] = r.to, r.from
	}
	return p
}

// nothingToRead reports whether every partition starts at its end.
func (p *consumeProgress) nothingToRead() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for part, to := range p.to {
		if p.pos[part] < to {
			return false
		}
	}
	return true
}

// advance records that part was read up to next.
func (p *consumeProgress) advance(part int32, next int64) {
	p.mu.Lock()
	p.pos[part] = max(p.pos[part], next)
	p.mu.Unlock()
}

// remaining counts the partitions still short of their end: all of them
// without a group, this member's in a group, where -1 means that no
// partition is assigned (yet).
func (p *consumeProgress) remaining() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	if p.group {
		if len(p.assigned) == 0 {
			return -1
		}
		for part := range p.assigned {
			if to, ok := p.to[part]; ok && p.pos[part] < to {
				n++
			}
		}
		return n
	}
	for part, to := range p.to {
		if p.pos[part] < to {
			n++
		}
	}
	return n
}

// groupHooks follow this member's assignment and the committed offsets its
// partitions resume from. Revocation keeps kgo's default (committing what
// was marked) and then forgets the partitions.
func (p *consumeProgress) groupHooks(topic string) []kgo.Opt {
	update := func(parts map[string][]int32, add bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, part := range parts[topic] {
			if add {
				p.assigned[part] = true
			} else {
				delete(p.assigned, part)
			}
		}
	}
	return []kgo.Opt{
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) { update(parts, true) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
			// What kgo does without this hook: commit the marked
			// offsets before giving the partitions up.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = cl.CommitMarkedOffsets(cctx)
			cancel()
			update(parts, false)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) { update(parts, false) }),
		kgo.OnOffsetsFetched(func(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			resume := func(t string, part int32, at int64) {
				// v10+ names topics by id; only one topic is consumed.
				if (t == topic || t == "") && at >= 0 {
					p.pos[part] = max(p.pos[part], at)
				}
			}
			for _, t := range resp.Topics {
				for _, pt := range t.Partitions {
					resume(t.Topic, pt.Partition, pt.Offset)
				}
			}
			for _, g := range resp.Groups {
				for _, t := range g.Topics {
					for _, pt := range t.Partitions {
						resume(t.Topic, pt.Partition, pt.Offset)
					}
				}
			}
			return nil
		}),
	}
}
