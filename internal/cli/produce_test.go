package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A line too large for the topic fails alone and is reported; the lines
// around it are delivered (kgo must not batch them with it into one batch
// the broker rejects whole).
func TestProduceOversizedLine(t *testing.T) {
	if !testBrokerValidatesConfigs {
		t.Skip("kfake does not enforce max.message.bytes")
	}
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "small", "-p", "1", "-c", "max.message.bytes=1000")
	big := strings.Repeat("x", 2000)
	r := run(t, addr, "short\n"+big+"\nafter\n", "produce", "small")
	if r.err == nil {
		t.Fatalf("produce with an oversized line succeeded:\n%s", r.stdout)
	}
	if want := "produced 3 records to small: 2 acknowledged, 1 failed\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if msg := r.err.Error(); !strings.Contains(msg, "1 of 3 records failed: first: line 2: ") || !strings.Contains(msg, "MESSAGE_TOO_LARGE") {
		t.Errorf("error = %q, want line 2 failing with MESSAGE_TOO_LARGE", msg)
	}
	if msg := r.err.Error(); !strings.Contains(msg, "a record of 2000 bytes is larger than the topic's max.message.bytes (1000") ||
		!strings.Contains(msg, "strata topic alter-config small -c max.message.bytes=N") {
		t.Errorf("error = %q, want the size, the limit and how to raise it", msg)
	}
	if !strings.Contains(r.stderr, "strata: line 2: ") {
		t.Errorf("stderr does not name the failed line: %q", r.stderr)
	}
	if got := mustRun(t, addr, "", "consume", "small"); got != "short\nafter\n" {
		t.Errorf("consume = %q, want short and after", got)
	}
}

// Producing to a topic that does not exist says how to create it.
func TestProduceUnknownTopic(t *testing.T) {
	addr := startBroker(t)
	r := run(t, addr, "x\n", "produce", "nosuch")
	if r.err == nil || !strings.Contains(r.err.Error(), `topic "nosuch" does not exist; create it first: strata topic create nosuch`) {
		t.Fatalf("error = %v, want the topic named and the command to create it", r.err)
	}
}

// An interrupt stops reading; what was read is delivered and reported, and
// the exit is non-zero because the input was not read to its end.
func TestProduceInterrupt(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "in", "-p", "1")
	pr, pw := io.Pipe()
	defer pw.Close()
	var out, errOut syncBuffer
	env := &Env{Brokers: []string{addr}, Stdin: pr, Stdout: &out, Stderr: &errOut, Timeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Produce(ctx, env, ProduceOptions{Topic: "in", Partition: -1, Acks: "all", Idempotent: true})
	}()
	if _, err := io.WriteString(pw, "a\nb\nc\n"); err != nil {
		t.Fatal(err)
	}
	waitEndOffset(t, addr, "in", 0, 3)
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "interrupted after 3 lines (all 3 acknowledged)") {
			t.Errorf("error = %v, want an interruption after 3 lines", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("produce did not return after the interrupt")
	}
	if want := "produced 3 records to in: 3 acknowledged, 0 failed\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
}

