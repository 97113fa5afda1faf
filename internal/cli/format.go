package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// recordFormat is a compiled -f template, kcat style:
//
//	%t topic   %p partition   %o offset   %T timestamp (unix ms)
//	%k key     %s value       %K key length   %S value length
//	%h headers (k=v,k=v)      %d timestamp as RFC 3339   %% a percent sign
//	\n \t \r \\ escapes
type recordFormat struct {
	parts []formatPart
}

type formatPart struct {
	lit  string
	verb byte // 0 for a literal
}

const defaultFormat = `%s\n`

func compileFormat(f string) (*recordFormat, error) {
	var rf recordFormat
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			rf.parts = append(rf.parts, formatPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch c {
		case '\\':
			if i+1 >= len(f) {
				return nil, fmt.Errorf("format %q: trailing backslash", f)
			}
			i++
			switch f[i] {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case 'r':
				lit.WriteByte('\r')
			case '\\':
				lit.WriteByte('\\')
			default:
				return nil, fmt.Errorf("format %q: unknown escape \\%c", f, f[i])
			}
		case '%':
			if i+1 >= len(f) {
				return nil, fmt.Errorf("format %q: trailing %%", f)
			}
			i++
			switch v := f[i]; v {
			case '%':
				lit.WriteByte('%')
			case 't', 'p', 'o', 'T', 'k', 's', 'K', 'S', 'h', 'd':
				flush()
				rf.parts = append(rf.parts, formatPart{verb: v})
			default:
				return nil, fmt.Errorf("format %q: unknown verb %%%c (want t, p, o, T, d, k, s, K, S, h)", f, v)
			}
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return &rf, nil
}

// append formats r onto b.
func (rf *recordFormat) append(b []byte, r *kgo.Record) []byte {
	for _, p := range rf.parts {
		switch p.verb {
		case 0:
			b = append(b, p.lit...)
		case 't':
			b = append(b, r.Topic...)
		case 'p':
			b = strconv.AppendInt(b, int64(r.Partition), 10)
		case 'o':
			b = strconv.AppendInt(b, r.Offset, 10)
		case 'T':
			b = strconv.AppendInt(b, r.Timestamp.UnixMilli(), 10)
		case 'd':
			b = r.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
		case 'k':
			b = append(b, r.Key...)
		case 's':
			b = append(b, r.Value...)
		case 'K':
			b = strconv.AppendInt(b, int64(len(r.Key)), 10)
		case 'S':
			b = strconv.AppendInt(b, int64(len(r.Value)), 10)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, h.Key...)
				b = append(b, '=')
				b = append(b, h.Value...)
			}
		}
	}
	return b
}

// recordJSON is one line of `consume --json`.
type recordJSON struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp int64             `json:"timestamp"`
	Key       *string           `json:"key"`
	Value     *string           `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
}

func appendRecordJSON(b []byte, r *kgo.Record) ([]byte, error) {
	rj := recordJSON{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()}
	if r.Key != nil {
		k := string(r.Key)
		rj.Key = &k
	}
	if r.Value != nil {
		v := string(r.Value)
		rj.Value = &v
	}
	if len(r.Headers) > 0 {
		rj.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			rj.Headers[h.Key] = string(h.Value)
		}
	}
	j, err := json.Marshal(rj)
	if err != nil {
		return b, err
	}
	b = append(b, j...)
	return append(b, '\n'), nil
}

// topicIDString prints a topic id as Kafka's tools do (and as Strata writes
// it in partition.metadata): URL-safe base64 without padding.
func topicIDString(id kadm.TopicID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}
