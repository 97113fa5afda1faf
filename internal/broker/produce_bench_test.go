package broker

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/record"
)

// BenchmarkProduceManyPartitions serves produce requests that carry one
// small batch (one 200 B record of an idempotent producer) for each of
// many partitions, as franz-go sends them when records are spread
// round-robin over 10,000 partitions (issue 14): the broker's cost per
// batch, without a client or a network. ns/batch is the figure.
func BenchmarkProduceManyPartitions(b *testing.B) {
	for _, n := range []struct{ topics, parts int }{{100, 100}, {1, 6}} {
		b.Run(fmt.Sprintf("%dx%d", n.topics, n.parts), func(b *testing.B) {
			benchProduceMany(b, n.topics, n.parts)
		})
	}
}

func benchProduceMany(b *testing.B, topics, parts int) {
	br := newTestBroker(b)
	var create []controller.CreateTopic
	for i := range topics {
		create = append(create, controller.CreateTopic{Name: fmt.Sprintf("m%03d", i), Partitions: int32(parts), ReplicationFactor: 1})
	}
	for _, r := range br.opts.Controller.CreateTopics(create, false) {
		if r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	if !br.opts.Partitions.WaitApplied(br.opts.Controller.Image().Offset, 30*time.Second) {
		b.Fatal("the partitions did not follow the image")
	}
	value := make([]byte, 200)
	const pid = 4242
	// frame builds the request whose batches carry sequence seq.
	frame := func(seq int32) []byte {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks, req.TimeoutMillis = -1, 30000
		now := time.Now().UnixMilli()
		for _, ct := range create {
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = ct.Name
			for p := range ct.Partitions {
				opts := record.NewBatchOptions(record.CodecNone)
				opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = pid, 0, seq
				batch, err := record.Build(nil, opts, now, []record.Record{{Value: value}})
				if err != nil {
					b.Fatal(err)
				}
				rp := kmsg.NewProduceRequestTopicPartition()
				rp.Partition, rp.Records = p, batch
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		return frameFor(req, 1)
	}
	conn := &network.ConnInfo{ID: 1, RemoteAddr: &net.TCPAddr{}, LocalAddr: &net.TCPAddr{}}
	serve := func(data []byte) {
		rec := newRecorder()
		br.Serve(context.Background(), &network.Request{Conn: conn, Data: data}, rec)
		select {
		case <-rec.done:
		case <-time.After(60 * time.Second):
			b.Fatal("no response")
		}
		if rec.resp == nil {
			b.Fatalf("no response: closed %v", rec.closed)
		}
	}
	serve(frame(0)) // every log created, the producer known everywhere
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		f := frame(int32(i + 1))
		b.StartTimer()
		serve(f)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*topics*parts), "ns/batch")
}
