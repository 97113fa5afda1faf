package metadata

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// An entry is a group of records committed together: the payload of one
// entry of the metadata quorum's Raft log, and of a snapshot of an image.
//
//	entry  = version(1 byte, 1) count(uvarint) record*
//	record = keyLen(uvarint) key valueLen(uvarint) value
//
// with key and value as Encode returns them.
const entryVersion = 1

// maxEntryRecords bounds the record count a decoder trusts before
// allocating.
const maxEntryRecords = 1 << 24

// EncodeEntry encodes recs as one entry.
func EncodeEntry(recs []Record) ([]byte, error) {
	out := []byte{entryVersion}
	out = binary.AppendUvarint(out, uint64(len(recs)))
	for _, r := range recs {
		k, v, err := Encode(r)
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(len(k)))
		out = append(out, k...)
		out = binary.AppendUvarint(out, uint64(len(v)))
		out = append(out, v...)
	}
	return out, nil
}

// DecodeEntry decodes an entry. Truncated or malformed input is an error,
// never a panic or an allocation sized by the input's claims alone.
func DecodeEntry(b []byte) ([]Record, error) {
	if len(b) == 0 || b[0] != entryVersion {
		return nil, fmt.Errorf("metadata: entry: unknown version or empty (%d bytes)", len(b))
	}
	b = b[1:]
	n, w := binary.Uvarint(b)
	if w <= 0 || n > maxEntryRecords || n > uint64(len(b)) {
		return nil, fmt.Errorf("metadata: entry: bad record count")
	}
	b = b[w:]
	recs := make([]Record, 0, n)
	field := func() ([]byte, error) {
		l, w := binary.Uvarint(b)
		if w <= 0 || l > uint64(len(b)-w) {
			return nil, fmt.Errorf("metadata: entry: truncated record %d", len(recs))
		}
		f := b[w : w+int(l)]
		b = b[w+int(l):]
		return f, nil
	}
	for range n {
		k, err := field()
		if err != nil {
			return nil, err
		}
		v, err := field()
		if err != nil {
			return nil, err
		}
		r, err := Decode(k, v)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("metadata: entry: %d trailing bytes", len(b))
	}
	return recs, nil
}

// Records returns records that rebuild im when applied to an empty image:
// the content of a snapshot. Their order is deterministic.
func (im *Image) Records() []Record {
	var out []Record
	if im.ClusterID != "" {
		out = append(out, &ClusterIDRecord{ClusterID: im.ClusterID})
	}
	ids := make([]int32, 0, len(im.Brokers))
	for id := range im.Brokers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		b := im.Brokers[id]
		out = append(out, &RegisterBrokerRecord{NodeID: b.NodeID, Epoch: b.Epoch, Host: b.Host, Port: b.Port, Rack: b.Rack, Fenced: b.Fenced, Incarnation: b.Incarnation, Listeners: b.Listeners, LogDirs: b.LogDirs})
		if len(b.OfflineLogDirs) > 0 {
			out = append(out, &BrokerRegistrationChangeRecord{NodeID: b.NodeID, Epoch: b.Epoch, LogDirs: b.OnlineLogDirs()})
		}
	}
	cids := make([]int32, 0, len(im.Controllers))
	for id := range im.Controllers {
		cids = append(cids, id)
	}
	sort.Slice(cids, func(i, j int) bool { return cids[i] < cids[j] })
	for _, id := range cids {
		e := im.Controllers[id]
		out = append(out, &RegisterControllerRecord{NodeID: id, Host: e.Host, Port: e.Port})
	}
	if im.NextProducerID > 0 {
		out = append(out, &ProducerIDsRecord{NextProducerID: im.NextProducerID})
	}
	out = append(out, im.featureRecords()...)
	out = append(out, im.scramRecords()...)
	out = append(out, im.aclRecords()...)
	out = append(out, im.quotaRecords()...)
	for _, name := range im.SortedTopicNames() {
		t := im.Topics[name]
		out = append(out, &TopicRecord{Name: t.Name, ID: t.ID})
		for i, p := range t.Partitions {
			out = append(out, &PartitionRecord{TopicID: t.ID, Partition: int32(i), Replicas: p.Replicas, ISR: p.ISR,
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ELR: p.ELR,
				AddingReplicas: p.AddingReplicas, RemovingReplicas: p.RemovingReplicas, Directories: p.Directories})
		}
	}
	for _, r := range im.SortedConfigResources() {
		m := im.Configs[r]
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := m[k]
			out = append(out, &ConfigRecord{ResourceType: r.Type, ResourceName: r.Name, Name: k, Value: &v})
		}
	}
	return out
}
