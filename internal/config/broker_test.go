package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeProps(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "strata.properties")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadBrokerPrecedence(t *testing.T) {
	tests := []struct {
		name      string
		file      string // properties file body; "" means no file
		env       []string
		overrides map[string]string
		key       string
		want      string
		wantSrc   Source
	}{
		{name: "default", key: "num.partitions", want: "1", wantSrc: SourceDefault},
		{name: "file", file: "num.partitions=2\n", key: "num.partitions", want: "2", wantSrc: SourceStaticBroker},
		{name: "env beats file", file: "num.partitions=2\n", env: []string{"STRATA_NUM_PARTITIONS=3"}, key: "num.partitions", want: "3", wantSrc: SourceStaticBroker},
		{name: "flag beats env and file", file: "num.partitions=2\n", env: []string{"STRATA_NUM_PARTITIONS=3"}, overrides: map[string]string{"num.partitions": "4"}, key: "num.partitions", want: "4", wantSrc: SourceStaticBroker},
		{name: "flag beats file", file: "num.partitions=2\n", overrides: map[string]string{"num.partitions": "4"}, key: "num.partitions", want: "4", wantSrc: SourceStaticBroker},
		{name: "env generic name of dotted key", env: []string{"STRATA_LOG_RETENTION_CHECK_INTERVAL_MS=1000"}, key: "log.retention.check.interval.ms", want: "1000", wantSrc: SourceStaticBroker},
		{name: "env generic topic synonym", env: []string{"STRATA_LOG_SEGMENT_BYTES=1024"}, key: "log.segment.bytes", want: "1024", wantSrc: SourceStaticBroker},
		{name: "alias auto create", env: []string{"STRATA_AUTO_CREATE_TOPICS=false"}, key: "auto.create.topics.enable", want: "false", wantSrc: SourceStaticBroker},
		{name: "alias max request size", env: []string{"STRATA_MAX_REQUEST_SIZE=2048"}, key: "socket.request.max.bytes", want: "2048", wantSrc: SourceStaticBroker},
		{name: "alias fsync", env: []string{"STRATA_FSYNC=always"}, key: "log.fsync", want: "always", wantSrc: SourceStaticBroker},
		{name: "alias beats file", file: "log.fsync=interval\n", env: []string{"STRATA_FSYNC=always"}, key: "log.fsync", want: "always", wantSrc: SourceStaticBroker},
		{name: "flag beats alias", env: []string{"STRATA_FSYNC=always"}, overrides: map[string]string{"log.fsync": "interval"}, key: "log.fsync", want: "interval", wantSrc: SourceStaticBroker},
		{name: "later env entry wins", env: []string{"STRATA_LOG_FSYNC=interval", "STRATA_FSYNC=always"}, key: "log.fsync", want: "always", wantSrc: SourceStaticBroker},
		{name: "unrelated env ignored", env: []string{"STRATA_BROKERS=x:1", "STRATA_NOPE", "PATH=/bin", "NUM_PARTITIONS=9"}, key: "num.partitions", want: "1", wantSrc: SourceDefault},
		{name: "log.dirs alias in file", file: "log.dirs=/var/strata\n", key: "data.dir", want: "/var/strata", wantSrc: SourceStaticBroker},
		{name: "log.dir alias as flag", overrides: map[string]string{"log.dir": "/d"}, key: "data.dir", want: "/d", wantSrc: SourceStaticBroker},
		{name: "value trimmed", overrides: map[string]string{"num.partitions": " 7 "}, key: "num.partitions", want: "7", wantSrc: SourceStaticBroker},
		{name: "unknown key has no value", key: "no.such.key", want: "", wantSrc: SourceDefault},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeProps(t, tc.file)
			}
			b, err := LoadBroker(path, tc.env, tc.overrides)
			if err != nil {
				t.Fatalf("LoadBroker: %v", err)
			}
			got, src := b.Get(tc.key)
			if got != tc.want || src != tc.wantSrc {
				t.Fatalf("Get(%q) = %q, %d; want %q, %d", tc.key, got, src, tc.want, tc.wantSrc)
			}
		})
	}
}

