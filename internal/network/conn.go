package network

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Slot states. A slot moves pending -> claimed -> completed when the handler
// answers, and then belongs to the writer. If the writer is gone, whoever
// moves it to abandoned (the writer draining, or a late completer) releases
// the response.
const (
	slotPending   int32 = iota
	slotClaimed         // a completer is filling in the answer
	slotCompleted       // answer ready for the writer
	slotAbandoned       // the connection is gone; the answer (if any) was released
)

type slotKind uint8

const (
	kindRespond slotKind = iota
	kindNoResponse
	kindClose
)

// slot is one request's place in the connection's response order. It is the
// Responder handed to the Handler.
type slot struct {
	c      *conn
	state  atomic.Int32
	kind   slotKind
	resp   *Response
	reason error
	st     reqStamp // for the Observer; zero without one
}

func (s *slot) Respond(resp *Response) { s.complete(kindRespond, resp, nil) }
func (s *slot) NoResponse()            { s.complete(kindNoResponse, nil, nil) }
func (s *slot) CloseConn(reason error) { s.complete(kindClose, nil, reason) }

func (s *slot) complete(kind slotKind, resp *Response, reason error) {
	if !s.tryComplete(kind, resp, reason) {
		if s.state.Load() != slotAbandoned {
			s.c.log.Error("request completed twice; ignoring the second answer")
		}
		release(resp)
	}
}

// tryComplete records the answer unless the slot was already completed or
// abandoned.
func (s *slot) tryComplete(kind slotKind, resp *Response, reason error) bool {
	if !s.state.CompareAndSwap(slotPending, slotClaimed) {
		return false
	}
	s.kind, s.resp, s.reason = kind, resp, reason
	if s.st.read != 0 {
		s.st.completed = s.c.srv.nanos()
	}
	s.state.Store(slotCompleted)
	if s.c.dead.Load() {
		// The writer may already have drained this slot while it was
		// claimed; whoever abandons it releases it.
		if s.state.CompareAndSwap(slotCompleted, slotAbandoned) {
			release(resp)
		}
		return true
	}
	select {
	case s.c.notify <- struct{}{}:
	default:
	}
	return true
}

func release(resp *Response) {
	if resp != nil && resp.Release != nil {
		resp.Release()
	}
}

// conn is one client connection: a reader goroutine that frames requests and
// calls the handler in order, and a writer goroutine that writes the answers
// in the same order.
// readBufSize is the per-connection read buffer. Bodies larger than what it
// holds are read straight into their own buffer.
const readBufSize = 32 << 10

type conn struct {
	srv   *Server
	limIP string // the address the connection limits counted it under
	nc    net.Conn
	br    *bufio.Reader // reads nc: small requests cost one syscall, not two
	info  ConnInfo
	log   interface {
		Error(msg string, args ...any)
		Warn(msg string, args ...any)
		Info(msg string, args ...any)
		Debug(msg string, args ...any)
	}
	ctx    context.Context
	cancel context.CancelFunc

	sem    chan struct{} // in-flight tokens: taken by the reader, returned by the writer
	queue  chan *slot    // slots in request order; closed when the reader stops
	notify chan struct{} // a slot was completed
	killed chan struct{} // closed when the connection must die now
	killMu sync.Once

	stopping atomic.Bool   // Shutdown: read no more requests
	stopCh   chan struct{} // closed with stopping set (wakes a reader waiting for memory)
	stopOnce sync.Once

	mu   sync.Mutex // orders enqueue against the writer dying
	dead atomic.Bool

	wg sync.WaitGroup

	// writer state
	w writer
}

func newConn(s *Server, nc net.Conn, id uint64, l *Listener) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	if l.UsesTLS() && l.TLS != nil {
		nc = tls.Server(nc, l.TLS)
	}
	c := &conn{
		srv:    s,
		nc:     nc,
		br:     bufio.NewReaderSize(nc, readBufSize),
		info:   ConnInfo{ID: id, RemoteAddr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr(), Listener: l},
		ctx:    ctx,
		cancel: cancel,
		sem:    make(chan struct{}, s.cfg.MaxInFlightPerConn),
		queue:  make(chan *slot, s.cfg.MaxInFlightPerConn),
		notify: make(chan struct{}, 1),
		killed: make(chan struct{}),
		stopCh: make(chan struct{}),
	}
	c.log = s.log.With("conn", id, "remote", c.info.RemoteAddr)
	c.w.init(c)
	return c
}

