package broker

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/network"
)

func serveOn(t *testing.T, b *Broker, conn *network.ConnInfo, req kmsg.Request) *recorder {
	t.Helper()
	rec := newRecorder()
	b.Serve(context.Background(), &network.Request{Conn: conn, Data: bytes.Clone(frameFor(req, 3))}, rec)
	select {
	case <-rec.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never completed", kmsg.NameForKey(req.Key()))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec
}

func TestSASLListenerServesOnlyAuthenticationBeforeLogin(t *testing.T) {
	b := newTestBroker(t)
	now := time.Unix(1000, 0)
	b.opts.Now = func() time.Time { return now }
	l := &network.Listener{Name: "CLIENT", Protocol: network.ProtocolSASLPlaintext}
	conn := &network.ConnInfo{ID: 9, RemoteAddr: &net.TCPAddr{}, LocalAddr: &net.TCPAddr{}, Listener: l}

	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12)
	if rec := serveOn(t, b, conn, meta); rec.closed == nil {
		t.Fatal("Metadata before authentication was served")
	}
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	av.ClientSoftwareName, av.ClientSoftwareVersion = "t", "1"
	if rec := serveOn(t, b, conn, av); rec.closed != nil || rec.resp == nil {
		t.Fatalf("ApiVersions before authentication: closed %v", rec.closed)
	}

	conn.SetSession(network.Session{Principal: network.Principal{Type: "User", Name: "alice"}, Mechanism: "PLAIN", Expires: now.Add(time.Minute)})
	if rec := serveOn(t, b, conn, meta); rec.closed != nil || rec.resp == nil {
		t.Fatalf("Metadata after authentication: closed %v", rec.closed)
	}
	now = now.Add(time.Minute)
	if rec := serveOn(t, b, conn, meta); rec.closed == nil {
		t.Fatal("Metadata after the session expired was served")
	}

	// A PLAINTEXT listener needs no authentication.
	plain := &network.ConnInfo{ID: 10, RemoteAddr: &net.TCPAddr{}, LocalAddr: &net.TCPAddr{}, Listener: &network.Listener{Name: "PLAINTEXT", Protocol: network.ProtocolPlaintext}}
	plain.SetSession(network.Session{Principal: network.Anonymous})
	if rec := serveOn(t, b, plain, meta); rec.closed != nil {
		t.Fatalf("Metadata on PLAINTEXT: closed %v", rec.closed)
	}
}
