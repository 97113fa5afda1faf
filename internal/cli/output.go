package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether w is a terminal; colour is used only then.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// style is an ANSI attribute for a table cell.
type style int

const (
	plain style = iota
	bold
	yellow
	red
	green
)

func (s style) code() string {
	switch s {
	case bold:
		return "\x1b[1m"
	case yellow:
		return "\x1b[33m"
	case red:
		return "\x1b[31m"
	case green:
		return "\x1b[32m"
	}
	return ""
}

// table prints aligned columns; widths are measured on the plain text, so
// colour does not break alignment.
type table struct {
	header []string
	rows   [][]string
	styles []style // per row
}

func newTable(header ...string) *table { return &table{header: header} }

func (t *table) row(cells ...any) { t.styledRow(plain, cells...) }

func (t *table) styledRow(s style, cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = cellString(c)
	}
	t.rows = append(t.rows, row)
	t.styles = append(t.styles, s)
}

func cellString(c any) string {
	switch v := c.(type) {
	case string:
		if v == "" {
			return "-"
		}
		return v
	case []int32:
		if len(v) == 0 {
			return "-"
		}
		parts := make([]string, len(v))
		for i, n := range v {
			parts[i] = strconv.Itoa(int(n))
		}
		return strings.Join(parts, ",")
	case error:
		if v == nil {
			return "-"
		}
		return v.Error()
	default:
		return fmt.Sprint(v)
	}
}

func (t *table) write(w io.Writer, color bool) error {
	widths := make([]int, len(t.header))
	measure := func(row []string) {
		for i, c := range row {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
	}
	measure(t.header)
	for _, r := range t.rows {
		measure(r)
	}
	var b strings.Builder
	line := func(row []string, s style) {
		if color && s != plain {
			b.WriteString(s.code())
		}
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		if color && s != plain {
			b.WriteString("\x1b[0m")
		}
		b.WriteByte('\n')
	}
	line(t.header, bold)
	for i, r := range t.rows {
		line(r, t.styles[i])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeJSON prints v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// errString is the JSON form of an optional error.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return describeErr(err).Error()
}

// humanBytes formats a size as B, KiB, MiB, GiB.
func humanBytes(n int64) string {
	if n < 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// leaderCell shows a partition without a leader (-1) as "none".
func leaderCell(l int32) any {
	if l < 0 {
		return "none"
	}
	return l
}

// writeFields prints key, value pairs as aligned lines, as the headers of
// `cluster info` and `topic describe`.
func writeFields(w io.Writer, kv ...string) {
	width := 0
	for i := 0; i < len(kv); i += 2 {
		width = max(width, len(kv[i]))
	}
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "%-*s  %s\n", width, kv[i], kv[i+1])
	}
	io.WriteString(w, b.String())
}