func (c *conn) start() {
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	go func() {
		c.wg.Wait()
		c.srv.connDone(c)
	}()
}

// stopReading makes the reader stop after the request it is reading (or at
// once if it is waiting for one). Answers to requests already read are still
// written.
func (c *conn) stopReading() {
	c.stopping.Store(true)
	c.stopOnce.Do(func() { close(c.stopCh) })
	_ = c.nc.SetReadDeadline(time.Unix(1, 0))
}

// kill closes the connection now, dropping unwritten answers.
func (c *conn) kill() {
	c.killMu.Do(func() { close(c.killed) })
	_ = c.nc.Close()
}

func (c *conn) readLoop() {
	defer c.wg.Done()
	defer close(c.queue) // tells the writer no more slots are coming
	idle := c.srv.cfg.IdleTimeout
	maxSize := c.srv.cfg.MaxRequestSize
	var hdr [4]byte
	haveToken := false
	if err := c.handshake(c.srv.cfg.HandshakeTimeout); err != nil {
		c.log.Info("closing connection", "listener", c.info.ListenerName(), "err", err)
		c.kill()
		return
	}
	for {
		if !haveToken {
			select {
			case c.sem <- struct{}{}:
				haveToken = true
			case <-c.killed:
				return
			}
		}
		if !c.waitMuted() {
			return
		}
		if idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		if c.stopping.Load() {
			return
		}
		n, err := io.ReadFull(c.br, hdr[:])
		if err != nil {
			if n == 0 && idle > 0 && !c.stopping.Load() && isTimeout(err) && len(c.sem) > 1 {
				continue // idle between requests, but answers are pending
			}
			c.readFailed(n, err)
			return
		}
		size := int32(binary.BigEndian.Uint32(hdr[:]))
		if limit := c.sizeLimit(maxSize); size < minRequestSize || size > limit {
			c.log.Warn("closing connection: bad request size", "size", size, "max", limit, "authenticated", c.info.Authenticated())
			c.cancel()
			return
		}
		if !c.srv.mem.acquire(int64(size), c.stopCh, c.killed) {
			c.readFailed(-1, errKilled)
			return
		}
		data, buf := c.srv.bufs.get(int(size))
		if _, err := io.ReadFull(c.br, data); err != nil {
			c.srv.mem.release(int64(size))
			c.srv.bufs.put(buf)
			c.readFailed(-1, err)
			return
		}
		s := &slot{c: c}
		obs := c.srv.cfg.Observer
		if obs != nil {
			s.st = reqStamp{apiKey: int16(binary.BigEndian.Uint16(data)), size: size, read: c.srv.nanos()}
		}
		if !c.enqueue(s) {
			return
		}
		if obs != nil {
			obs.RequestRead(s.st.apiKey, int(size))
		}
		haveToken = false
		ok := c.serve(s, &Request{Conn: &c.info, Data: data, pool: &c.srv.bufs, buf: buf})
		c.srv.mem.release(int64(size))
		if !ok {
			return
		}
	}
}

// readFailed logs why reading stopped. n is the number of header bytes read
// before err (-1 while reading a body).
func (c *conn) readFailed(n int, err error) {
	switch {
	case c.stopping.Load():
		return // Shutdown: answers to requests already read are still written
	case n == 0 && isTimeout(err):
		c.log.Debug("closing idle connection")
		c.cancel()
		return
	case n == 0 && errors.Is(err, io.EOF):
		c.log.Debug("client closed connection")
	case errors.Is(err, net.ErrClosed):
	default:
		c.log.Debug("read failed", "err", err)
	}
	// The client is gone: drop its pending answers and let handlers waiting
	// on its behalf stop.
	c.kill()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// enqueue appends s to the response order. It fails if the writer is gone.
func (c *conn) enqueue(s *slot) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead.Load() {
		s.state.Store(slotAbandoned)
		return false
	}
	c.queue <- s // never blocks: the reader holds one of cap(queue) tokens
	return true
}