func TestLoadBrokerAccessors(t *testing.T) {
	b, err := LoadBroker("", []string{"STRATA_FSYNC=always", "STRATA_AUTO_CREATE_TOPICS=false"},
		map[string]string{"node.id": "7", "listen": "0.0.0.0:9999", "log.dirs": "/x"})
	if err != nil {
		t.Fatal(err)
	}
	if b.NodeID() != 7 || b.Listen() != "0.0.0.0:9999" || b.Advertised() != "0.0.0.0:9999" || b.DataDir() != "/x" {
		t.Fatalf("NodeID %d Listen %q Advertised %q DataDir %q", b.NodeID(), b.Listen(), b.Advertised(), b.DataDir())
	}
	if !b.FsyncAlways() || b.Bool("auto.create.topics.enable") {
		t.Fatalf("FsyncAlways %v auto.create %v", b.FsyncAlways(), b.Bool("auto.create.topics.enable"))
	}
	if b.Int64("socket.request.max.bytes") != 104857600 {
		t.Fatalf("socket.request.max.bytes = %d", b.Int64("socket.request.max.bytes"))
	}
	b2, err := LoadBroker("", nil, map[string]string{"advertised.address": "h:1"})
	if err != nil {
		t.Fatal(err)
	}
	if b2.Advertised() != "h:1" || b2.FsyncAlways() || !b2.Bool("auto.create.topics.enable") {
		t.Fatalf("Advertised %q FsyncAlways %v", b2.Advertised(), b2.FsyncAlways())
	}
	if b2.Registry() == nil {
		t.Fatal("nil registry")
	}
}

func TestLoadBrokerRetention(t *testing.T) {
	tests := []struct {
		name      string
		overrides map[string]string
		want      string // log.retention.ms; "" for not set
		wantMs    int64  // effective retention.ms of a topic
	}{
		{name: "nothing set", want: "", wantMs: 604800000},
		{name: "hours", overrides: map[string]string{"log.retention.hours": "2"}, want: "7200000", wantMs: 7200000},
		{name: "minutes beat hours", overrides: map[string]string{"log.retention.hours": "2", "log.retention.minutes": "3"}, want: "180000", wantMs: 180000},
		{name: "ms beats minutes and hours", overrides: map[string]string{"log.retention.hours": "2", "log.retention.minutes": "3", "log.retention.ms": "5"}, want: "5", wantMs: 5},
		{name: "hours -1 is unlimited", overrides: map[string]string{"log.retention.hours": "-1"}, want: "-1", wantMs: -1},
		{name: "minutes -1 is unlimited", overrides: map[string]string{"log.retention.minutes": "-1"}, want: "-1", wantMs: -1},
		{name: "hours 0", overrides: map[string]string{"log.retention.hours": "0"}, want: "0", wantMs: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := LoadBroker("", nil, tc.overrides)
			if err != nil {
				t.Fatal(err)
			}
			got, src := b.Get("log.retention.ms")
			if tc.want == "" {
				if src != SourceDefault {
					t.Fatalf("log.retention.ms = %q from %d, want the default", got, src)
				}
			} else if got != tc.want || src != SourceStaticBroker {
				t.Fatalf("log.retention.ms = %q from %d, want %q static", got, src, tc.want)
			}
			if ms := ResolveTopicConfig(Layers{Static: b}).RetentionMs; ms != tc.wantMs {
				t.Fatalf("topic RetentionMs = %d, want %d", ms, tc.wantMs)
			}
		})
	}
	// Hours from the file and minutes from the environment combine by key
	// precedence, not by layer.
	path := writeProps(t, "log.retention.hours=1\n")
	b, err := LoadBroker(path, []string{"STRATA_LOG_RETENTION_MINUTES=10"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.String("log.retention.ms"); got != "600000" {
		t.Fatalf("log.retention.ms = %q, want 600000", got)
	}
}

func TestLoadBrokerErrors(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		env       []string
		overrides map[string]string
		wantIs    error
		wantSub   []string
	}{
		{name: "file invalid value", file: "num.partitions=0\n", wantIs: ErrInvalid, wantSub: []string{"config file", "num.partitions"}},
		{name: "file unknown key", file: "bogus.key=1\n", wantIs: ErrUnknown, wantSub: []string{"config file", "bogus.key"}},
		{name: "file malformed line", file: "# ok\nnot a pair\n", wantSub: []string{"config file", "line 2"}},
		{name: "env invalid value", env: []string{"STRATA_NUM_PARTITIONS=many"}, wantIs: ErrInvalid, wantSub: []string{"environment STRATA_NUM_PARTITIONS", "num.partitions"}},
		{name: "env alias invalid", env: []string{"STRATA_FSYNC=sometimes"}, wantIs: ErrInvalid, wantSub: []string{"environment STRATA_FSYNC", "log.fsync"}},
		{name: "flag invalid", overrides: map[string]string{"node.id": "-1"}, wantIs: ErrInvalid, wantSub: []string{"flag", "node.id"}},
		{name: "flag unknown", overrides: map[string]string{"nope": "1"}, wantIs: ErrUnknown, wantSub: []string{"flag", "nope"}},
		{name: "flag bad type", overrides: map[string]string{"default.replication.factor": "70000"}, wantIs: ErrInvalid, wantSub: []string{"flag", "short"}},
		{name: "retention hours below -1", overrides: map[string]string{"log.retention.hours": "-2"}, wantIs: ErrInvalid, wantSub: []string{"log.retention.hours"}},
		{name: "topic synonym validated", overrides: map[string]string{"log.cleanup.policy": "delete,shred"}, wantIs: ErrInvalid, wantSub: []string{"log.cleanup.policy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeProps(t, tc.file)
			}
			_, err := LoadBroker(path, tc.env, tc.overrides)
			if err == nil {
				t.Fatal("LoadBroker succeeded, want an error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("error %v is not %v", err, tc.wantIs)
			}
			for _, s := range tc.wantSub {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("error %q does not mention %q", err, s)
				}
			}
			if tc.file != "" && !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file %s", err, path)
			}
		})
	}
	_, err := LoadBroker(filepath.Join(t.TempDir(), "missing.properties"), nil, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: error %v, want ErrNotExist", err)
	}
}