// waitEndOffset waits until topic/partition has an end offset of at least
// want.
func waitEndOffset(t *testing.T, addr, topic string, partition int32, want int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ends, err := adm.ListEndOffsets(context.Background(), topic)
		if err == nil {
			if o, ok := ends.Lookup(topic, partition); ok && o.Offset >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("end offset of %s/%d did not reach %d: %v", topic, partition, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProduceFlags(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "f", "-p", "2")
	// -p is the short form of --partition, as in kcat.
	mustRun(t, addr, "x\n", "produce", "f", "-p", "1", "--acks", "1")
	if got := mustRun(t, addr, "", "consume", "f", "-f", `%p:%s\n`); got != "1:x\n" {
		t.Errorf("consume = %q, want 1:x", got)
	}
	// An explicit --idempotent is not silently dropped.
	r := run(t, addr, "y\n", "produce", "f", "--acks", "1", "--idempotent")
	if r.err == nil || !strings.Contains(r.err.Error(), "--idempotent needs --acks all") {
		t.Errorf("--acks 1 --idempotent: err = %v", r.err)
	}
	mustRun(t, addr, "z\n", "produce", "f", "--acks", "all", "--idempotent=false", "--compression", "gzip")
	// A file instead of stdin; the last line needs no newline.
	path := t.TempDir() + "/in.txt"
	if err := os.WriteFile(path, []byte("k:v\nlast"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, addr, "", "produce", "f", "--file", path, "-k", ":", "-p", "0"); out != "produced 2 records to f: 2 acknowledged, 0 failed\n" {
		t.Errorf("produce --file: %q", out)
	}
	// z went to either partition.
	if got := mustRun(t, addr, "", "consume", "f", "-p", "0", "-f", `%k|%s\n`); !strings.HasSuffix(got, "k|v\n|last\n") {
		t.Errorf("partition 0 = %q", got)
	}
}

// consume --json keeps every header, in order, even with repeated keys.
func TestConsumeJSONHeaders(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "h", "-p", "1")
	mustRun(t, addr, "v\n", "produce", "h", "-H", "a=1", "-H", "a=2", "-H", "b=")
	var rec struct {
		Headers []struct{ Key, Value string }
	}
	out := mustRun(t, addr, "", "consume", "h", "--json")
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got, _ := json.Marshal(rec.Headers)
	if want := `[{"Key":"a","Value":"1"},{"Key":"a","Value":"2"},{"Key":"b","Value":""}]`; string(got) != want {
		t.Errorf("headers = %s, want %s", got, want)
	}
	if got := mustRun(t, addr, "", "consume", "h", "-f", `%h|%s\n`); got != "a=1,a=2,b=|v\n" {
		t.Errorf("-f %%h = %q", got)
	}
}

// --follow from the end prints only records produced after it started;
// --read-committed reads what a plain producer wrote (no transactions).
func TestConsumeFollowReadCommitted(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "fol", "-p", "2")
	mustRun(t, addr, "old\n", "produce", "fol", "-p", "0")
	var out, errOut syncBuffer
	// Verbose: the client's request log on stderr says when the consumer
	// fetches, which is after it resolved "end".
	env := &Env{Brokers: []string{addr}, Stdout: &out, Stderr: &errOut, Timeout: 10 * time.Second, Verbose: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Consume(ctx, env, ConsumeOptions{Topic: "fol", Offset: "end", Follow: true, ReadCommitted: true, Format: `%p:%s\n`})
	}()
	waitFor(t, "the follower to fetch", func() bool { return strings.Contains(errOut.String(), "wrote Fetch v") })
	mustRun(t, addr, "new0\n", "produce", "fol", "-p", "0")
	mustRun(t, addr, "new1\n", "produce", "fol", "-p", "1")
	waitFor(t, "followed records", func() bool { return strings.Count(out.String(), "\n") == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("consume --follow: %v", err)
	}
	if got := out.String(); got != "0:new0\n1:new1\n" && got != "1:new1\n0:new0\n" {
		t.Errorf("followed %q, want new0 and new1 only", got)
	}
	if got := mustRun(t, addr, "", "consume", "fol", "-p", "0", "--read-committed"); got != "old\nnew0\n" {
		t.Errorf("--read-committed = %q", got)
	}
}

// alter-config --delete returns a config to its default.
func TestAlterConfigDelete(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "ac", "-c", "retention.ms=1000", "-c", "segment.ms=60000")
	mustRun(t, addr, "", "topic", "alter-config", "ac", "--delete", "retention.ms")
	var desc []topicJSON
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "topic", "describe", "ac", "--json")), &desc); err != nil {
		t.Fatal(err)
	}
	for _, c := range desc[0].Configs {
		switch c.Key {
		case "retention.ms":
			if !c.Default || c.Value == "1000" {
				t.Errorf("retention.ms after --delete: %+v", c)
			}
		case "segment.ms":
			if c.Default || c.Value != "60000" {
				t.Errorf("segment.ms: %+v", c)
			}
		}
	}
	r := run(t, addr, "", "topic", "alter-config", "ac")
	if r.err == nil || !strings.Contains(r.err.Error(), "nothing to do") {
		t.Errorf("alter-config without changes: %v", r.err)
	}
}
