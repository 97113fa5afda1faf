package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// batch builds a fake v2 batch header (enough for batchesBelow) covering
// base..base+n-1 with payload bytes.
func batch(base int64, n int32, payload string) []byte {
	b := make([]byte, 61+len(payload))
	binary.BigEndian.PutUint64(b[0:8], uint64(base))
	binary.BigEndian.PutUint32(b[8:12], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[23:27], uint32(n-1))
	copy(b[61:], payload)
	return b
}

func writeReplica(t *testing.T, c *Cluster, id int, topic string, p int32, batches ...[]byte) {
	t.Helper()
	dir := filepath.Join(c.node(id).dataDir(), fmt.Sprintf("%s-%d", topic, p))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, b := range batches {
		all = append(all, b...)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000000.log"), all, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCompareReplicas(t *testing.T) {
	root := t.TempDir()
	c := newCluster("strata", root, &proxyNet{}, 3, nil, nil)
	a, b := batch(0, 5, "first"), batch(5, 5, "second")
	writeReplica(t, c, 1, "t", 0, a, b)
	writeReplica(t, c, 2, "t", 0, a, b, batch(10, 3, "unreplicated tail"))
	writeReplica(t, c, 3, "t", 0, a, batch(5, 5, "SECOND"))
	hw := map[int32]int64{0: 10}
	if got := CompareReplicas(c, "t", 1, hw); got != nil {
		t.Errorf("rf=1 compares nothing, got %v", got)
	}
	got := CompareReplicas(c, "t", 3, hw)
	if len(got) != 1 || got[0].Kind != ReplicaDivergence {
		t.Fatalf("want one divergence (n3), got %+v", got)
	}
	// Below a high watermark of 5 all three agree.
	if got := CompareReplicas(c, "t", 3, map[int32]int64{0: 5}); len(got) != 0 {
		t.Errorf("replicas agree below offset 5, got %+v", got)
	}
}
