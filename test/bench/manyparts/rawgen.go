package main

// The raw load generator (--gen raw): ProduceRequests built once with kmsg
// and written as bytes, so that the generator costs little per record and
// the broker, not the client, is the bottleneck at 10,000 partitions.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawOptions configure the raw generator.
type rawOptions struct {
	conns        int   // connections, one writer and one reader goroutine each
	inflight     int   // requests in flight per connection
	batchRecords int   // records per partition batch, many-partition phase
	fewBatch     int   // records per partition batch, reference phase
	partsPerReq  int   // partitions (batches) per ProduceRequest
	acks         int16 // -1 (all) or 1 (leader)
	verifyParts  int   // partitions fetched back after the run
	maxVersion   int16 // highest Produce version to use
}

// rawTP is one partition of a request: topic index and partition.
type rawTP struct {
	topic int
	part  int32
}

// rawRequest is one pre-built ProduceRequest: its wire bytes (length
// prefix included; the correlation id is patched in before each write)
// and the partitions it holds, in order.
type rawRequest struct {
	buf   []byte
	parts []rawTP
	value int64 // record value bytes it carries
}

// rawBatch builds one record batch (magic 2, no compression, no producer
// id, so the broker accepts the same bytes any number of times) of n
// records with the given value and no key, and computes its CRC once.
func rawBatch(n int, value []byte, ts int64) []byte {
	var recs []byte
	for i := range n {
		var body []byte
		body = append(body, 0)                     // attributes
		body = binary.AppendVarint(body, 0)        // timestamp delta
		body = binary.AppendVarint(body, int64(i)) // offset delta
		body = binary.AppendVarint(body, -1)       // key: null
		body = binary.AppendVarint(body, int64(len(value)))
		body = append(body, value...)
		body = binary.AppendVarint(body, 0) // headers
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	b := make([]byte, 0, 61+len(recs))
	b = binary.BigEndian.AppendUint64(b, 0)                    // base offset
	b = binary.BigEndian.AppendUint32(b, uint32(49+len(recs))) // batch length
	b = binary.BigEndian.AppendUint32(b, 0xffffffff)           // partition leader epoch -1
	b = append(b, 2)                                           // magic
	b = binary.BigEndian.AppendUint32(b, 0)                    // crc, below
	b = binary.BigEndian.AppendUint16(b, 0)                    // attributes
	b = binary.BigEndian.AppendUint32(b, uint32(n-1))          // last offset delta
	b = binary.BigEndian.AppendUint64(b, uint64(ts))           // first timestamp
	b = binary.BigEndian.AppendUint64(b, uint64(ts))           // max timestamp
	b = binary.BigEndian.AppendUint64(b, 0xffffffffffffffff)   // producer id -1
	b = binary.BigEndian.AppendUint16(b, 0xffff)               // producer epoch -1
	b = binary.BigEndian.AppendUint32(b, 0xffffffff)           // base sequence -1
	b = binary.BigEndian.AppendUint32(b, uint32(n))            // records
	b = append(b, recs...)
	crc := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(b[17:], crc)
	return b
}

// rawRequests builds the requests of one sweep over every partition, in
// the order of the kgo generator (partition-major: t0/0, t1/0, ..., t0/1,
// ...), partsPerReq partitions per request, each with batch.
func rawRequests(topics []string, partitions int, batch []byte, records, recordSize int, ro rawOptions, version int16) []rawRequest {
	var all []rawTP
	for p := range partitions {
		for t := range topics {
			all = append(all, rawTP{topic: t, part: int32(p)})
		}
	}
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("manyparts-raw"))
	var reqs []rawRequest
	for len(all) > 0 {
		k := min(ro.partsPerReq, len(all))
		parts := all[:k:k]
		all = all[k:]
		req := kmsg.NewPtrProduceRequest()
		req.Version = version
		req.Acks = ro.acks
		req.TimeoutMillis = 30_000
		idx := map[int]int{}
		for _, tp := range parts {
			i, ok := idx[tp.topic]
			if !ok {
				i = len(req.Topics)
				idx[tp.topic] = i
				t := kmsg.NewProduceRequestTopic()
				t.Topic = topics[tp.topic]
				req.Topics = append(req.Topics, t)
			}
			p := kmsg.NewProduceRequestTopicPartition()
			p.Partition = tp.part
			p.Records = batch
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
		}
		reqs = append(reqs, rawRequest{
			buf:   f.AppendRequest(nil, req, 0),
			parts: parts,
			value: int64(k * records * recordSize),
		})
	}
	return reqs
}

