package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// recordJSON is one line of `consume --json`. Keys and values are text;
// one that is not valid UTF-8 is base64 and its *_encoding says so, since
// JSON would silently replace the bytes it cannot carry.
type recordJSON struct {
	Topic         string       `json:"topic"`
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	Timestamp     int64        `json:"timestamp"`
	Key           *string      `json:"key"`
	KeyEncoding   string       `json:"key_encoding,omitempty"`
	Value         *string      `json:"value"`
	ValueEncoding string       `json:"value_encoding,omitempty"`
	Headers       []headerJSON `json:"headers,omitempty"` // in order; keys may repeat
}

type headerJSON struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	Encoding string `json:"encoding,omitempty"`
}

// jsonBytes is b as JSON text, or base64 with "base64" as its encoding.
func jsonBytes(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

func appendRecordJSON(b []byte, r *kgo.Record) ([]byte, error) {
	rj := recordJSON{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()}
	if r.Key != nil {
		k, enc := jsonBytes(r.Key)
		rj.Key, rj.KeyEncoding = &k, enc
	}
	if r.Value != nil {
		v, enc := jsonBytes(r.Value)
		rj.Value, rj.ValueEncoding = &v, enc
	}
	if len(r.Headers) > 0 {
		rj.Headers = make([]headerJSON, len(r.Headers))
		for i, h := range r.Headers {
			v, enc := jsonBytes(h.Value)
			rj.Headers[i] = headerJSON{h.Key, v, enc}
		}
	}
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf) // ends the line with '\n'
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rj); err != nil {
		return b, err
	}
	return buf.Bytes(), nil
}

// topicIDString prints a topic id as Kafka's tools do (and as Strata writes
// it in partition.metadata): URL-safe base64 without padding.
func topicIDString(id kadm.TopicID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}
