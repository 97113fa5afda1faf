package cli

import (
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