// produceVersion asks the broker (ApiVersions v0) for its Produce range
// and returns the highest version both it and ro.maxVersion allow; below
// 9 (the first flexible version) is an error.
func produceVersion(ctx context.Context, addr string, maxVersion int16) (int16, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	if _, err := conn.Write(kmsg.NewRequestFormatter().AppendRequest(nil, req, 1)); err != nil {
		return 0, err
	}
	body, err := readFrame(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, fmt.Errorf("api versions: %w", err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body[4:]); err != nil {
		return 0, fmt.Errorf("api versions: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return 0, fmt.Errorf("api versions: %w", err)
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 0 {
			v := min(k.MaxVersion, maxVersion)
			if v < 9 || v < k.MinVersion {
				return 0, fmt.Errorf("broker's Produce versions %d-%d: the raw generator needs 9-%d", k.MinVersion, k.MaxVersion, maxVersion)
			}
			return v, nil
		}
	}
	return 0, errors.New("broker lists no Produce version")
}

// readFrame reads one size-prefixed response into buf (grown as needed)
// and returns it without the size.
func readFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(sz[:]))
	if n < 4 || n > 256<<20 {
		return nil, fmt.Errorf("response size %d", n)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(r, buf)
	return buf, err
}

// rawStats is what a raw run acknowledged.
type rawStats struct {
	requests atomic.Int64
	value    atomic.Int64 // acknowledged record value bytes
}

// rawRun sends `total` requests, request j being reqs[j mod len(reqs)],
// over ro.conns connections with ro.inflight requests in flight on each,
// and checks every response: each partition of the request answered,
// with error code 0; records acknowledged are added to c. The first
// error (network, framing, a partition's error code) ends the run and is
// returned.
func rawRun(ctx context.Context, addr string, reqs []rawRequest, total int64, version int16, records int, topics []string, ro rawOptions, c *counts, st *rawStats) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	topicIdx := make(map[string]int, len(topics))
	for i, t := range topics {
		topicIdx[t] = i
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	// Every connection is dialled before any request is sent, so that a
	// failing response cannot cancel a dial still to come.
	conns := make([]net.Conn, ro.conns)
	for i := range conns {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return fmt.Errorf("raw produce: %w", err)
		}
		conns[i] = conn
		go func() { <-ctx.Done(); conn.Close() }()
	}
	for _, conn := range conns {
		pending := make(chan int64, ro.inflight)
		wg.Add(2)
		// The writer: one request at a time, while fewer than inflight
		// are unanswered (pending is the window). Each connection has
		// its own copy of a request's bytes, as it patches in the
		// correlation id.
		go func() {
			defer wg.Done()
			defer close(pending)
			bufs := make([][]byte, len(reqs))
			for {
				j := next.Add(1) - 1
				if j >= total || ctx.Err() != nil {
					return
				}
				k := j % int64(len(reqs))
				if bufs[k] == nil {
					bufs[k] = append([]byte(nil), reqs[k].buf...)
				}
				select {
				case pending <- j:
				case <-ctx.Done():
					return
				}
				binary.BigEndian.PutUint32(bufs[k][8:], uint32(j))
				if _, err := conn.Write(bufs[k]); err != nil {
					cancel(fmt.Errorf("write: %w", err))
					return
				}
			}
		}()
		// The reader: responses come in request order on a connection.
		go func() {
			defer wg.Done()
			rd := bufio.NewReaderSize(conn, 1<<20)
			var buf []byte
			resp := kmsg.NewPtrProduceResponse()
			for j := range pending {
				body, err := readFrame(rd, buf)
				if err != nil {
					cancel(fmt.Errorf("read response %d: %w", j, err))
					return
				}
				buf = body
				if err := checkRawResponse(body, j, version, &reqs[j%int64(len(reqs))], records, topicIdx, resp, c); err != nil {
					cancel(err)
					return
				}
				st.requests.Add(1)
				st.value.Add(reqs[j%int64(len(reqs))].value)
			}
		}()
	}
	wg.Wait()
	// Only the deferred cancel has no cause: any other is the run's error.
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("raw produce: %w", err)
	}
	if got := st.requests.Load(); got != total {
		return fmt.Errorf("raw produce: %d of %d requests answered", got, total)
	}
	return nil
}

