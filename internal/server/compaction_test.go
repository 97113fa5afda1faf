package server

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readAll consumes a partition from its start up to the high watermark and
// returns key -> last value seen (nil for a tombstone), key -> offset of
// that last value, and the record count.
func readAll(t *testing.T, ctx context.Context, n *testNode, topic string) (map[string][]byte, map[string]int64, int) {
	t.Helper()
	ends, err := n.admin().ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	latest := map[string][]byte{}
	offsets := map[string]int64{}
	count := 0
	if end.Offset == 0 {
		return latest, offsets, 0
	}
	cl := n.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			latest[string(r.Key)] = r.Value
			offsets[string(r.Key)] = r.Offset
			count++
			if r.Offset >= end.Offset-1 {
				done = true
			}
		})
		if done {
			return latest, offsets, count
		}
	}
}

// TestCompactionKeepsLatestPerKey writes many versions of each key plus
// tombstones to a compacted topic, lets the broker's own cleaner run, and
// reads back exactly the latest value of each live key, tombstoned keys gone
// once delete.retention.ms has passed, offsets of what remains unchanged.
func TestCompactionKeepsLatestPerKey(t *testing.T) {
	n := startNode(t, "", map[string]string{"log.cleaner.backoff.ms": "50"})
	ctx := ctxT(t)
	if _, err := n.admin().CreateTopic(ctx, 1, 1, map[string]*string{
		"cleanup.policy":            ptr("compact"),
		"segment.bytes":             ptr("16384"),
		"min.cleanable.dirty.ratio": ptr("0.01"),
		"delete.retention.ms":       ptr("200"),
	}, "compacted"); err != nil {
		t.Fatal(err)
	}
	cl := n.client(kgo.DefaultProduceTopic("compacted"), kgo.ProducerLinger(0))
	const keys, versions = 50, 40
	want := map[string]string{}
	offsetOf := map[string]int64{}
	for v := range versions {
		var recs []*kgo.Record
		for k := range keys {
			key := "key-" + strconv.Itoa(k)
			val := fmt.Sprintf("%s-v%d", key, v)
			recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte(val)})
			want[key] = val
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			offsetOf[string(r.Record.Key)] = r.Record.Offset
		}
	}
	// Tombstones for every fifth key.
	var tomb []*kgo.Record
	for k := 0; k < keys; k += 5 {
		key := "key-" + strconv.Itoa(k)
		tomb = append(tomb, &kgo.Record{Key: []byte(key)})
		delete(want, key)
	}
	if err := cl.ProduceSync(ctx, tomb...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Keep writing an unrelated key so the segments holding the versions
	// and tombstones roll out of the active segment and become cleanable.
	for i := range 300 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("filler"), Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	want["filler"] = "299"
	total := keys*versions + len(tomb) + 300

	var got map[string][]byte
	var at map[string]int64
	var count int
	fill := 300
	waitFor(t, ctx, "the cleaner to leave only the latest value per key", func() bool {
		// Tombstones go in a pass after delete.retention.ms, and a pass
		// needs new dirty data: keep the filler coming, as a live topic
		// would.
		for range 20 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("filler"), Value: []byte(strconv.Itoa(fill))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			want["filler"] = strconv.Itoa(fill)
			fill++
		}
		got, at, count = readAll(t, ctx, n, "compacted")
		if len(got) != len(want) {
			return false
		}
		for k, v := range want {
			if string(got[k]) != v {
				return false
			}
		}
		return true
	})
	if total += fill - 300; count >= total/2 {
		t.Fatalf("%d records remain of %d written: compaction removed too little", count, total)
	}
	// The survivors kept their offsets.
	for k, off := range at {
		if k != "filler" && off != offsetOf[k] {
			t.Fatalf("key %s at offset %d, written at %d", k, off, offsetOf[k])
		}
	}
	// And the result survives a restart (the cleaner may have removed
	// more meanwhile, never a latest value or its offset).
	n.restart()
	got2, at2, count2 := readAll(t, ctx, n, "compacted")
	if count2 > count || len(got2) != len(got) {
		t.Fatalf("after restart %d records / %d keys, before %d / %d", count2, len(got2), count, len(got))
	}
	for k, v := range got {
		if string(got2[k]) != string(v) || at2[k] != at[k] {
			t.Fatalf("after restart key %s = %q at %d, before %q at %d", k, got2[k], at2[k], v, at[k])
		}
	}
}

// TestConsumerOffsetsStaysBounded commits offsets many times for one group
// and checks that compaction keeps its __consumer_offsets partition small.
func TestConsumerOffsetsStaysBounded(t *testing.T) {
	n := startNode(t, "", map[string]string{
		"log.cleaner.backoff.ms":       "50",
		"offsets.topic.num.partitions": "1",
		"offsets.topic.segment.bytes":  "65536",
	})
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "work"); err != nil {
		t.Fatal(err)
	}
	const commits = 5000
	for i := range commits {
		os := kadm.Offsets{}
		for p := range int32(4) {
			os.Add(kadm.Offset{Topic: "work", Partition: p, At: int64(i), LeaderEpoch: -1})
		}
		if _, err := adm.CommitOffsets(ctx, "bounded", os); err != nil {
			t.Fatal(err)
		}
	}
	// 5000 commits of 4 partitions are well over a megabyte of records;
	// compacted, what is left is the active segment plus a small cleaned
	// one.
	waitFor(t, ctx, "__consumer_offsets to be compacted", func() bool {
		s := logDirSize(ctx, adm, "__consumer_offsets")
		return s > 0 && s < 3*65536
	})
	fetched, err := adm.FetchOffsets(ctx, "bounded")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(4) {
		o, _ := fetched.Lookup("work", p)
		if o.At != commits-1 {
			t.Fatalf("partition %d committed at %d, want %d", p, o.At, commits-1)
		}
	}
	// The compacted log replays to the same offsets.
	n.restart()
	fetched, err = n.admin().FetchOffsets(ctx, "bounded")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := fetched.Lookup("work", 3); o.At != commits-1 {
		t.Fatalf("after restart partition 3 committed at %d, want %d", o.At, commits-1)
	}
}
