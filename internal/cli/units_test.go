package cli

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseOffsetSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    OffsetSpec
		wantErr bool
	}{
		{"start", OffsetSpec{Kind: offStart}, false},
		{"oldest", OffsetSpec{Kind: offStart}, false},
		{"end", OffsetSpec{Kind: offEnd}, false},
		{"42", OffsetSpec{Kind: offExact, N: 42}, false},
		{"0", OffsetSpec{Kind: offExact, N: 0}, false},
		{"-5", OffsetSpec{Kind: offFromEnd, N: 5}, false},
		{"-0", OffsetSpec{Kind: offEnd}, false},
		{"@1700000000000", OffsetSpec{Kind: offTime, N: 1700000000000}, false},
		{"", OffsetSpec{}, true},
		{"@", OffsetSpec{}, true},
		{"@-1", OffsetSpec{}, true},
		{"soon", OffsetSpec{}, true},
		{"1.5", OffsetSpec{}, true},
	}
	for _, tt := range tests {
		got, err := ParseOffsetSpec(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseOffsetSpec(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "bad offset") {
				t.Errorf("ParseOffsetSpec(%q) error %q lacks 'bad offset'", tt.in, err)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("ParseOffsetSpec(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestOffsetSpecResolve(t *testing.T) {
	// A log spanning [10, 20).
	tests := []struct {
		spec   string
		atTime int64
		want   int64
	}{
		{"start", -1, 10},
		{"end", -1, 20},
		{"15", -1, 15},
		{"3", -1, 10},  // below the log start: clamped
		{"99", -1, 20}, // past the end: clamped
		{"-4", -1, 16},
		{"-50", -1, 10},
		{"@5", 13, 13},
		{"@5", -1, 20}, // nothing that recent: the end
	}
	for _, tt := range tests {
		s, err := ParseOffsetSpec(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Resolve(10, 20, tt.atTime); got != tt.want {
			t.Errorf("%s.Resolve(10, 20, %d) = %d, want %d", tt.spec, tt.atTime, got, tt.want)
		}
	}
}

func TestRecordFormat(t *testing.T) {
	r := &kgo.Record{Topic: "t", Partition: 2, Offset: 7, Key: []byte("k"), Value: []byte("value"),
		Timestamp: time.UnixMilli(1700000000123),
		Headers:   []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}}
	tests := []struct {
		format, want string
		wantErr      bool
	}{
		{`%s\n`, "value\n", false},
		{`%t/%p@%o %k=%s`, "t/2@7 k=value", false},
		{`%K %S %T\t%h %%`, "1 5 1700000000123\ta=1,b=2 %", false},
		{`%d`, "2023-11-14T22:13:20.123Z", false},
		{`%x`, "", true},
		{`%`, "", true},
		{`\q`, "", true},
	}
	for _, tt := range tests {
		f, err := compileFormat(tt.format)
		if (err != nil) != tt.wantErr {
			t.Errorf("compileFormat(%q) error = %v, want error %v", tt.format, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got := string(f.append(nil, r)); got != tt.want {
			t.Errorf("format %q = %q, want %q", tt.format, got, tt.want)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	check := func(q float64, want uint64) {
		t.Helper()
		got := h.quantile(q)
		if diff := float64(got) - float64(want); diff > 0.02*float64(want) || diff < -0.02*float64(want) {
			t.Errorf("quantile(%g) = %d µs, want %d ±2%%", q, got, want)
		}
	}
	check(0.5, 5000)
	check(0.9, 9000)
	check(0.99, 9900)
	check(0.999, 9990)
	if h.max != 10000 {
		t.Errorf("max = %d, want 10000", h.max)
	}
	if q := h.quantile(1); q != 10000 {
		t.Errorf("quantile(1) = %d, want the max 10000", q)
	}
	for _, v := range []uint64{0, 1, 127, 128, 129, 1000, 1 << 20, 1<<40 + 12345, 1<<63 + 5} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of range", v, i)
		}
		mid := histValue(i)
		if d := float64(mid) - float64(v); d > 0.016*float64(v)+1 || d < -0.016*float64(v)-1 {
			t.Errorf("histValue(histIndex(%d)) = %d: error too large", v, mid)
		}
	}
	var m histogram
	m.merge(&h)
	if m.n != h.n || m.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merge lost data")
	}
}

func TestTable(t *testing.T) {
	tb := newTable("A", "LONGER")
	tb.row("xyz", 1)
	tb.styledRow(red, "", []int32{1, 2})
	var b strings.Builder
	if err := tb.write(&b, false); err != nil {
		t.Fatal(err)
	}
	want := "A    LONGER\nxyz  1\n-    1,2\n"
	if b.String() != want {
		t.Errorf("table = %q, want %q", b.String(), want)
	}
	b.Reset()
	_ = tb.write(&b, true)
	if !strings.Contains(b.String(), "\x1b[31m-    1,2\x1b[0m") {
		t.Errorf("coloured table lacks red row: %q", b.String())
	}
}

// consume --json carries every byte: text as text, anything else base64,
// marked; no HTML escaping of text.
func TestRecordJSON(t *testing.T) {
	r := &kgo.Record{Topic: "t", Partition: 1, Offset: 2, Timestamp: time.UnixMilli(1700000000000),
		Key: []byte{0xff, 0x00}, Value: []byte(`<a & b>`),
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte{0xc3}}, {Key: "h", Value: []byte("ok")}}}
	got, err := appendRecordJSON([]byte("prefix "), r)
	if err != nil {
		t.Fatal(err)
	}
	want := `prefix {"topic":"t","partition":1,"offset":2,"timestamp":1700000000000,"key":"/wA=","key_encoding":"base64",` +
		`"value":"<a & b>","headers":[{"key":"h","value":"ww==","encoding":"base64"},{"key":"h","value":"ok"}]}` + "\n"
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A nil key or value is null, an empty one "".
	got, _ = appendRecordJSON(nil, &kgo.Record{Value: []byte{}})
	if !strings.Contains(string(got), `"key":null,"value":""`) {
		t.Errorf("nil key, empty value: %s", got)
	}
}

// Colour: non-default configs are highlighted on a terminal; a pipe is no
// terminal, and then there are no escape codes at all.
func TestColour(t *testing.T) {
	tj := topicJSON{Topic: "t", Partitions: []partitionJSON{{Replicas: []int32{1}, ISR: []int32{1}}},
		Configs: []configJSON{{Key: "cleanup.policy", Value: "delete", Source: "default", Default: true},
			{Key: "retention.ms", Value: "1000", Source: "topic"}}}
	var b strings.Builder
	if err := printTopic(&b, true, tj); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\x1b[33mretention.ms    1000    topic *\x1b[0m") || strings.Contains(b.String(), "\x1b[33mcleanup") {
		t.Errorf("coloured describe does not highlight exactly the non-default config:\n%q", b.String())
	}
	b.Reset()
	_ = printTopic(&b, false, tj)
	if strings.Contains(b.String(), "\x1b") || !strings.Contains(b.String(), "topic *") {
		t.Errorf("plain describe: %q", b.String())
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) || isTerminal(&b) {
		t.Error("a pipe or a buffer taken for a terminal")
	}
}

func TestJoinFailures(t *testing.T) {
	if err := joinFailures("create topic", nil); err != nil {
		t.Errorf("no failures: %v", err)
	}
	tests := []struct {
		failed []failure
		want   string
	}{
		{[]failure{{"a", "exists"}}, "create topic a: exists"},
		{[]failure{{"a", "exists"}, {"b", "invalid"}, {"c", "exists"}}, "create topic a, c: exists; b: invalid"},
	}
	for _, tt := range tests {
		if got := joinFailures("create topic", tt.failed).Error(); got != tt.want {
			t.Errorf("joinFailures = %q, want %q", got, tt.want)
		}
	}
	err := joinFailures(`delete offsets of group "g" for`, []failure{{"t/0", "busy"}, {"t/1", "busy"}})
	if want := `delete offsets of group "g" for t/0, t/1: busy`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}
