package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultMaxRequestSize     = 100 << 20 // Kafka's socket.request.max.bytes
	DefaultMaxInFlightPerConn = 100
	// DefaultIdleTimeout is Kafka's connections.max.idle.ms. It is only a
	// suggested value: a zero Config.IdleTimeout means no idle timeout.
	DefaultIdleTimeout = 10 * time.Minute
)

// minRequestSize is the smallest possible request: api key (int16), api
// version (int16) and correlation id (int32).
const minRequestSize = 8

// Config configures a Server.
type Config struct {
	// MaxRequestSize is the largest request (after the size prefix) that is
	// accepted; a larger claimed size closes the connection before anything
	// is allocated. Zero means DefaultMaxRequestSize.
	MaxRequestSize int32
	// MaxInFlightPerConn bounds the requests read from one connection whose
	// responses have not been handed to the writer yet. When reached, the
	// reader stops reading (TCP backpressure). Zero means
	// DefaultMaxInFlightPerConn.
	MaxInFlightPerConn int
	// IdleTimeout closes a connection that has sent no request and has no
	// request in flight for this long. Zero means no timeout.
	IdleTimeout time.Duration
	// SASLMaxReceiveSize is the largest request a connection on a SASL
	// listener may send before it has authenticated (Kafka's
	// sasl.server.max.receive.size). Zero means DefaultSASLMaxReceiveSize.
	SASLMaxReceiveSize int32
	// QueuedMaxRequestBytes bounds the bytes of requests being read and
	// served across all connections (Kafka's queued.max.request.bytes; see
	// memory.go). Zero or negative means unbounded, Kafka's default.
	QueuedMaxRequestBytes int64
	// HandshakeTimeout bounds a TLS handshake. Zero means 10 seconds.
	HandshakeTimeout time.Duration
	// Logger receives connection-level events. Nil discards them.
	Logger *slog.Logger
	// Observer, if set, sees connections and request timings (metrics).
	Observer Observer
	// Limits are the connection limits (connlimit.go); zero: none.
	Limits ConnLimits
	// Now is the clock of the connection-creation rate; nil: time.Now.
	Now func() time.Time
}

// Server accepts Kafka connections and feeds their requests to a Handler.
type Server struct {
	cfg     Config
	h       Handler
	log     *slog.Logger
	bufPool sync.Pool // *[]byte, for the pread+write fallback
	bufs    bufPool   // request bodies (see bufpool.go)
	mem     *memPool  // queued.max.request.bytes (see memory.go)
	lim     *connLimiter
	closing chan struct{} // closed by Shutdown

	nextID atomic.Uint64
	epoch  time.Time // origin of the observer's monotonic stamps

	// Counters of file-region bytes written, by path (for tests and
	// benchmarks; candidates for metrics).
	sendfileBytes atomic.Int64
	copiedBytes   atomic.Int64
	noSendfile    bool // tests and benchmarks: force the fallback path

	mu        sync.Mutex
	shutting  bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	connWG    sync.WaitGroup // one per live connection
}

// New returns a Server that passes requests to h.
func New(cfg Config, h Handler) *Server {
	if cfg.MaxRequestSize <= 0 {
		cfg.MaxRequestSize = DefaultMaxRequestSize
	}
	if cfg.MaxInFlightPerConn <= 0 {
		cfg.MaxInFlightPerConn = DefaultMaxInFlightPerConn
	}
	if cfg.SASLMaxReceiveSize <= 0 {
		cfg.SASLMaxReceiveSize = DefaultSASLMaxReceiveSize
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		lim:       newConnLimiter(cfg.Limits, now),
		closing:   make(chan struct{}),
		cfg:       cfg,
		h:         h,
		log:       log.With("component", "network"),
		mem:       newMemPool(cfg.QueuedMaxRequestBytes),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		epoch:     time.Now(),
	}
	s.bufPool.New = func() any {
		b := make([]byte, copyBufSize)
		return &b
	}
	return s
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("network: server closed")

// Serve accepts connections on ln until ln is closed or Shutdown is called.
// It returns ErrServerClosed after Shutdown, otherwise the accept error.
// Serve takes ownership of ln and closes it on return.
func (s *Server) Serve(ln net.Listener) error {
	l := plaintextListener
	return s.serve(ln, &l)
}

func (s *Server) serve(ln net.Listener, l *Listener) error {
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()

	var backoff time.Duration
	for {
		if !l.Unthrottled {
			s.lim.waitAccept(s.closing)
		}
		nc, err := ln.Accept()
		if err != nil {
			if s.isShutting() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAcceptError(err) {
				// Out of file descriptors and the like: back off and retry,
				// as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "addr", ln.Addr(), "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("network: accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		ok, ip, limit := s.lim.admit(nc.RemoteAddr())
		if !ok {
			if s.lim.shouldLog(ip) {
				s.log.Info("rejected connection: the address already holds its maximum (max.connections.per.ip); logged once a minute per address",
					"addr", ip, "max", limit, "listener", l.Name)
			}
			_ = nc.Close()
			continue
		}
		s.startConn(nc, l, ip)
	}
}

// Shutdown stops accepting connections and reading requests, waits until
// every request already read has been answered and its response written,
// then closes the connections. If ctx expires first, the remaining
// connections are closed at once and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.shutting {
		close(s.closing)
	}
	s.shutting = true
	for ln := range s.listeners {
		_ = ln.Close()
	}
	for c := range s.conns {
		c.stopReading()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.kill()
	}
	s.mu.Unlock()
	return fmt.Errorf("network: shutdown: %w", ctx.Err())
}

// NumConns returns the number of open connections.
func (s *Server) NumConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) isShutting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutting
}

func (s *Server) startConn(nc net.Conn, l *Listener, ip string) {
	c := newConn(s, nc, s.nextID.Add(1), l)
	c.limIP = ip
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		s.lim.release(ip)
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()
	if s.cfg.Observer != nil {
		s.cfg.Observer.ConnOpened()
	}
	c.start()
}

func (s *Server) connDone(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.lim.release(c.limIP)
	if s.cfg.Observer != nil {
		s.cfg.Observer.ConnClosed()
	}
	s.connWG.Done()
}

// isTemporaryAcceptError reports accept errors worth retrying (EMFILE,
// ENFILE, ECONNABORTED and friends), which the net package reports with a
// Temporary method.
func isTemporaryAcceptError(err error) bool {
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// QueuedBytes reports the request memory budget: bytes available (negative
// when overdrawn) and readers waiting for some (see memory.go).
func (s *Server) QueuedBytes() (available int64, waiting int) {
	return s.mem.Available(), s.mem.Waiting()
}
