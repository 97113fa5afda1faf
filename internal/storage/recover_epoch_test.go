package storage

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// A damaged partition leader epoch field (which the CRC does not cover)
// is found by recovery: a batch whose epoch is below its predecessor's is
// dropped with what follows it, and so is the batch before it when that
// one carries an epoch the leader epoch checkpoint never had.
func TestRecoveryDropsDamagedLeaderEpochs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		batch   int   // whose epoch field is overwritten
		epoch   int32 // with this
		wantLEO int64
	}{
		{"raised in the middle", 2, 0x01000003, 2},
		{"lowered", 3, 1, 3},
		{"intact", -1, 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := openTestLog(t, testConfig())
			var size int64
			for i := 0; i < 5; i++ {
				b := makeBatch(t, batchSpec{n: 1, size: 10, ts: int64(i)})
				size = int64(len(b))
				if _, err := tl.Append(b, 3); err != nil {
					t.Fatal(err)
				}
			}
			seg := filepath.Join(tl.dir, fileName(0, logSuffix))
			tl.crash()
			if tc.batch >= 0 {
				f, err := os.OpenFile(seg, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				var e [4]byte
				binary.BigEndian.PutUint32(e[:], uint32(tc.epoch))
				if _, err := f.WriteAt(e[:], int64(tc.batch)*size+12); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			if err := tl.reopenErr(); err != nil {
				t.Fatal(err)
			}
			if leo := tl.LogEndOffset(); leo != tc.wantLEO {
				t.Fatalf("log end after recovery: %d, want %d", leo, tc.wantLEO)
			}
			if e, ok := tl.LatestEpoch(); !ok || e != 3 {
				t.Fatalf("latest epoch after recovery: %d %v, want 3", e, ok)
			}
		})
	}
}

// The leader epoch checkpoint knows every epoch but the newest, even
// after a flush moved the recovery point past the old ones, so a damaged
// epoch field after two new epochs cuts the damaged batch only: the batch
// that started the epoch before the newest is known, not suspect. (Leaving
// new epochs to the next flush, tried for issue 14, made it suspect: the
// recovery then cut acknowledged batches.)
func TestRecoveryKeepsNewEpochsBeforeDamage(t *testing.T) {
	tl := openTestLog(t, testConfig())
	var size int64
	epochs := []int32{3, 3, 8, 9, 9}
	for i, e := range epochs {
		b := makeBatch(t, batchSpec{n: 1, size: 10, ts: int64(i)})
		size = int64(len(b))
		if _, err := tl.Append(b, e); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := tl.Flush(); err != nil { // the recovery point passes epoch 3
				t.Fatal(err)
			}
		}
	}
	seg := filepath.Join(tl.dir, fileName(0, logSuffix))
	tl.crash()
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var e [4]byte
	binary.BigEndian.PutUint32(e[:], 2) // the last batch's epoch, lowered
	if _, err := f.WriteAt(e[:], 4*size+12); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if leo := tl.LogEndOffset(); leo != 4 {
		t.Fatalf("log end after recovery: %d, want 4 (only the damaged batch cut)", leo)
	}
	if e, ok := tl.LatestEpoch(); !ok || e != 9 {
		t.Fatalf("latest epoch after recovery: %d %v, want 9", e, ok)
	}
}
