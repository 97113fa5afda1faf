package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// batchesBelow returns the bytes of the record batches of a partition
// directory whose last offset is below hw, in offset order (Kafka's v2
// batch header: baseOffset int64, batchLength int32, ..., lastOffsetDelta
// int32 at byte 23).
func batchesBelow(dir string, hw int64) ([]byte, error) {
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(segs)
	var out bytes.Buffer
	for _, s := range segs {
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, err
		}
		for len(b) >= 27 {
			base := int64(binary.BigEndian.Uint64(b[0:8]))
			n := int(binary.BigEndian.Uint32(b[8:12])) + 12
			if n < 27 || n > len(b) {
				break // torn tail
			}
			last := base + int64(binary.BigEndian.Uint32(b[23:27]))
			if last < hw {
				out.Write(b[:n])
			}
			b = b[n:]
		}
	}
	return out.Bytes(), nil
}

// CompareReplicas checks, with every node stopped, that the replicas of
// each partition hold the same bytes below the high watermark. It
// returns one anomaly per disagreeing replica. With rf=1 there is nothing
// to compare; it returns nil, and the hook is exercised once replication
// lands (rf>1 topics).
func CompareReplicas(c *Cluster, topic string, rf int, hw map[int32]int64) []Anomaly {
	if rf <= 1 {
		return nil
	}
	var out []Anomaly
	for p, end := range hw {
		var ref []byte
		refNode := 0
		for _, n := range c.Nodes {
			dir := filepath.Join(n.dataDir(), fmt.Sprintf("%s-%d", topic, p))
			if _, err := os.Stat(dir); err != nil {
				continue // not a replica
			}
			b, err := batchesBelow(dir, end)
			if err != nil {
				continue
			}
			if refNode == 0 {
				ref, refNode = b, n.ID
				continue
			}
			if !bytes.Equal(ref, b) {
				i := 0
				for i < len(ref) && i < len(b) && ref[i] == b[i] {
					i++
				}
				out = append(out, Anomaly{Kind: ReplicaDivergence, Class: "main", Partition: p, Offset: end,
					Detail: fmt.Sprintf("partition %d below hw %d: n%d has %d bytes, n%d has %d, first difference at byte %d", p, end, refNode, len(ref), n.ID, len(b), i)})
			}
		}
	}
	return out
}
