package broker

import (
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/record"
	"github.com/stratalog/strata/internal/storage"
)

// A full disk answers Produce KAFKA_STORAGE_ERROR with the cause, not
// UNKNOWN_SERVER_ERROR; once space returns the next produce lands right
// after the last whole batch.
func TestProduceOnFullDisk(t *testing.T) {
	var full atomic.Bool
	b := newTestBrokerIO(t, &storage.FileIO{WriteAt: func(f *os.File, p []byte, off int64) (int, error) {
		if full.Load() {
			n, _ := f.WriteAt(p[:len(p)/2], off) // a short write, then no space
			return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
		}
		return f.WriteAt(p, off)
	}})
	produce := func() kmsg.ProduceResponseTopicPartition {
		t.Helper()
		batch, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), []record.Record{{Value: []byte("v")}, {OffsetDelta: 1, Value: []byte("w")}})
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks, req.TimeoutMillis = -1, 5000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
		return roundTrip(t, b, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	if rp := produce(); rp.ErrorCode != 0 || rp.BaseOffset != 0 {
		t.Fatalf("produce: %v at %d", kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
	}
	full.Store(true)
	for range 2 {
		rp := produce()
		if rp.ErrorCode != kerr.KafkaStorageError.Code {
			t.Fatalf("produce on a full disk: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(rp.ErrorCode))
		}
		if rp.ErrorMessage == nil || !strings.Contains(*rp.ErrorMessage, "no space left on device") {
			t.Fatalf("error message %v does not name the cause", rp.ErrorMessage)
		}
	}
	full.Store(false)
	if rp := produce(); rp.ErrorCode != 0 || rp.BaseOffset != 2 {
		t.Fatalf("produce after space returned: %v at %d, want offset 2", kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
	}
}
