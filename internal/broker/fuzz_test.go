package broker

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/fuzzbudget"
	"github.com/stratalog/strata/internal/network"
)

// FuzzRequest feeds arbitrary request frames to the broker. Every input must
// end in a response, no response (acks=0) or a closed connection, never a
// panic (which Serve's last-resort recover turns into a close that this test
// treats as a failure) or a hang.
func FuzzRequest(f *testing.F) {
	for key, h := range (&Broker{}).register() {
		for v := h.min; v <= h.max; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			f.Add(frameFor(req, 7))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff})
	b := newTestBroker(f)
	conn := &network.ConnInfo{ID: 1, RemoteAddr: &net.TCPAddr{}, LocalAddr: &net.TCPAddr{}}
	handlers := (&Broker{}).register()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Decoding alone is held to the per-input CPU budget of
		// decode_test.go (serving may wait on other goroutines); then
		// the request is served.
		fuzzbudget.Check(t, decodeBudget(len(data)), func() { decodeFrame(handlers, data) })
		rec := newRecorder()
		b.Serve(context.Background(), &network.Request{Conn: conn, Data: append([]byte(nil), data...)}, rec)
		select {
		case <-rec.done:
		case <-time.After(10 * time.Second):
			// A fetch may legitimately long-poll for as long as its
			// max_wait says; anything else must have completed.
			if len(data) >= 2 && data[0] == 0 && data[1] == 1 {
				return
			}
			t.Fatalf("request %x never completed", data)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if isPanic(rec.closed) {
			t.Fatalf("handler panicked on %x", data)
		}
		if rec.finished != 1 {
			t.Fatalf("request completed %d times", rec.finished)
		}
		if rec.resp != nil && rec.resp.Release != nil {
			rec.resp.Release()
		}
	})
}
