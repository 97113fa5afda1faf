package config

import (
	"errors"
	"strings"
	"testing"
)

// Every problem is reported at once, each with its origin, and near misses
// get suggestions.
func TestLoadBrokerReportsEveryProblem(t *testing.T) {
	p := writeProps(t, "num.partition=3\nlog.retention.hour=24\nauto.create.topic.enable=false\nnum.partitions=0\n")
	_, err := LoadBroker(p, []string{"STRATA_LOG_FSINC=always", "STRATA_BROKERS=x:1"}, map[string]string{"node.idd": "2"})
	if err == nil {
		t.Fatal("loaded a file with three misspelt keys")
	}
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 5 {
		t.Fatalf("want 5 problems, got %v", err)
	}
	if !errors.Is(err, ErrUnknown) || !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is does not see the problems: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`"num.partition" (did you mean num.partitions?)`,
		`"log.retention.hour" (did you mean log.retention.hours?)`,
		`"auto.create.topic.enable" (did you mean auto.create.topics.enable?)`,
		`num.partitions="0": must be at least 1`,
		`flag: unknown config: "node.idd" (did you mean node.id?)`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "STRATA_") {
		t.Errorf("environment variables refused: %s", msg)
	}
	// Misspelt variables are reported, not refused: the environment is
	// shared with other tools.
	b, err := LoadBroker("", []string{"STRATA_LOG_FSINC=always", "STRATA_BROKERS=x:1", "STRATA_BIN=/x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(b.EnvWarnings(), "|")
	if !strings.Contains(w, "environment STRATA_LOG_FSINC: no broker setting has this name (did you mean STRATA_LOG_FSYNC?)") || strings.Contains(w, "STRATA_BROKERS") {
		t.Errorf("env warnings %q", w)
	}
}

// Kafka keys with no meaning here are accepted and listed once; keys whose
// setting Strata cannot honour are refused unless set to "off".
func TestLoadBrokerKafkaKeys(t *testing.T) {
	b, err := LoadBroker(writeProps(t, "num.network.threads=3\nnum.io.threads=8\nsocket.send.buffer.bytes=102400\nlog.dirs=/var/lib/strata\nremote.log.storage.system.enable=false\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.DataDir(); got != "/var/lib/strata" {
		t.Errorf("log.dirs gave data.dir %q", got)
	}
	w := strings.Join(b.Warnings(), "|")
	for _, k := range []string{"num.network.threads (", "num.io.threads (", "socket.send.buffer.bytes ("} {
		if !strings.Contains(w, k) {
			t.Errorf("warnings %q lack %s", w, k)
		}
	}
	if strings.Contains(w, "remote.log") {
		t.Errorf("a refused key set to off is warned about: %q", w)
	}
	for body, want := range map[string]string{
		"zookeeper.connect=localhost:2181\n":                                 "Strata has no ZooKeeper",
		"authorizer.class.name=com.example.MyAuthorizer\n":                   "must be one of",
		"super.users=alice\n":                                                "not of the form",
		"remote.log.storage.system.enable=true\n":                            "tiered storage is not supported",
		"log.dirs=/a,/b\n":                                                   "several log directories are not supported",
		"controller.quorum.bootstrap.servers=h:9093,g:9093\n":                "controller.quorum.voters",
		"process.roles=broker\ncontroller.quorum.bootstrap.servers=h:9093\n": "controller.quorum.voters",
	} {
		_, err := LoadBroker(writeProps(t, body), nil, nil)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want ErrInvalid with %q", strings.TrimSpace(body), err, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"node.id", "node.idd", 1}, {"abc", "abc", 0}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}

// Kafka 4's stock server.properties finds its quorum through
// controller.quorum.bootstrap.servers, one entry, this node's own
// controller listener (formatted with --standalone): it is read as a
// quorum of this node alone; explicit voters win.
func TestLoadBrokerBootstrapServers(t *testing.T) {
	stock := "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.bootstrap.servers=localhost:9093\n" +
		"listeners=PLAINTEXT://:9092,CONTROLLER://:9093\ninter.broker.listener.name=PLAINTEXT\n" +
		"advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\ncontroller.listener.names=CONTROLLER\n" +
		"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n" +
		"log.dirs=/tmp/kraft-combined-logs\n"
	b, err := LoadBroker(writeProps(t, stock), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.String("controller.quorum.voters"); got != "1@localhost:9093" {
		t.Fatalf("voters %q, want 1@localhost:9093", got)
	}
	b, err = LoadBroker(writeProps(t, "node.id=7\ncontroller.quorum.bootstrap.servers=c:9093\n"), nil, nil)
	if err != nil || b.String("controller.quorum.voters") != "7@c:9093" {
		t.Fatalf("node 7: %v, voters %q", err, b.String("controller.quorum.voters"))
	}
	b, err = LoadBroker(writeProps(t, "controller.quorum.bootstrap.servers=x:1,y:2\ncontroller.quorum.voters=1@a:9093,2@b:9093\n"), nil, nil)
	if err != nil || b.String("controller.quorum.voters") != "1@a:9093,2@b:9093" {
		t.Fatalf("explicit voters: %v, voters %q", err, b.String("controller.quorum.voters"))
	}
	_, err = LoadBroker(writeProps(t, "controller.quorum.bootstrap.servers=nohost\n"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "controller.quorum.bootstrap.servers") {
		t.Fatalf("a malformed entry: %v", err)
	}
}
