package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// offsetKind is how an -o/--offset spec picks a position.
type offsetKind int

const (
	offStart   offsetKind = iota // the log start
	offEnd                       // the log end (only new records)
	offExact                     // an absolute offset
	offFromEnd                   // N before the end
	offTime                      // the first record at or after a unix-ms timestamp
)

// OffsetSpec is a parsed -o/--offset value: start, end, N, -N or @unix-ms.
type OffsetSpec struct {
	Kind offsetKind
	N    int64 // the offset, the count before the end, or the timestamp
}

// ParseOffsetSpec parses start|oldest, end|newest, N, -N or @<unix-ms>.
func ParseOffsetSpec(s string) (OffsetSpec, error) {
	bad := func() (OffsetSpec, error) {
		return OffsetSpec{}, fmt.Errorf("bad offset %q: want start, end, an offset N, -N (N before the end) or @<unix-ms>", s)
	}
	switch strings.ToLower(s) {
	case "start", "oldest", "beginning", "earliest":
		return OffsetSpec{Kind: offStart}, nil
	case "end", "newest", "latest":
		return OffsetSpec{Kind: offEnd}, nil
	case "":
		return bad()
	}
	if ms, ok := strings.CutPrefix(s, "@"); ok {
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || n < 0 {
			return bad()
		}
		return OffsetSpec{Kind: offTime, N: n}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return bad()
	}
	if strings.HasPrefix(s, "-") {
		if n == 0 {
			return OffsetSpec{Kind: offEnd}, nil
		}
		return OffsetSpec{Kind: offFromEnd, N: -n}, nil
	}
	return OffsetSpec{Kind: offExact, N: n}, nil
}

func (o OffsetSpec) String() string {
	switch o.Kind {
	case offStart:
		return "start"
	case offEnd:
		return "end"
	case offExact:
		return strconv.FormatInt(o.N, 10)
	case offFromEnd:
		return "-" + strconv.FormatInt(o.N, 10)
	}
	return "@" + strconv.FormatInt(o.N, 10)
}

// Resolve picks the concrete offset in a partition whose log spans
// [start, end); atTime is the answer of a ListOffsets by timestamp (-1 when
// no record is that recent). The result is clamped into [start, end].
func (o OffsetSpec) Resolve(start, end, atTime int64) int64 {
	var at int64
	switch o.Kind {
	case offStart:
		at = start
	case offEnd:
		at = end
	case offExact:
		at = o.N
	case offFromEnd:
		at = end - o.N
	case offTime:
		at = atTime
		if at < 0 {
			at = end
		}
	}
	return min(max(at, start), end)
}

// kgoOffset is the spec as a kgo reset offset, for group consumers whose
// partitions have no committed offset yet.
func (o OffsetSpec) kgoOffset() kgo.Offset {
	switch o.Kind {
	case offEnd:
		return kgo.NewOffset().AtEnd()
	case offExact:
		return kgo.NewOffset().At(o.N)
	case offFromEnd:
		return kgo.NewOffset().AtEnd().Relative(-o.N)
	case offTime:
		return kgo.NewOffset().AfterMilli(o.N)
	}
	return kgo.NewOffset().AtStart()
}
