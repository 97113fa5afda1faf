package replication

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stratalog/strata/internal/metadata"
)

// recordingHandler keeps every log record's level, message and attributes.
type recordingHandler struct {
	mu    *sync.Mutex
	lines *[]logLine
	attrs []slog.Attr
}

type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newRecordingHandler() recordingHandler {
	return recordingHandler{mu: &sync.Mutex{}, lines: &[]logLine{}}
}

func (recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	l := logLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		l.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	*h.lines = append(*h.lines, l)
	h.mu.Unlock()
	return nil
}

func (h recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return h
}

func (h recordingHandler) WithGroup(string) slog.Handler { return h }

// take returns the lines logged since the last take.
func (h recordingHandler) take() []logLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := *h.lines
	*h.lines = nil
	return out
}

func infos(lines []logLine) []logLine {
	var out []logLine
	for _, l := range lines {
		if l.level >= slog.LevelInfo {
			out = append(out, l)
		}
	}
	return out
}

// TestManagerStartupLogLines: a delta that makes this node lead 50
// partitions logs one INFO summary, the per-partition lines at DEBUG; a
// delta that changes nothing for a hosted partition logs nothing at INFO;
// a leadership change of a hosted partition is INFO with its epochs; Close
// logs one line.
func TestManagerStartupLogLines(t *testing.T) {
	h := newRecordingHandler()
	m := NewManager(Options{NodeID: 1, DataDir: t.TempDir(), Static: staticConfig(t, false), Logger: slog.New(h)})
	defer m.Close()

	leaders := make([]int32, 50)
	for i := range leaders {
		leaders[i] = 1
	}
	big := metadata.NewUUID()
	moving := metadata.NewUUID()
	im0 := metadata.Empty()
	recs := append(topicRecs("big", big, leaders...), &metadata.TopicRecord{Name: "moving", ID: moving},
		&metadata.PartitionRecord{TopicID: moving, Partition: 0, Replicas: []int32{2, 1}, ISR: []int32{2, 1}, Leader: 2, LeaderEpoch: 4})
	im1 := mustApply(t, im0, recs...)
	m.Apply(im0, im1)
	lines := h.take()
	info := infos(lines)
	if len(info) != 1 || info[0].msg != "leading 50 partitions, following 1" ||
		!strings.HasPrefix(info[0].attrs["leading"], "big-") || !strings.HasSuffix(info[0].attrs["leading"], " and 45 more") || info[0].attrs["following"] != "moving-0" {
		t.Fatalf("INFO lines of the first delta: %+v, want one summary", info)
	}
	debug := 0
	for _, l := range lines {
		if l.level == slog.LevelDebug && l.msg == "became leader" {
			debug++
		}
	}
	if debug != 50 {
		t.Errorf("%d DEBUG became-leader lines, want 50", debug)
	}

	// The same leaders again (a config change): nothing at INFO.
	im2 := mustApply(t, im1, &metadata.ConfigRecord{ResourceType: metadata.ResourceTopic, ResourceName: "big", Name: "retention.ms", Value: strp("1000")})
	m.Apply(im1, im2)
	if info := infos(h.take()); len(info) != 0 {
		t.Errorf("INFO lines of a config change: %+v, want none", info)
	}

	// This node takes over moving-0 in epoch 5.
	im3 := mustApply(t, im2, &metadata.PartitionRecord{TopicID: moving, Partition: 0, Replicas: []int32{2, 1}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 5})
	m.Apply(im2, im3)
	info = infos(h.take())
	if len(info) != 2 || info[0].msg != "became leader" || info[0].attrs["partition"] != "moving-0" || info[0].attrs["leader_epoch"] != "5" || info[0].attrs["previous_epoch"] != "4" ||
		info[1].msg != "leading 1 partitions, following 0" {
		t.Errorf("INFO lines of a leadership change: %+v, want became leader (epoch 4 to 5) and a summary", info)
	}

	// And loses it again.
	im4 := mustApply(t, im3, &metadata.PartitionRecord{TopicID: moving, Partition: 0, Replicas: []int32{2, 1}, ISR: []int32{2, 1}, Leader: 2, LeaderEpoch: 6})
	m.Apply(im3, im4)
	info = infos(h.take())
	if len(info) != 2 || info[0].msg != "became follower" || info[0].attrs["leader"] != "2" || info[0].attrs["leader_epoch"] != "6" {
		t.Errorf("INFO lines of a lost leadership: %+v, want became follower of 2 in epoch 6 and a summary", info)
	}

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	info = infos(h.take())
	if len(info) != 1 || info[0].msg != "closed 51 partitions, 50 of them led here" {
		t.Errorf("INFO lines of Close: %+v", info)
	}
	for _, phase := range []string{"took", "write", "sync", "finish", "sync_finish", "summary"} {
		if len(info) == 1 && info[0].attrs[phase] == "" {
			t.Errorf("the Close line has no %s duration: %+v", phase, info[0].attrs)
		}
	}
}
