package server

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestApiVersions(t *testing.T) {
	n := startNode(t, "", nil)
	c := n.raw()
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName = "strata-test"
		req.ClientSoftwareVersion = "1.0"
		resp := c.roundTrip(req).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d: error %d", v, resp.ErrorCode)
		}
		keys := map[int16]kmsg.ApiVersionsResponseApiKey{}
		for _, k := range resp.ApiKeys {
			keys[k.ApiKey] = k
		}
		// DESIGN.md section 4: Produce from 0, Metadata from 0.
		if k, ok := keys[0]; !ok || k.MinVersion != 0 {
			t.Fatalf("v%d: produce advertised as %+v, want from version 0", v, k)
		}
		if k, ok := keys[3]; !ok || k.MinVersion != 0 {
			t.Fatalf("v%d: metadata advertised as %+v", v, k)
		}
		if k, ok := keys[1]; !ok || k.MaxVersion < 10 {
			t.Fatalf("v%d: fetch advertised as %+v, zstd needs 10", v, k)
		}
	}
	// KIP-511: a malformed client software name or version is refused.
	for _, sw := range [][2]string{{"", "1.0"}, {"bad name", "1.0"}, {"-lead", "1.0"}, {"kgo", "1.0+build"}, {"kgo", "trail."}} {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		req.ClientSoftwareName, req.ClientSoftwareVersion = sw[0], sw[1]
		resp := c.roundTrip(req).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != kerr.InvalidRequest.Code || len(resp.ApiKeys) != 0 {
			t.Fatalf("software %q %q: error %d with %d keys, want INVALID_REQUEST and none", sw[0], sw[1], resp.ErrorCode, len(resp.ApiKeys))
		}
	}
	// Too new: an error in v0 format that still lists every key.
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 99
	corr := c.send(req)
	got, body, err := c.readResponse(false)
	if err != nil || got != corr {
		t.Fatalf("read: %v (corr %d want %d)", err, got, corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decode as v0: %v", err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) < 10 {
		t.Fatalf("too-new ApiVersions: error %d with %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
}

func TestBadFramesCloseTheConnection(t *testing.T) {
	n := startNode(t, "", nil)
	header := func(key, version int16) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(key))
		b = binary.BigEndian.AppendUint16(b, uint16(version))
		b = binary.BigEndian.AppendUint32(b, 1)
		return binary.BigEndian.AppendUint16(b, 0xffff) // null client id
	}
	cases := []struct {
		name string
		send func(c *rawConn)
	}{
		{"negative size", func(c *rawConn) { c.conn.Write([]byte{0xff, 0xff, 0xff, 0xf0}) }},
		{"huge size", func(c *rawConn) { c.conn.Write([]byte{0x7f, 0xff, 0xff, 0xff}) }},
		{"zero size", func(c *rawConn) { c.conn.Write([]byte{0, 0, 0, 0}) }},
		{"tiny frame", func(c *rawConn) { c.frame([]byte{0, 3}) }},
		{"unknown api key", func(c *rawConn) { c.frame(header(9999, 0)) }},
		{"unsupported version", func(c *rawConn) { c.frame(header(3, 99)) }},
		{"truncated body", func(c *rawConn) { c.frame(append(header(3, 9), 0xff, 0xff)) }},
		{"client id overrun", func(c *rawConn) {
			b := header(3, 1)
			b[8], b[9] = 0x7f, 0x00
			c.frame(b)
		}},
		{"garbage", func(c *rawConn) { c.frame([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := n.raw()
			tc.send(c)
			c.expectClosed()
		})
	}
	// The broker still serves.
	c := n.raw()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	if resp := c.roundTrip(req).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
		t.Fatalf("metadata after bad frames: %d brokers", len(resp.Brokers))
	}
}

// awaitTopicMetadata repeats a Metadata request for one topic until it
// answers without error, as clients retry LEADER_NOT_AVAILABLE.
func awaitTopicMetadata(t *testing.T, c *rawConn, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := c.roundTrip(req).(*kmsg.MetadataResponse)
		if len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("v%d: topic never appeared: %+v", req.Version, resp.Topics)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetadataVersionsAndAutoCreate(t *testing.T) {
	n := startNode(t, "", map[string]string{"num.partitions": "3"})
	c := n.raw()
	for v := int16(0); v <= 13; v++ {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = v
		topic := "auto-" + string(rune('a'+v))
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
		req.AllowAutoTopicCreation = true
		resp := c.roundTrip(req).(*kmsg.MetadataResponse)
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 1 {
			t.Fatalf("v%d: brokers %+v", v, resp.Brokers)
		}
		// As Kafka: the request that starts the creation answers
		// LEADER_NOT_AVAILABLE with no partitions (and no topic id).
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.LeaderNotAvailable.Code ||
			len(resp.Topics[0].Partitions) != 0 || resp.Topics[0].TopicID != [16]byte{} {
			t.Fatalf("v%d: first answer for an auto-created topic %+v", v, resp.Topics)
		}
		// A retry finds it.
		resp = awaitTopicMetadata(t, c, req)
		if len(resp.Topics[0].Partitions) != 3 {
			t.Fatalf("v%d: auto-created topic %+v", v, resp.Topics)
		}
		if v >= 10 && resp.Topics[0].TopicID == [16]byte{} {
			t.Fatalf("v%d: no topic id", v)
		}
	}
	// v4+ without the flag: not created.
	{
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 4
		topic := "no-auto"
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
		resp := c.roundTrip(req).(*kmsg.MetadataResponse)
		if resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("v4 without allow: %+v", resp.Topics)
		}
		if _, ok := n.srv.loader.Image().Topics[topic]; ok {
			t.Fatalf("v4 without allow created the topic")
		}
	}
	// A topic deleted a moment ago does not reappear, populated, in the
	// response that recreates it.
	{
		topic := "auto-a"
		if _, err := n.admin().DeleteTopics(ctxT(t), topic); err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 12
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
		req.AllowAutoTopicCreation = true
		deadline := time.Now().Add(10 * time.Second)
		for n.srv.loader.Image().Topics[topic] != nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		resp := c.roundTrip(req).(*kmsg.MetadataResponse)
		if resp.Topics[0].ErrorCode != kerr.LeaderNotAvailable.Code || len(resp.Topics[0].Partitions) != 0 {
			t.Fatalf("recreated topic in the same response: %+v", resp.Topics)
		}
		awaitTopicMetadata(t, c, req)
	}
	// Auto-creation off: unknown topics are reported, not created.
	n2 := startNode(t, "", map[string]string{"auto.create.topics.enable": "false"})
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 9
	topic := "nothere"
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	req.AllowAutoTopicCreation = true
	resp := n2.raw().roundTrip(req).(*kmsg.MetadataResponse)
	if resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("auto-create disabled: error %d", resp.Topics[0].ErrorCode)
	}
	// An invalid name is never created.
	bad := "bad name"
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: &bad}}
	resp = n.raw().roundTrip(req).(*kmsg.MetadataResponse)
	if resp.Topics[0].ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("invalid name: error %d", resp.Topics[0].ErrorCode)
	}
	// An empty name is an invalid name in every version (Kafka ignores a
	// zero topic id); from v10 a non-zero id nobody has is UNKNOWN_TOPIC_ID.
	for _, tc := range []struct {
		version int16
		id      [16]byte
		want    *kerr.Error
	}{{9, [16]byte{}, kerr.InvalidTopicException}, {12, [16]byte{}, kerr.InvalidTopicException}, {12, [16]byte{1}, kerr.UnknownTopicID}} {
		empty := ""
		req := kmsg.NewPtrMetadataRequest()
		req.Version = tc.version
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &empty, TopicID: tc.id}}
		resp := n.raw().roundTrip(req).(*kmsg.MetadataResponse)
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != tc.want.Code {
			t.Fatalf("v%d empty name, id %x: %+v, want %v", tc.version, tc.id, resp.Topics, tc.want)
		}
	}
	// Kafka's internal topic names are not auto-created for clients.
	txn := "__transaction_state"
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: &txn}}
	resp = n.raw().roundTrip(req).(*kmsg.MetadataResponse)
	if resp.Topics[0].ErrorCode == 0 {
		t.Fatalf("%s was auto-created for a client", txn)
	}
}
