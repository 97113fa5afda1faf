package broker

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/record"
)

// TestProduceJournalOnlyForSeveralPartitions: with the shared journal, a
// produce request to one partition writes its batch to the segment before
// the answer (the journal would add a write and save none), while a
// request to several partitions leaves its batches in the journal, their
// segments unwritten until later. With log.fsync=always a request to one
// partition is journaled too: the journal's fsync is shared with other
// requests.
func TestProduceJournalOnlyForSeveralPartitions(t *testing.T) {
	for _, c := range []struct {
		name      string
		overrides map[string]string
		// oneDirect: a request to one partition reaches its segment
		// before the answer.
		oneDirect bool
	}{
		{"page-cache", nil, true},
		{"fsync-always", map[string]string{"log.fsync": "always"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newTestBrokerWith(t, testBrokerOptions{journal: true, overrides: c.overrides})
			conn := aliceConn()
			segSize := func(partition string) int64 {
				t.Helper()
				fi, err := os.Stat(filepath.Join(b.opts.Static.DataDir(), "t-"+partition, "00000000000000000000.log"))
				if errors.Is(err, fs.ErrNotExist) {
					return 0 // logs are created at their first write
				}
				if err != nil {
					t.Fatal(err)
				}
				return fi.Size()
			}
			var batchSize int64 // every batch here has one record of the same size
			produce := func(partitions ...int32) {
				t.Helper()
				req := v(kmsg.NewPtrProduceRequest(), 9)
				req.Acks, req.TimeoutMillis = 1, 5000
				rt := kmsg.ProduceRequestTopic{Topic: "t"}
				for _, p := range partitions {
					batch, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), []record.Record{{Value: []byte("v")}})
					if err != nil {
						t.Fatal(err)
					}
					batchSize = int64(len(batch))
					rt.Partitions = append(rt.Partitions, kmsg.ProduceRequestTopicPartition{Partition: p, Records: batch})
				}
				req.Topics = []kmsg.ProduceRequestTopic{rt}
				resp, err := serveAsClient(t, b, conn, "writer", req)
				if err != nil {
					t.Fatal(err)
				}
				for _, rp := range resp.(*kmsg.ProduceResponse).Topics[0].Partitions {
					if rp.ErrorCode != 0 {
						t.Fatalf("partition %d: %v", rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
					}
				}
			}

			produce(0)
			if got := segSize("0"); (got > 0) != c.oneDirect {
				t.Errorf("after a request to one partition, its segment has %d bytes; written before the answer: %v, want %v", got, got > 0, c.oneDirect)
			}
			before0, before1 := segSize("0"), segSize("1")
			produce(0, 1)
			if got0, got1 := segSize("0"), segSize("1"); got0 != before0 || got1 != before1 {
				t.Errorf("a request to two partitions wrote their segments (%d to %d, %d to %d bytes): not journaled", before0, got0, before1, got1)
			}
			// Partition 0 now has a journaled tail: a request to it alone
			// writes the tail and then its batch, in order.
			produce(0)
			if c.oneDirect {
				if got, want := segSize("0"), 3*batchSize; got != want {
					t.Errorf("after a request to one partition behind a journaled tail, its segment has %d bytes, want its 3 batches' %d", got, want)
				}
				// In offset order: the tail before the direct batch.
				data, err := os.ReadFile(filepath.Join(b.opts.Static.DataDir(), "t-0", "00000000000000000000.log"))
				if err != nil {
					t.Fatal(err)
				}
				for want := int64(0); len(data) > 0; want++ {
					h, err := record.ParseHeader(data)
					if err != nil {
						t.Fatalf("segment of partition 0 at batch %d: %v", want, err)
					}
					if h.BaseOffset != want {
						t.Fatalf("segment of partition 0: batch %d has base offset %d", want, h.BaseOffset)
					}
					data = data[h.Size():]
				}
			}
		})
	}
}
