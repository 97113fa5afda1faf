package network

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// Chunk is one piece of a response: either Bytes, or the region
// [Offset, Offset+Len) of File, which is sent with sendfile.
type Chunk struct {
	Bytes  []byte
	File   *os.File
	Offset int64
	Len    int64
}

// Size is the number of bytes the chunk puts on the wire.
func (c Chunk) Size() int64 {
	if c.File != nil {
		return c.Len
	}
	return int64(len(c.Bytes))
}

// Response is what a handler answers with. The network layer writes the
// 4-byte size prefix (the sum of the chunk sizes) and then the chunks in
// order. Release, if set, is called once the response has been written or
// dropped (it releases file references held for sendfile).
type Response struct {
	Chunks  []Chunk
	Release func()
	// CloseAfter closes the connection once the response is written (a
	// failed authentication: the client is told why, then dropped).
	CloseAfter bool
}

// Request is one framed request. Data is the whole request after the size
// prefix: header and body. Data is owned by the handler from the moment Serve
// is called. A handler that knows it (and everything it decoded) holds no
// reference into Data any more may call Recycle, which lets the network
// layer reuse the buffer for a later request; a handler that does not call
// it leaves the buffer to the garbage collector.
type Request struct {
	Conn *ConnInfo
	Data []byte

	pool *bufPool
	buf  *[]byte
}

// Recycle gives Data back for reuse. After it, neither Data nor anything
// aliasing it may be touched. Calling it more than once is harmless.
func (r *Request) Recycle() {
	if r.pool != nil && r.buf != nil {
		r.pool.put(r.buf)
	}
	r.buf, r.Data = nil, nil
}

// ConnInfo describes the client connection a request came on.
type ConnInfo struct {
	ID         uint64
	RemoteAddr net.Addr
	LocalAddr  net.Addr
	// Listener is the listener the connection came on; nil means a
	// PLAINTEXT one (see auth.go).
	Listener *Listener

	auth connAuth
	mute atomic.Pointer[time.Time] // end of the throttle (mute.go)
}

// Responder completes one request. Exactly one of its methods must be called,
// exactly once, from any goroutine, at any time after Serve was called.
// Responses are written in request order regardless of completion order.
type Responder interface {
	// Respond queues resp to be written once all earlier requests on the
	// connection have been answered.
	Respond(resp *Response)
	// NoResponse completes the request without writing anything (acks=0
	// produce).
	NoResponse()
	// CloseConn completes the request by closing the connection after all
	// earlier responses have been written (Kafka's answer to an unsupported
	// request version or an undecodable request).
	CloseConn(reason error)
}

// Handler serves requests. Serve is called on the connection's reader
// goroutine, in request order, so side effects that must be ordered (appends
// from one producer) happen in order when Serve performs them before
// returning. Anything that waits (long polls, acks=all, fsync) must complete
// through the Responder from another goroutine instead of blocking Serve.
type Handler interface {
	Serve(ctx context.Context, req *Request, r Responder)
}
