package broker

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/network"
)

// roundTrip serves req on b and decodes the response.
func roundTrip(t *testing.T, b *Broker, req kmsg.Request) kmsg.Response {
	t.Helper()
	rec := newRecorder()
	conn := &network.ConnInfo{ID: 1, RemoteAddr: &net.TCPAddr{}, LocalAddr: &net.TCPAddr{}}
	b.Serve(context.Background(), &network.Request{Conn: conn, Data: frameFor(req, 7)}, rec)
	select {
	case <-rec.done:
	case <-time.After(10 * time.Second):
		t.Fatal("no response")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.resp == nil {
		t.Fatalf("no response: closed=%v", rec.closed)
	}
	var buf []byte
	for _, c := range rec.resp.Chunks {
		buf = append(buf, c.Bytes...)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	body := buf[4:]
	if resp.IsFlexible() {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return resp
}

func TestAlterPartitionHandler(t *testing.T) {
	b := newTestBroker(t)
	tp := b.image().Topics["t"]
	p := tp.Partitions[0]
	for v := int16(0); v <= 3; v++ {
		req := kmsg.NewPtrAlterPartitionRequest()
		req.SetVersion(v)
		req.BrokerID, req.BrokerEpoch = 1, 0
		rt := kmsg.NewAlterPartitionRequestTopic()
		rt.Topic, rt.TopicID = "t", tp.ID
		rp := kmsg.NewAlterPartitionRequestTopicPartition()
		rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch = 0, p.LeaderEpoch, p.PartitionEpoch
		if v >= 3 {
			e := kmsg.NewAlterPartitionRequestTopicPartitionNewEpochISR()
			e.BrokerID, e.BrokerEpoch = 1, 0
			rp.NewEpochISR = append(rp.NewEpochISR, e)
		} else {
			rp.NewISR = []int32{1}
		}
		stale := rp
		stale.Partition, stale.LeaderEpoch = 1, 99
		rt.Partitions = append(rt.Partitions, rp, stale)
		req.Topics = append(req.Topics, rt)
		resp := roundTrip(t, b, req).(*kmsg.AlterPartitionResponse)
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("v%d: %+v", v, resp)
		}
		got := resp.Topics[0].Partitions
		if got[0].ErrorCode != 0 || got[0].LeaderID != 1 || len(got[0].ISR) != 1 || got[0].PartitionEpoch != p.PartitionEpoch {
			t.Errorf("v%d: partition 0: %+v", v, got[0])
		}
		if got[1].ErrorCode != kerr.FencedLeaderEpoch.Code {
			t.Errorf("v%d: partition 1 with an old leader epoch: error %d, want FENCED_LEADER_EPOCH", v, got[1].ErrorCode)
		}
		if v >= 2 && resp.Topics[0].TopidID != tp.ID {
			t.Errorf("v%d: topic id %x", v, resp.Topics[0].TopidID)
		}

		req.BrokerEpoch = 5
		if resp := roundTrip(t, b, req).(*kmsg.AlterPartitionResponse); resp.ErrorCode != kerr.StaleBrokerEpoch.Code {
			t.Errorf("v%d: stale broker epoch: error %d", v, resp.ErrorCode)
		}
	}
	// Not advertised to clients.
	for _, k := range b.handlers.apiKeys() {
		if k.ApiKey == 56 {
			t.Error("AlterPartition is advertised in ApiVersions")
		}
	}
}
