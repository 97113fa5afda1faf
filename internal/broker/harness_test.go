package broker

import (
	"encoding/binary"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata/loader"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/replication"
	"github.com/stratalog/strata/internal/storage"
)

// newTestBroker wires a broker over a real metadata log and partition
// manager in a temp dir, with one topic "t" of two partitions.
func newTestBroker(tb testing.TB) *Broker { return newTestBrokerIO(tb, nil) }

// newTestBrokerIO is newTestBroker with the partition logs' writes and
// fsyncs going through fio (storage faults).
func newTestBrokerIO(tb testing.TB, fio *storage.FileIO) *Broker {
	return newTestBrokerWith(tb, testBrokerOptions{fio: fio})
}

// testBrokerOptions vary newTestBrokerWith.
type testBrokerOptions struct {
	fio       *storage.FileIO
	port      int32             // registered port (9092 if 0)
	overrides map[string]string // broker settings
	now       func() time.Time  // the broker's clock (time.Now if nil)
	// journal: the shared journal, with no background writes (journaled
	// tails stay pending until something else writes them).
	journal bool
}

// newTestBrokerWith is newTestBroker with options.
func newTestBrokerWith(tb testing.TB, o testBrokerOptions) *Broker {
	tb.Helper()
	dir := tb.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	over := map[string]string{"data.dir": dir}
	for k, v := range o.overrides {
		over[k] = v
	}
	cfg, err := config.LoadBroker("", nil, over)
	if err != nil {
		tb.Fatal(err)
	}
	ml, err := controller.OpenLocalLog(filepath.Join(dir, "__cluster_metadata-0"), logger)
	if err != nil {
		tb.Fatal(err)
	}
	images := loader.New(loader.Options{Logger: logger})
	ctrl, err := controller.New(ml, images, controller.Options{NodeID: 1, Static: cfg, Logger: logger, DefaultPartitions: 1, DefaultReplicationFactor: 1, DeleteTopicEnable: true})
	if err != nil {
		tb.Fatal(err)
	}
	port := o.port
	if port == 0 {
		port = 9092
	}
	if _, err := ctrl.Bootstrap("test-cluster", "localhost", port, nil); err != nil {
		tb.Fatal(err)
	}
	var journal *storage.Journal
	if o.journal {
		if journal, err = storage.OpenJournal(dir, storage.JournalOptions{Logger: logger, NoBackground: true, Durable: cfg.FsyncAlways()}); err != nil {
			tb.Fatal(err)
		}
	}
	parts := replication.NewManager(replication.Options{NodeID: 1, DataDir: dir, Static: cfg, Logger: logger, StorageIO: o.fio, Journal: journal})
	images.Register(parts)
	images.Start()
	tb.Cleanup(func() {
		images.Close()
		parts.Close()
		if journal != nil {
			if err := journal.Close(); err != nil {
				tb.Errorf("journal close: %v", err)
			}
		}
		ml.Close()
	})
	if res := ctrl.CreateTopics([]controller.CreateTopic{{Name: "t", Partitions: 2, ReplicationFactor: 1}}, false); res[0].Err != nil {
		tb.Fatal(res[0].Err)
	}
	if !parts.WaitApplied(ctrl.Image().Offset, 10*time.Second) {
		tb.Fatal("the partitions did not follow the image")
	}
	return New(Options{NodeID: 1, Static: cfg, Controller: ctrl, Partitions: parts, Logger: logger, Now: o.now})
}

// recorder is a network.Responder that remembers how a request ended.
type recorder struct {
	mu       sync.Mutex
	done     chan struct{}
	resp     *network.Response
	closed   error
	noResp   bool
	finished int
}

func newRecorder() *recorder { return &recorder{done: make(chan struct{})} }

func (r *recorder) finish() {
	r.finished++
	if r.finished == 1 {
		close(r.done)
	}
}

func (r *recorder) Respond(resp *network.Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resp = resp
	r.finish()
}

func (r *recorder) NoResponse() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.noResp = true
	r.finish()
}

func (r *recorder) CloseConn(reason error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = reason
	r.finish()
}

// frameFor encodes a request with a v1 or v2 header.
func frameFor(req kmsg.Request, corr int32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 'c')
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

func isPanic(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "internal error handling")
}
