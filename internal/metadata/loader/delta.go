package loader

import (
	"maps"
	"slices"
	"sort"

	"github.com/stratalog/strata/internal/metadata"
)

// Delta is what changed from Prev to Image. It records which keys (topic
// names, brokers, config resources) the entries between them touched, and
// reads what happened to each from the two images, so a Delta that spans
// skipped images (Merge) says the same as one computed from the first and
// last image alone: a topic created and deleted in between is no change, a
// topic deleted and created again under its name is a deletion of the old
// id and a creation of the new.
type Delta struct {
	Prev, Image *metadata.Image

	topics      map[string]struct{}
	brokers     map[int32]struct{}
	configs     map[metadata.ConfigResource]struct{}
	controllers bool
	other       bool // cluster id, producer ids
}

func newDelta(prev, next *metadata.Image) *Delta {
	return &Delta{Prev: prev, Image: next, topics: map[string]struct{}{}, brokers: map[int32]struct{}{},
		configs: map[metadata.ConfigResource]struct{}{}}
}

// Diff compares two images in full: the delta a publisher gets when it
// starts (from the empty image) or after a snapshot replaced the image.
func Diff(prev, next *metadata.Image) *Delta {
	d := newDelta(prev, next)
	for _, im := range []*metadata.Image{prev, next} {
		for name := range im.Topics {
			if prev.Topics[name] != next.Topics[name] {
				d.topics[name] = struct{}{}
			}
		}
		for id := range im.Brokers {
			if prev.Brokers[id] != next.Brokers[id] {
				d.brokers[id] = struct{}{}
			}
		}
		for r := range im.Configs {
			if !maps.Equal(prev.Configs[r], next.Configs[r]) {
				d.configs[r] = struct{}{}
			}
		}
	}
	d.controllers = !maps.Equal(prev.Controllers, next.Controllers)
	d.other = prev.ClusterID != next.ClusterID || prev.NextProducerID != next.NextProducerID
	return d
}

// Step is the delta of one committed entry: recs took prev to next. It
// costs the size of the entry, not of the image.
func Step(prev, next *metadata.Image, recs []metadata.Record) *Delta {
	d := newDelta(prev, next)
	nameOf := func(id metadata.UUID) (string, bool) {
		for _, im := range []*metadata.Image{next, prev} {
			if t := im.TopicsByID[id]; t != nil {
				return t.Name, true
			}
		}
		return "", false
	}
	created := map[metadata.UUID]string{} // topics created and removed in this entry
	for _, r := range recs {
		switch r := r.(type) {
		case *metadata.TopicRecord:
			d.topics[r.Name] = struct{}{}
			created[r.ID] = r.Name
		case *metadata.PartitionRecord:
			if n, ok := nameOf(r.TopicID); ok {
				d.topics[n] = struct{}{}
			}
		case *metadata.RemoveTopicRecord:
			n, ok := nameOf(r.ID)
			if !ok {
				n, ok = created[r.ID]
			}
			if ok {
				d.topics[n] = struct{}{}
				d.configs[metadata.ConfigResource{Type: metadata.ResourceTopic, Name: n}] = struct{}{}
			}
		case *metadata.ConfigRecord:
			d.configs[metadata.ConfigResource{Type: r.ResourceType, Name: r.ResourceName}] = struct{}{}
		case *metadata.RegisterBrokerRecord:
			d.brokers[r.NodeID] = struct{}{}
		case *metadata.FenceBrokerRecord:
			d.brokers[r.NodeID] = struct{}{}
		case *metadata.BrokerRegistrationChangeRecord:
			d.brokers[r.NodeID] = struct{}{}
		case *metadata.RegisterControllerRecord:
			d.controllers = true
		default:
			d.other = true
		}
	}
	return d
}

// Merge returns the delta from d.Prev to next.Image: d followed by next,
// which must start where d ends. Neither is modified.
func (d *Delta) Merge(next *Delta) *Delta {
	m := d.clone()
	m.absorb(next)
	return m
}

func (d *Delta) clone() *Delta {
	return &Delta{Prev: d.Prev, Image: d.Image, topics: maps.Clone(d.topics), brokers: maps.Clone(d.brokers),
		configs: maps.Clone(d.configs), controllers: d.controllers, other: d.other}
}

// absorb extends d by next in place.
func (d *Delta) absorb(next *Delta) {
	d.Image = next.Image
	maps.Copy(d.topics, next.topics)
	maps.Copy(d.brokers, next.brokers)
	maps.Copy(d.configs, next.configs)
	d.controllers = d.controllers || next.controllers
	d.other = d.other || next.other
}