func TestParseProperties(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "empty", in: "", want: map[string]string{}},
		{name: "comments and blanks", in: "# c\n! c\n\n   \n  # indented\na=1\n", want: map[string]string{"a": "1"}},
		{name: "colon separator", in: "a:1\nb = 2\nc : 3\n", want: map[string]string{"a": "1", "b": "2", "c": "3"}},
		{name: "first separator wins", in: "a=b=c\nd:e=f\ng=h:i\n", want: map[string]string{"a": "b=c", "d": "e=f", "g": "h:i"}},
		{name: "empty value", in: "a=\n", want: map[string]string{"a": ""}},
		{name: "later duplicate wins", in: "a=1\na=2\n", want: map[string]string{"a": "2"}},
		{name: "continuation", in: "list=a,\\\n    b,\\\n  c\nnext=1\n", want: map[string]string{"list": "a,b,c", "next": "1"}},
		{name: "comment ending in backslash does not continue", in: "# x \\\na=1\n", want: map[string]string{"a": "1"}},
		{name: "no trailing newline", in: "a=1", want: map[string]string{"a": "1"}},
		{name: "crlf", in: "a=1\r\nb=2\r\n", want: map[string]string{"a": "1", "b": "2"}},
		{name: "continuation on the last line", in: "a=1\\", want: map[string]string{"a": "1"}},
		{name: "malformed", in: "a=1\nnovalue\n", wantErr: "line 2"},
		{name: "missing key", in: "=1\n", wantErr: "line 1"},
		{name: "missing key colon", in: "a=1\n\n: x\n", wantErr: "line 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseProperties(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for k, v := range tc.want {
				if g, ok := got[k]; !ok || g != v {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"log.retention.ms": "STRATA_LOG_RETENTION_MS",
		"node.id":          "STRATA_NODE_ID",
		"a-b.c":            "STRATA_A_B_C",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}
