package broker

// DescribeLogDirs, v0..4: the broker has one log dir (data.dir); report each
// hosted partition's size on disk, optionally filtered by the request's
// topics and partitions (a null topic list means all). v4+ adds the file
// system's total and usable bytes. An offline log directory
// (replication.LogDir: a write in it failed) is answered as Kafka answers
// one: KAFKA_STORAGE_ERROR and no partitions.

import (
	"context"
	"path/filepath"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"
)

func (b *Broker) handleDescribeLogDirs(_ context.Context, r *request) {
	req := r.body.(*kmsg.DescribeLogDirsRequest)
	var want map[string]map[int32]bool
	if req.Topics != nil {
		want = map[string]map[int32]bool{}
		for _, t := range req.Topics {
			ps := want[t.Topic]
			if ps == nil {
				ps = map[int32]bool{}
				want[t.Topic] = ps
			}
			for _, p := range t.Partitions {
				ps[p] = true
			}
		}
	}
	dir, err := filepath.Abs(b.opts.Static.DataDir())
	if err != nil {
		dir = b.opts.Static.DataDir()
	}
	rd := kmsg.NewDescribeLogDirsResponseDir()
	rd.Dir = dir
	if b.opts.LogDir.IsOffline() {
		rd.ErrorCode = kerr.KafkaStorageError.Code
		rd.TotalBytes, rd.UsableBytes = -1, -1
		resp := kmsg.NewPtrDescribeLogDirsResponse()
		resp.Dirs = []kmsg.DescribeLogDirsResponseDir{rd}
		r.respond(resp)
		return
	}
	byTopic := map[string]*kmsg.DescribeLogDirsResponseDirTopic{}
	for _, p := range b.opts.Partitions.All() {
		if want != nil && !want[p.Topic][p.Index] {
			continue
		}
		t := byTopic[p.Topic]
		if t == nil {
			t = &kmsg.DescribeLogDirsResponseDirTopic{Topic: p.Topic}
			byTopic[p.Topic] = t
		}
		t.Partitions = append(t.Partitions, kmsg.DescribeLogDirsResponseDirTopicPartition{
			Partition: p.Index,
			Size:      p.Size(),
			OffsetLag: p.OffsetLag(),
		})
	}
	names := make([]string, 0, len(byTopic))
	for n := range byTopic {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := byTopic[n]
		sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].Partition < t.Partitions[j].Partition })
		rd.Topics = append(rd.Topics, *t)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		rd.TotalBytes = int64(st.Blocks) * int64(st.Bsize)
		rd.UsableBytes = int64(st.Bavail) * int64(st.Bsize)
	} else {
		rd.TotalBytes, rd.UsableBytes = -1, -1
	}
	resp := kmsg.NewPtrDescribeLogDirsResponse()
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{rd}
	r.respond(resp)
}