// checkRawResponse parses the response to request j and checks it
// answers every partition of r without error, and counts its records.
func checkRawResponse(body []byte, j int64, version int16, r *rawRequest, records int, topicIdx map[string]int, resp *kmsg.ProduceResponse, c *counts) error {
	if got := int32(binary.BigEndian.Uint32(body)); got != int32(j) {
		return fmt.Errorf("response correlation id %d, want %d", got, int32(j))
	}
	body = body[4:]
	if version >= 9 { // flexible: response header v1 has tagged fields
		if len(body) == 0 || body[0] != 0 {
			return fmt.Errorf("response %d: unexpected header tags", j)
		}
		body = body[1:]
	}
	resp.Default()
	resp.Version = version
	if err := resp.ReadFrom(body); err != nil {
		return fmt.Errorf("response %d: %w", j, err)
	}
	n := 0
	for i := range resp.Topics {
		t := &resp.Topics[i]
		ti, ok := topicIdx[t.Topic]
		if !ok {
			return fmt.Errorf("response %d: topic %q was not in the request", j, t.Topic)
		}
		for k := range t.Partitions {
			p := &t.Partitions[k]
			if p.ErrorCode != 0 {
				msg := ""
				if p.ErrorMessage != nil {
					msg = ": " + *p.ErrorMessage
				}
				return fmt.Errorf("produce %s/%d: %w%s", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode), msg)
			}
			if p.Partition < 0 || int(p.Partition) >= len(c.n[ti]) {
				return fmt.Errorf("response %d: partition %s/%d was not in the request", j, t.Topic, p.Partition)
			}
			if p.BaseOffset < 0 {
				return fmt.Errorf("produce %s/%d: base offset %d", t.Topic, p.Partition, p.BaseOffset)
			}
			c.n[ti][p.Partition].Add(int64(records))
			n++
		}
	}
	if n != len(r.parts) {
		return fmt.Errorf("response %d answers %d partitions, the request had %d", j, n, len(r.parts))
	}
	return nil
}

// rawProduce is produce() with the raw generator: a warm-up sweep (one
// batch to every partition, timed as the first write), then requests
// until n value bytes have been sent, counted from the responses.
func rawProduce(ctx context.Context, b *broker, o options, topics []string, partitions int, n int64, records int, prof string, c *counts) (phase, error) {
	version, err := produceVersion(ctx, b.addr, o.raw.maxVersion)
	if err != nil {
		return phase{}, err
	}
	value := recordValue(o.recordSize)
	batch := rawBatch(records, value, time.Now().UnixMilli())
	reqs := rawRequests(topics, partitions, batch, records, o.recordSize, o.raw, version)
	var sweep int64
	for _, r := range reqs {
		sweep += r.value
	}
	var warm rawStats
	tw := time.Now()
	if err := rawRun(ctx, b.addr, reqs, int64(len(reqs)), version, records, topics, o.raw, c, &warm); err != nil {
		return phase{}, fmt.Errorf("warm-up: %w", err)
	}
	firstWrite := time.Since(tw).Seconds()
	total := max(1, (n-sweep)*int64(len(reqs))/sweep)
	stop := func() {}
	if prof != "" {
		stop = b.profile(ctx, prof)
	}
	defer stop()
	var st rawStats
	c0, cc0 := b.cpu(), selfCPU()
	t0 := time.Now()
	err = rawRun(ctx, b.addr, reqs, total, version, records, topics, o.raw, c, &st)
	el := time.Since(t0).Seconds()
	cpu, ccpu := b.cpu()-c0, selfCPU()-cc0
	if err != nil {
		return phase{}, err
	}
	gb := float64(st.value.Load()) / 1e9
	return phase{Seconds: el, MBps: gb * 1e3 / el, CPUSeconds: cpu, CPUsPerGB: cpu / gb, ClientCPU: ccpu, ClientCPUPerGB: ccpu / gb, FirstWrite: firstWrite,
		Note: fmt.Sprintf("raw: Produce v%d acks=%d, %d records/batch, %d partitions/request, %d conns x %d in flight, %d requests", version, o.raw.acks, records, len(reqs[0].parts), o.raw.conns, o.raw.inflight, total)}, nil
}

