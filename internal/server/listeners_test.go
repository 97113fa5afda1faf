package server

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/config"
)

func TestResolveListeners(t *testing.T) {
	named := func() (string, error) { return "node7.example", nil }
	unnamed := func() (string, error) { return "", errors.New("no name") }
	for _, tc := range []struct {
		name     string
		set      map[string]string
		hostname func() (string, error)
		want     string // specs as NAME/PROTO/bind/advhost:advport[/C], then ; inter=NAME
		err      string
	}{
		{name: "shorthand", set: map[string]string{"listen": "localhost:9092"},
			want: "PLAINTEXT/PLAINTEXT/localhost:9092/localhost:9092; inter=PLAINTEXT"},
		{name: "shorthand advertised", set: map[string]string{"listen": "127.0.0.1:9092", "advertised.address": "kafka.example:19092"},
			want: "PLAINTEXT/PLAINTEXT/127.0.0.1:9092/kafka.example:19092; inter=PLAINTEXT"},
		{name: "shorthand wildcard advertises the host name", set: map[string]string{"listen": "0.0.0.0:9092"}, hostname: named,
			want: "PLAINTEXT/PLAINTEXT/0.0.0.0:9092/node7.example:9092; inter=PLAINTEXT"},
		{name: "shorthand wildcard without a host name", set: map[string]string{"listen": "[::]:9092"}, hostname: unnamed,
			err: "set advertised.address"},
		{name: "kafka keys", set: map[string]string{
			"listeners":                      "PLAINTEXT://:9092,SASL_SSL://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094",
			"advertised.listeners":           "PLAINTEXT://a.example:9092",
			"controller.listener.names":      "CONTROLLER",
			"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
		}, hostname: unnamed,
			want: "PLAINTEXT/PLAINTEXT/:9092/a.example:9092,SASL_SSL/SASL_SSL/127.0.0.1:9093/127.0.0.1:9093,CONTROLLER/PLAINTEXT/127.0.0.1:9094/127.0.0.1:9094/C; inter=PLAINTEXT"},
		{name: "wildcard listener without advertised", set: map[string]string{"listeners": "PLAINTEXT://0.0.0.0:9092"}, hostname: unnamed,
			err: "set advertised.listeners"},
		{name: "wildcard advertised", set: map[string]string{"listeners": "PLAINTEXT://:9092", "advertised.listeners": "PLAINTEXT://0.0.0.0:9092"},
			err: "clients cannot connect to"},
		{name: "explicit inter-broker listener", set: map[string]string{
			"listeners":                      "EXTERNAL://127.0.0.1:9092,INTERNAL://127.0.0.1:9093",
			"listener.security.protocol.map": "EXTERNAL:SASL_SSL,INTERNAL:SSL",
			"inter.broker.listener.name":     "internal",
		}, want: "EXTERNAL/SASL_SSL/127.0.0.1:9092/127.0.0.1:9092,INTERNAL/SSL/127.0.0.1:9093/127.0.0.1:9093; inter=INTERNAL"},
		{name: "unmapped listener", set: map[string]string{"listeners": "CLIENT://127.0.0.1:9092"},
			err: "add CLIENT:<PROTOCOL> to listener.security.protocol.map"},
		{name: "inter-broker listener missing", set: map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092", "inter.broker.listener.name": "SSL"},
			err: "inter.broker.listener.name SSL is not in listeners"},
		{name: "advertised listener missing", set: map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092", "advertised.listeners": "SSL://x:1"},
			err: "not in listeners"},
		{name: "both shorthand and listeners", set: map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092", "listen": "127.0.0.1:9092"},
			err: "leave listen and advertised.address"},
		{name: "only controller listeners", set: map[string]string{"listeners": "CONTROLLER://127.0.0.1:9094", "controller.listener.names": "CONTROLLER"},
			err: "no listener for clients"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.LoadBroker("", nil, tc.set)
			if err != nil {
				t.Fatal(err)
			}
			h := tc.hostname
			if h == nil {
				h = unnamed
			}
			r, err := resolveListeners(cfg, h)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, s := range r.Specs {
				p := s.Name + "/" + s.Protocol + "/" + s.Bind + "/" + net.JoinHostPort(s.AdvHost, itoa(s.AdvPort))
				if s.Controller {
					p += "/C"
				}
				parts = append(parts, p)
			}
			if got := strings.Join(parts, ",") + "; inter=" + r.InterBroker; got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// TestMetadataAnswersWithTheClientsListener: a broker with two listeners
// tells each client the endpoints of the listener it connected to, in
// Metadata, DescribeCluster and FindCoordinator.
func TestMetadataAnswersWithTheClientsListener(t *testing.T) {
	cfg, err := config.LoadBroker("", nil, map[string]string{
		"data.dir":                       t.TempDir(),
		"listeners":                      "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
		"advertised.listeners":           "EXTERNAL://ext.example:19092",
		"listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
		"inter.broker.listener.name":     "INTERNAL",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	internal, _ := srv.ListenerAddr("INTERNAL")
	external, _ := srv.ListenerAddr("EXTERNAL")
	if srv.Addr().String() != internal.String() {
		t.Fatalf("Addr() = %s, want the inter-broker listener %s", srv.Addr(), internal)
	}
	_, ip, _ := net.SplitHostPort(internal.String())
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{{internal, "127.0.0.1:" + ip}, {external, "ext.example:19092"}} {
		c := dialRaw(t, tc.addr.String())
		meta := kmsg.NewPtrMetadataRequest()
		meta.SetVersion(12)
		mr := c.roundTrip(meta).(*kmsg.MetadataResponse)
		if len(mr.Brokers) != 1 || net.JoinHostPort(mr.Brokers[0].Host, itoa(mr.Brokers[0].Port)) != tc.want {
			t.Fatalf("Metadata on %s: brokers %+v, want %s", tc.addr, mr.Brokers, tc.want)
		}
		dc := kmsg.NewPtrDescribeClusterRequest()
		dc.SetVersion(1)
		dr := c.roundTrip(dc).(*kmsg.DescribeClusterResponse)
		if len(dr.Brokers) != 1 || net.JoinHostPort(dr.Brokers[0].Host, itoa(dr.Brokers[0].Port)) != tc.want {
			t.Fatalf("DescribeCluster on %s: brokers %+v, want %s", tc.addr, dr.Brokers, tc.want)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			fc := kmsg.NewPtrFindCoordinatorRequest()
			fc.SetVersion(3)
			fc.CoordinatorKey = "g"
			fr := c.roundTrip(fc).(*kmsg.FindCoordinatorResponse)
			if fr.ErrorCode == 0 {
				if got := net.JoinHostPort(fr.Host, itoa(fr.Port)); got != tc.want {
					t.Fatalf("FindCoordinator on %s: %s, want %s", tc.addr, got, tc.want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("FindCoordinator on %s: error %d after 30s", tc.addr, fr.ErrorCode)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, conn: c, r: bufio.NewReader(c)}
}
