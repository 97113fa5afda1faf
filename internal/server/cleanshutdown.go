package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A clean shutdown is recorded in the data dir as the broker epoch the
// node had, once every partition log is flushed and closed (Kafka's
// .kafka_cleanshutdown). The next start takes it (removing the file
// before anything is written, so that a crash from then on counts as
// unclean) and registers with it as PreviousBrokerEpoch (KIP-966): the
// controller then knows the broker lost nothing it acknowledged.
const cleanShutdownFile = "clean-shutdown"

// writeCleanShutdown records a clean shutdown at epoch.
func writeCleanShutdown(dir string, epoch int64) error {
	if err := writeFileSync(filepath.Join(dir, cleanShutdownFile), []byte(strconv.FormatInt(epoch, 10)+"\n")); err != nil {
		return err
	}
	return syncDir(dir)
}

// takeCleanShutdown returns the epoch of the last clean shutdown, or -1
// if the last stop was not clean (or this is the first start), and
// removes the record.
func takeCleanShutdown(dir string) (int64, error) {
	path := filepath.Join(dir, cleanShutdownFile)
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return -1, nil
	}
	if err != nil {
		return -1, fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return -1, fmt.Errorf("remove %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return -1, err
	}
	epoch, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || epoch < 0 {
		return -1, nil // unreadable: not a clean shutdown we can vouch for
	}
	return epoch, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