// serve calls the handler, recovering a panic by closing the connection.
func (c *conn) serve(s *slot, req *Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("handler panicked; closing connection", "panic", p, "stack", string(debug.Stack()))
			if !s.tryComplete(kindClose, nil, fmt.Errorf("handler panic: %v", p)) {
				// Already answered: no slot left to close at; close now.
				c.kill()
			}
			ok = false
		}
	}()
	c.srv.h.Serve(c.ctx, req, s)
	if s.st.read != 0 {
		s.st.served.Store(c.srv.nanos())
	}
	return true
}

func (c *conn) writeLoop() {
	defer c.wg.Done()
	err := c.writeAll()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.log.Debug("closing connection", "reason", err)
	}
	c.die()
}

// writeAll writes answers in slot order until the reader is done and every
// slot is written, a slot asks to close the connection, writing fails or the
// connection is killed.
func (c *conn) writeAll() error {
	for {
		var s *slot
		var ok bool
		select {
		case s, ok = <-c.queue:
		default:
			if err := c.w.flush(); err != nil {
				return err
			}
			select {
			case s, ok = <-c.queue:
			case <-c.killed:
				return errKilled
			}
		}
		if !ok {
			return c.w.flush()
		}
		if err := c.waitCompleted(s); err != nil {
			return err
		}
		switch s.kind {
		case kindRespond:
			closeAfter := s.resp != nil && s.resp.CloseAfter
			err := c.w.add(s.resp)
			c.observeDone(s, err == nil)
			if err != nil {
				return err
			}
			if closeAfter {
				if err := c.w.flush(); err != nil {
					return err
				}
				c.log.Info("closing connection after its response", "listener", c.info.ListenerName())
				return nil
			}
		case kindNoResponse:
			c.observeDone(s, false)
		case kindClose:
			c.observeDone(s, false)
			if err := c.w.flush(); err != nil {
				return err
			}
			// The handler refused the request (bad header, unknown API,
			// unsupported version, undecodable body, a failed acks=0
			// produce...): say why, once, where an operator looks. A
			// handler stopped because the connection was already going
			// away has nothing to add.
			if errors.Is(s.reason, context.Canceled) {
				c.log.Debug("closing connection", "reason", s.reason)
			} else {
				c.log.Info("closing connection after a request it could not serve", "reason", s.reason)
			}
			return nil
		}
		<-c.sem
	}
}

var errKilled = errors.New("connection killed")

func (c *conn) waitCompleted(s *slot) error {
	if s.state.Load() == slotCompleted {
		return nil
	}
	// Write what is ready before waiting.
	if err := c.w.flush(); err != nil {
		c.abandon(s)
		c.observeDone(s, false)
		return err
	}
	for s.state.Load() != slotCompleted {
		select {
		case <-c.notify:
		case <-c.killed:
			// Put s back in the way of the drain.
			c.abandon(s)
			c.observeDone(s, false)
			return errKilled
		}
	}
	return nil
}

// die closes the socket, releases everything still queued and stops the
// reader.
func (c *conn) die() {
	c.mu.Lock()
	c.dead.Store(true)
	c.mu.Unlock()
	c.killMu.Do(func() { close(c.killed) })
	_ = c.nc.Close()
	c.cancel()
	c.w.releasePending()
	for {
		select {
		case s, ok := <-c.queue:
			if !ok {
				return
			}
			c.abandon(s)
			c.observeDone(s, false)
		default:
			// The queue is empty and, with dead set under mu, stays so.
			return
		}
	}
}

// abandon gives up on s, releasing its response if it has one.
func (c *conn) abandon(s *slot) {
	for {
		switch s.state.Load() {
		case slotPending:
			if s.state.CompareAndSwap(slotPending, slotAbandoned) {
				return // the completer will release
			}
		case slotClaimed:
			runtime.Gosched() // a completer is mid-way; wait for it
		case slotCompleted:
			if s.state.CompareAndSwap(slotCompleted, slotAbandoned) {
				release(s.resp)
			}
			return
		default:
			return
		}
	}
}
