package replication

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The data dir's high watermark checkpoint, as Kafka keeps one per log
// dir: replication-offset-checkpoint in the data dir, "0\n<count>\n" then
// "<topic> <partition> <offset>\n" per hosted partition, written every
// hwCheckpointEvery and at Close in one file (a temporary file, an fsync,
// a rename) instead of one file per partition (issue 14: at 10,000
// partitions the per-log files were 9-13 % of the broker's produce CPU,
// and a third of the small files a restart reads). A log whose partition
// is in it opens without reading its own file (storage.Options
// HighWatermarkGiven); one that is not (a data dir of an earlier version,
// a partition created after the last checkpoint) reads its own, as
// before. A machine crash may leave the previous file, whose high
// watermarks are lower: a leader's high watermark moves up again as its
// followers fetch, and a log's is kept between its start and end.

const hwCheckpointName = "replication-offset-checkpoint"

// readHWCheckpoint reads the data dir's checkpoint; a missing file is an
// empty map.
func readHWCheckpoint(dataDir string) (map[TopicPartition]int64, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, hwCheckpointName))
	if errors.Is(err, os.ErrNotExist) {
		return map[TopicPartition]int64{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseHWCheckpoint(b)
}

func parseHWCheckpoint(b []byte) (map[TopicPartition]int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	line := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		return sc.Text(), true
	}
	v, ok := line()
	if !ok || v != "0" {
		return nil, fmt.Errorf("%s: version %q, want 0", hwCheckpointName, v)
	}
	v, ok = line()
	n, err := strconv.Atoi(v)
	if !ok || err != nil || n < 0 {
		return nil, fmt.Errorf("%s: entry count %q", hwCheckpointName, v)
	}
	out := make(map[TopicPartition]int64, n)
	for i := range n {
		v, ok := line()
		f := strings.Fields(v)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("%s: entry %d of %d: %q", hwCheckpointName, i+1, n, v)
		}
		part, err1 := strconv.ParseInt(f[1], 10, 32)
		off, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || part < 0 || off < 0 {
			return nil, fmt.Errorf("%s: entry %d: %q", hwCheckpointName, i+1, v)
		}
		out[TopicPartition{f[0], int32(part)}] = off
	}
	if _, more := line(); more {
		return nil, fmt.Errorf("%s: more than the %d entries it announces", hwCheckpointName, n)
	}
	return out, sc.Err()
}

// encodeHWCheckpoint encodes hws, sorted (a stable file for the same state).
func encodeHWCheckpoint(hws map[TopicPartition]int64) []byte {
	tps := make([]TopicPartition, 0, len(hws))
	for tp := range hws {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	buf := make([]byte, 0, 16+len(tps)*32)
	buf = append(buf, "0\n"...)
	buf = strconv.AppendInt(buf, int64(len(tps)), 10)
	buf = append(buf, '\n')
	for _, tp := range tps {
		buf = append(buf, tp.Topic...)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, int64(tp.Partition), 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, hws[tp], 10)
		buf = append(buf, '\n')
	}
	return buf
}

// writeHWCheckpoint replaces the data dir's checkpoint with hws.
func writeHWCheckpoint(dataDir string, hws map[TopicPartition]int64) error {
	path := filepath.Join(dataDir, hwCheckpointName)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", hwCheckpointName, err)
	}
	_, werr := f.Write(encodeHWCheckpoint(hws))
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", hwCheckpointName, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", hwCheckpointName, err)
	}
	return nil
}

// checkpointHWs writes every hosted partition's high watermark to the
// data dir's checkpoint, if any changed since the last write (or a write
// failed).
func (m *Manager) checkpointHWs() error {
	if m.opts.DataDir == "" {
		return nil
	}
	parts := *m.parts.Load()
	hws := make(map[TopicPartition]int64, len(parts))
	for tp, p := range parts {
		hws[tp] = p.hw.Load()
	}
	m.hwMu.Lock()
	defer m.hwMu.Unlock()
	if m.hwWritten != nil && maps.Equal(hws, m.hwWritten) {
		return nil
	}
	if err := writeHWCheckpoint(m.opts.DataDir, hws); err != nil {
		m.hwWritten = nil
		return err
	}
	m.hwWritten = hws
	return nil
}
