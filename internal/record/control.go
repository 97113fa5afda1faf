package record

import (
	"encoding/binary"
	"fmt"
)

// Control records (Kafka's ControlRecordType, EndTransactionMarker): a
// control batch holds one record whose key is version int16 (0) and type
// int16 (0 abort, 1 commit; other types, such as KRaft's, are not
// transaction markers) and, for a marker, whose value is version int16 (0)
// and the transaction coordinator's epoch int32.
const (
	ControlAbort  = 0
	ControlCommit = 1
)

// TxnMarker is what a transaction marker says.
type TxnMarker struct {
	Commit           bool
	CoordinatorEpoch int32
}

// ParseTxnMarker reads the control record of a control batch. isMarker is
// false for control records that are not commit or abort markers. The
// batch's CRC is not checked (Validate does that).
func ParseTxnMarker(batch []byte) (m TxnMarker, isMarker bool, err error) {
	found := false
	err = ForEach(batch, func(r *Record) error {
		if found {
			return fmt.Errorf("%w: control batch with more than one record", ErrInvalid)
		}
		found = true
		if len(r.Key) < 4 {
			return fmt.Errorf("%w: control record key of %d bytes", ErrInvalid, len(r.Key))
		}
		typ := int16(binary.BigEndian.Uint16(r.Key[2:]))
		if typ != ControlAbort && typ != ControlCommit {
			return nil
		}
		if len(r.Value) < 6 {
			return fmt.Errorf("%w: transaction marker value of %d bytes", ErrInvalid, len(r.Value))
		}
		isMarker = true
		m.Commit = typ == ControlCommit
		m.CoordinatorEpoch = int32(binary.BigEndian.Uint32(r.Value[2:]))
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: control batch without a record", ErrInvalid)
	}
	return m, isMarker, err
}

// BuildTxnMarker returns a control batch holding one commit or abort marker
// as Kafka writes it (MemoryRecords.withEndTransactionMarker): the
// transactional and control attributes, the producer's id and epoch, no
// sequence, one record stamped timestamp.
func BuildTxnMarker(producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool, timestamp int64) []byte {
	typ := uint16(ControlAbort)
	if commit {
		typ = ControlCommit
	}
	be := binary.BigEndian
	key := be.AppendUint16(be.AppendUint16(nil, 0), typ)
	val := be.AppendUint32(be.AppendUint16(nil, 0), uint32(coordinatorEpoch))
	opts := NewBatchOptions(CodecNone)
	opts.ProducerID, opts.ProducerEpoch = producerID, producerEpoch
	opts.Transactional, opts.Control = true, true
	b, err := Build(nil, opts, timestamp, []Record{{Key: key, Value: val}})
	if err != nil {
		panic(fmt.Sprintf("record: building a transaction marker: %v", err)) // fixed, valid input
	}
	return b
}
