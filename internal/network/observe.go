package network

import (
	"sync/atomic"
	"time"
)

// Observer sees connections and the life of every request, for metrics.
// Its methods are called on the connections' reader and writer goroutines
// and must be cheap and must not block (no allocation, no global lock).
//
// A request's life on a connection has these stages:
//
//   - local: from the request being read whole to the handler's Serve
//     returning (the decoding and the synchronous work on the reader
//     goroutine);
//   - remote: from Serve returning to the handler completing the request
//     (acks=all, long-poll fetches, fsync, group joins; zero for requests
//     answered inside Serve);
//   - send: from completion to the answer being handed to the socket
//     (waiting behind earlier answers of the connection, then the write).
//
// There is no request queue between reading and handling (the reader
// calls the handler itself), so Kafka's queue time has no counterpart.
type Observer interface {
	ConnOpened()
	ConnClosed()
	// RequestRead is called when a request of size bytes has been read.
	RequestRead(apiKey int16, size int)
	// RequestDone is called once per request read, when its answer is
	// written, dropped or the connection closes instead.
	RequestDone(apiKey int16, size int, t RequestTimes)
}

// TLSObserver is an Observer that also hears of TLS handshakes: every
// handshake on a TLS listener that ended, with its error (nil on
// success), except a client that closed the connection before finishing
// it (io.EOF: a port probe, a load balancer's health check). sasl says
// whether a SASL exchange follows (a SASL_SSL listener).
type TLSObserver interface {
	TLSHandshake(listener string, sasl bool, err error)
}

// RequestTimes are a request's stage durations (see Observer). Answered is
// false when no answer was written (acks=0, a closed connection).
type RequestTimes struct {
	Local, Remote, Send time.Duration
	Answered            bool
}

// Total is the time from the request being read to its answer being sent.
func (t RequestTimes) Total() time.Duration { return t.Local + t.Remote + t.Send }

// reqStamp is what a slot records for the observer: times are monotonic
// nanoseconds since the server's epoch.
type reqStamp struct {
	apiKey int16
	size   int32
	read   int64
	// served is stored by the reader after Serve returns, which may be
	// after the writer took the slot: atomic, 0 until then.
	served    atomic.Int64
	completed int64 // set before the slot is published as completed
}

func (s *Server) nanos() int64 { return int64(time.Since(s.epoch)) }

// observeDone reports a finished slot to the observer.
func (c *conn) observeDone(s *slot, answered bool) {
	o := c.srv.cfg.Observer
	if o == nil || s.st.read == 0 {
		return
	}
	now := c.srv.nanos()
	served := s.st.served.Load()
	completed := s.st.completed
	if completed == 0 {
		completed = now
	}
	if served == 0 || served > completed {
		served = completed
	}
	o.RequestDone(s.st.apiKey, int(s.st.size), RequestTimes{
		Local:    time.Duration(served - s.st.read),
		Remote:   time.Duration(completed - served),
		Send:     time.Duration(now - completed),
		Answered: answered,
	})
}