// TopicChange is what happened to one topic name between two images.
type TopicChange struct {
	Name string
	// Deleted is the id of the topic of that name that is gone (zero if
	// none); Created the id of the new one (zero if none). A topic
	// deleted and created again has both.
	Deleted, Created metadata.UUID
	// Partitions are the partitions whose registration changed, of a
	// topic that exists in both images (nil for a created topic: all of
	// them are new).
	Partitions []int32
}

// Topics returns the topics that changed, by name.
func (d *Delta) Topics() []TopicChange {
	names := slices.Sorted(maps.Keys(d.topics))
	var out []TopicChange
	for _, n := range names {
		pt, nt := d.Prev.Topics[n], d.Image.Topics[n]
		if pt == nt {
			continue
		}
		c := TopicChange{Name: n}
		switch {
		case pt != nil && (nt == nil || nt.ID != pt.ID):
			c.Deleted = pt.ID
			if nt != nil {
				c.Created = nt.ID
			}
		case pt == nil:
			c.Created = nt.ID
		default:
			for i, np := range nt.Partitions {
				if i >= len(pt.Partitions) || pt.Partitions[i] != np {
					c.Partitions = append(c.Partitions, int32(i))
				}
			}
			if len(c.Partitions) == 0 {
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

// Brokers returns the ids of brokers whose registration changed (new,
// re-registered, fenced or unfenced), in order.
func (d *Delta) Brokers() []int32 {
	var out []int32
	for id := range d.brokers {
		if d.Prev.Brokers[id] != d.Image.Brokers[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Configs returns the config resources whose settings changed.
func (d *Delta) Configs() []metadata.ConfigResource {
	var out []metadata.ConfigResource
	for r := range d.configs {
		if !maps.Equal(d.Prev.Configs[r], d.Image.Configs[r]) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// ControllersChanged reports whether a controller endpoint changed.
func (d *Delta) ControllersChanged() bool {
	return d.controllers && !maps.Equal(d.Prev.Controllers, d.Image.Controllers)
}

// LocalReplica is a replica of this node that a delta changes.
type LocalReplica struct {
	Topic     string
	TopicID   metadata.UUID
	Partition int32
	// Registration is the partition in the new image (nil in Deletes).
	Registration *metadata.Partition
}

// Leader is the partition's leader in the new image (-1 in Deletes).
func (r LocalReplica) Leader() int32 {
	if r.Registration == nil {
		return -1
	}
	return r.Registration.Leader
}

// LocalChanges is what a node must do to follow a delta (Kafka's
// LocalReplicaChanges): stop and delete the replicas in Deletes first,
// then lead or follow the others. A replica leaves a node only by
// deletion (its topic was deleted, or a reassignment moved it away), as
// in KRaft; a follower whose partition has no leader follows leader -1,
// that is fetches from no one.
type LocalChanges struct {
	Deletes   []LocalReplica
	Leaders   []LocalReplica
	Followers []LocalReplica
}

// Empty reports whether there is nothing to do.
func (lc LocalChanges) Empty() bool {
	return len(lc.Deletes) == 0 && len(lc.Leaders) == 0 && len(lc.Followers) == 0
}

// LocalChanges returns what node must do for d: partitions of deleted
// topics it was a replica of, and partitions it left, to delete;
// partitions whose registration changed and which it is a replica of, to
// lead or follow. Each list is ordered by topic and partition.
func (d *Delta) LocalChanges(node int32) LocalChanges {
	var lc LocalChanges
	for _, c := range d.Topics() {
		pt, nt := d.Prev.Topics[c.Name], d.Image.Topics[c.Name]
		if !c.Deleted.IsZero() {
			for i, p := range pt.Partitions {
				if slices.Contains(p.Replicas, node) {
					lc.Deletes = append(lc.Deletes, LocalReplica{Topic: c.Name, TopicID: pt.ID, Partition: int32(i)})
				}
			}
		}
		changed := c.Partitions
		if !c.Created.IsZero() {
			changed = make([]int32, len(nt.Partitions))
			for i := range changed {
				changed[i] = int32(i)
			}
		}
		for _, i := range changed {
			np := nt.Partitions[i]
			r := LocalReplica{Topic: c.Name, TopicID: nt.ID, Partition: i, Registration: np}
			switch {
			case slices.Contains(np.Replicas, node) && np.Leader == node:
				lc.Leaders = append(lc.Leaders, r)
			case slices.Contains(np.Replicas, node):
				lc.Followers = append(lc.Followers, r)
			case c.Created.IsZero() && int(i) < len(pt.Partitions) && slices.Contains(pt.Partitions[i].Replicas, node):
				r.Registration = nil
				lc.Deletes = append(lc.Deletes, r)
			}
		}
	}
	return lc
}
