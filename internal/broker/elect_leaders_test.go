package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestElectLeadersHandler(t *testing.T) {
	b := newTestBroker(t)
	for v := int16(0); v <= 2; v++ {
		req := kmsg.NewPtrElectLeadersRequest()
		req.SetVersion(v)
		req.TimeoutMillis = 1000
		// Every partition: none needs an election.
		if resp := roundTrip(t, b, req).(*kmsg.ElectLeadersResponse); resp.ErrorCode != 0 || len(resp.Topics) != 0 {
			t.Errorf("v%d all partitions: %+v", v, resp)
		}
		rt := kmsg.NewElectLeadersRequestTopic()
		rt.Topic, rt.Partitions = "t", []int32{0, 5}
		req.Topics = append(req.Topics, rt)
		for _, typ := range []int8{0, 1} {
			req.ElectionType = typ
			resp := roundTrip(t, b, req).(*kmsg.ElectLeadersResponse)
			if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
				t.Fatalf("v%d type %d: %+v", v, typ, resp)
			}
			ps := resp.Topics[0].Partitions
			if ps[0].ErrorCode != kerr.ElectionNotNeeded.Code || ps[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
				t.Errorf("v%d type %d: codes %d %d", v, typ, ps[0].ErrorCode, ps[1].ErrorCode)
			}
		}
		if v >= 1 {
			req.ElectionType = 9
			if resp := roundTrip(t, b, req).(*kmsg.ElectLeadersResponse); resp.ErrorCode != kerr.InvalidRequest.Code {
				t.Errorf("v%d unknown type: error %d", v, resp.ErrorCode)
			}
		}
	}
}
