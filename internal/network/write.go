package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	copyBufSize = 64 << 10 // pread+write fallback buffer
	// maxSendfile caps one sendfile call; Linux transfers at most
	// 0x7ffff000 bytes per call anyway.
	maxSendfile = 1 << 30
	// maxPendingBufs flushes coalesced byte chunks before the iovec list
	// grows without bound.
	maxPendingBufs = 512
)

// writer writes responses to one connection. Byte chunks of consecutive
// ready responses are coalesced and written with writev; file regions go
// with sendfile when the connection is a TCP socket.
type writer struct {
	c        *conn
	raw      syscall.RawConn // nil: no sendfile
	hdrs     []byte          // size prefixes of pending responses
	bufs     [][]byte        // pending byte chunks
	releases []*Response     // responses whose bytes are pending or written
}

func (w *writer) init(c *conn) {
	w.c = c
	if tc, ok := c.nc.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
}

// add writes resp (or queues its bytes for the next flush). resp is released
// after its bytes are on the wire, or by releasePending if writing fails.
func (w *writer) add(resp *Response) error {
	if resp == nil {
		return errors.New("nil response")
	}
	w.releases = append(w.releases, resp)
	var total int64
	for _, ch := range resp.Chunks {
		if ch.File != nil && (ch.Offset < 0 || ch.Len < 0) {
			return fmt.Errorf("bad file chunk: offset %d, len %d", ch.Offset, ch.Len)
		}
		total += ch.Size()
	}
	if total > math.MaxInt32 {
		return fmt.Errorf("response of %d bytes exceeds the int32 size prefix", total)
	}
	start := len(w.hdrs)
	w.hdrs = binary.BigEndian.AppendUint32(w.hdrs, uint32(total))
	w.bufs = append(w.bufs, w.hdrs[start:len(w.hdrs):len(w.hdrs)])
	for _, ch := range resp.Chunks {
		if ch.File == nil {
			if len(ch.Bytes) > 0 {
				w.bufs = append(w.bufs, ch.Bytes)
			}
			continue
		}
		if ch.Len == 0 {
			continue
		}
		if err := w.flushBytes(); err != nil {
			return err
		}
		if err := w.writeFile(ch.File, ch.Offset, ch.Len); err != nil {
			return err
		}
	}
	if len(w.bufs) >= maxPendingBufs {
		return w.flush()
	}
	return nil
}

// flush writes pending bytes and releases the responses written.
func (w *writer) flush() error {
	if err := w.flushBytes(); err != nil {
		return err
	}
	for i, r := range w.releases {
		release(r)
		w.releases[i] = nil
	}
	w.releases = w.releases[:0]
	return nil
}

func (w *writer) flushBytes() error {
	if len(w.bufs) == 0 {
		return nil
	}
	nb := net.Buffers(w.bufs)
	_, err := nb.WriteTo(w.c.nc)
	clear(w.bufs)
	w.bufs = w.bufs[:0]
	w.hdrs = w.hdrs[:0]
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// releasePending releases responses that were not fully written.
func (w *writer) releasePending() {
	clear(w.bufs)
	w.bufs = w.bufs[:0]
	for i, r := range w.releases {
		release(r)
		w.releases[i] = nil
	}
	w.releases = w.releases[:0]
}

// writeFile writes [off, off+n) of f: sendfile when possible, else pread and
// write.
func (w *writer) writeFile(f *os.File, off, n int64) error {
	srv := w.c.srv
	if w.raw != nil && !srv.noSendfile {
		sent, err := sendfile(w.raw, f, off, n)
		srv.sendfileBytes.Add(sent)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("sendfile %s: %w", f.Name(), err)
		}
		off, n = off+sent, n-sent
	}
	if err := copyFile(w.c.nc, f, off, n, &srv.bufPool); err != nil {
		return err
	}
	srv.copiedBytes.Add(n)
	return nil
}

// sendfile sends [off, off+n) of f to the socket behind raw using an explicit
// offset, so f's shared file position is never used. It returns how much it
// sent.
func sendfile(raw syscall.RawConn, f *os.File, off, n int64) (sent int64, err error) {
	fraw, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("file syscall conn: %w", err)
	}
	var werr error
	cerr := fraw.Control(func(ffd uintptr) {
		werr = raw.Write(func(sfd uintptr) bool {
			for sent < n {
				// The kernel advances off by what it sent.
				m, e := unix.Sendfile(int(sfd), int(ffd), &off, int(min(n-sent, maxSendfile)))
				if m > 0 {
					sent += int64(m)
				}
				switch {
				case e == unix.EAGAIN:
					return false // wait until the socket is writable
				case e == unix.EINTR:
				case e != nil:
					err = e
					return true
				case m == 0:
					err = io.ErrUnexpectedEOF // region past the end of the file
					return true
				}
			}
			return true
		})
	})
	if err != nil {
		return sent, err
	}
	if werr != nil {
		return sent, werr
	}
	return sent, cerr
}

// writerOnly hides io.ReaderFrom so io.CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }

func copyFile(dst io.Writer, f *os.File, off, n int64, pool interface {
	Get() any
	Put(any)
}) error {
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	written, err := io.CopyBuffer(writerOnly{dst}, io.NewSectionReader(f, off, n), *bp)
	if err != nil {
		return fmt.Errorf("copy %s: %w", f.Name(), err)
	}
	if written != n {
		return fmt.Errorf("copy %s: region [%d, %d) past end of file: %w", f.Name(), off, off+n, io.ErrUnexpectedEOF)
	}
	return nil
}