// verifyRaw checks what the broker stored: ListOffsets (latest) of every
// partition equals the acknowledged count, and sample partitions (spread
// evenly) read back from offset 0 hold exactly that many records, at
// consecutive offsets, each with the generator's value (or, after the
// restart phases, the one record per partition they add).
func verifyRaw(ctx context.Context, b *broker, o options, topics []string, partitions, sample int, c *counts) (phase, error) {
	t0 := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		return phase{}, err
	}
	defer cl.Close()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		return phase{}, fmt.Errorf("verify: list offsets: %w", err)
	}
	if bad := checkOffsets(lo, topics, c); bad != "" {
		return phase{}, fmt.Errorf("verify: %s", bad)
	}
	total := len(topics) * partitions
	sample = min(sample, total)
	want := recordValue(o.recordSize)
	offs := map[string]map[int32]kgo.Offset{}
	type key struct {
		t string
		p int32
	}
	next := map[key]int64{}
	var wantRecs int64
	for s := range sample {
		i := s * total / sample
		ti, p := i%len(topics), int32(i/len(topics))
		if offs[topics[ti]] == nil {
			offs[topics[ti]] = map[int32]kgo.Offset{}
		}
		offs[topics[ti]][p] = kgo.NewOffset().At(0)
		next[key{topics[ti], p}] = 0
		wantRecs += c.n[ti][p].Load()
	}
	fc, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ConsumePartitions(offs), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return phase{}, err
	}
	defer fc.Close()
	var got int64
	var bad error
	for got < wantRecs && bad == nil {
		fs := fc.PollFetches(ctx)
		if ctx.Err() != nil {
			return phase{}, fmt.Errorf("verify fetch: %d of %d records before %w", got, wantRecs, ctx.Err())
		}
		for _, e := range fs.Errors() {
			return phase{}, fmt.Errorf("verify fetch %s/%d: %w", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			k := key{r.Topic, r.Partition}
			switch {
			case bad != nil:
			case r.Offset != next[k]:
				bad = fmt.Errorf("verify fetch %s/%d: offset %d, want %d", r.Topic, r.Partition, r.Offset, next[k])
			case r.Key != nil || (string(r.Value) != string(want) && string(r.Value) != restartValue):
				bad = fmt.Errorf("verify fetch %s/%d offset %d: key %q, value of %d bytes is not the generator's", r.Topic, r.Partition, r.Offset, r.Key, len(r.Value))
			}
			next[k] = r.Offset + 1
			got++
		})
	}
	if bad != nil {
		return phase{}, bad
	}
	for k, n := range next {
		ti := 0
		for i, t := range topics {
			if t == k.t {
				ti = i
			}
		}
		if a := c.n[ti][k.p].Load(); n != a {
			return phase{}, fmt.Errorf("verify fetch %s/%d: %d records, %d acknowledged", k.t, k.p, n, a)
		}
	}
	return phase{Name: "verify", Seconds: time.Since(t0).Seconds(),
		Note: fmt.Sprintf("end offsets of %d partitions = acknowledged; %d partitions read back (%d records, values checked)", total, sample, got)}, nil
}
