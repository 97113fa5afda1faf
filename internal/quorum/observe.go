package quorum

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
)

// The voter's side of observer connections (the observer's is observer.go).

const (
	// maxObserverWait caps how long a voter holds a fetch that has
	// nothing to return.
	maxObserverWait = 5 * time.Second
	// maxFetchBytes caps the entry data in one response, whatever the
	// observer asks for.
	maxFetchBytes = 8 << 20
	// maxObserverConns caps a voter's observer connections.
	maxObserverConns = 256
)

// logView is what observers are served from: the node's MemoryStorage
// (which locks itself) and the applied and commit indexes and leader the
// node's goroutine publishes after each round.
type logView struct {
	ms *raft.MemoryStorage

	mu      sync.Mutex
	applied uint64
	commit  uint64
	leader  uint64
	changed chan struct{} // closed and replaced at every change
}

func newLogView(ms *raft.MemoryStorage) *logView {
	return &logView{ms: ms, changed: make(chan struct{})}
}

func (v *logView) publish(applied, commit, leader uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if applied == v.applied && commit == v.commit && leader == v.leader {
		return
	}
	v.applied, v.commit, v.leader = applied, commit, leader
	close(v.changed)
	v.changed = make(chan struct{})
}

func (v *logView) state() (applied, commit, leader uint64, changed <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.applied, v.commit, v.leader, v.changed
}

// fetch answers req, appending the response frame to buf. It serves only
// entries this node has applied, so they are committed and the observer is
// never ahead of this node's state machine. While it has nothing from
// req.from on, it waits up to req.maxWait for that to change (or for the
// leader to change).
func (v *logView) fetch(ctx context.Context, req fetchRequest, maxFrame int, buf []byte) ([]byte, error) {
	applied, commit, leader, changed := v.state()
	if req.from > applied && req.maxWait > 0 {
		timer := time.NewTimer(min(req.maxWait, maxObserverWait))
		defer timer.Stop()
		lead0 := leader
	wait:
		for req.from > applied && leader == lead0 {
			select {
			case <-changed:
			case <-timer.C:
				break wait
			case <-ctx.Done():
				return buf, ctx.Err()
			}
			applied, commit, leader, changed = v.state()
		}
	}
	resp := fetchResponse{leader: leader, commit: commit, next: req.from}
	first, err := v.ms.FirstIndex()
	if err != nil {
		return buf, err
	}
	if req.from < first {
		return v.snapshot(&resp, req.from, maxFrame, buf)
	}
	last, err := v.ms.LastIndex()
	if err != nil {
		return buf, err
	}
	// Entries up to applied are never truncated, so hi stays in bounds
	// even if the log changes meanwhile.
	if hi := min(applied, last) + 1; req.from < hi {
		limit := min(uint64(req.maxBytes), maxFetchBytes, uint64(maxFrame/2))
		ents, err := v.ms.Entries(req.from, hi, limit)
		if errors.Is(err, raft.ErrCompacted) {
			return v.snapshot(&resp, req.from, maxFrame, buf)
		}
		if err != nil {
			return buf, fmt.Errorf("read entries %d to %d: %w", req.from, hi-1, err)
		}
		for i := range ents {
			_, data, ok, err := entryPayload(&ents[i])
			if err != nil {
				return buf, err
			}
			if ok {
				resp.entries = append(resp.entries, observedEntry{index: ents[i].Index, data: data})
			}
		}
		if len(ents) > 0 {
			resp.next = ents[len(ents)-1].Index + 1
		}
	}
	return checkFrame(appendFetchResponse(buf, &resp), len(buf), maxFrame)
}

// snapshot answers with the latest snapshot: the log before req.from is
// compacted away.
func (v *logView) snapshot(resp *fetchResponse, from uint64, maxFrame int, buf []byte) ([]byte, error) {
	snap, err := v.ms.Snapshot()
	if err != nil {
		return buf, err
	}
	if snap.Metadata.Index < from {
		return buf, fmt.Errorf("log compacted past %d but the snapshot is at %d", from, snap.Metadata.Index)
	}
	resp.snapshot = true
	resp.snapIndex, resp.snapTerm, resp.snapData = snap.Metadata.Index, snap.Metadata.Term, snap.Data
	return checkFrame(appendFetchResponse(buf, resp), len(buf), maxFrame)
}

func checkFrame(b []byte, start, maxFrame int) ([]byte, error) {
	if n := len(b) - start - frameHdrLen; n > maxFrame {
		return b[:start], fmt.Errorf("%d-byte response exceeds the %d-byte message limit", n, maxFrame)
	}
	return b, nil
}

// serveObserver runs an observer's connection once its hello is read:
// admission, then one response per fetch request. Anything malformed
// closes it.
func (t *transport) serveObserver(c net.Conn, h hello, remote string) {
	status := t.admitObserver(h, c)
	_, werr := c.Write(appendAnswer(nil, answer{version: wireVersion1, status: status, id: t.id, clusterID: t.clusterID}))
	if status != hsOK {
		t.log.Warn("rejected observer connection", "remote", remote, "reason", hsStatusText(status),
			"observer", h.from, "observer_cluster_id", h.clusterID, "cluster_id", t.clusterID)
		return
	}
	defer t.releaseObserver(c)
	log := t.log.With("observer", h.from, "remote", remote)
	if werr != nil {
		log.Debug("observer connection failed during handshake", "error", werr)
		return
	}
	c.SetDeadline(time.Time{})
	log.Info("observer connected")
	br := bufio.NewReaderSize(c, 256)
	var buf []byte
	for {
		body, err := readFrameBytes(br, maxFetchRequestFrame)
		var req fetchRequest
		if err == nil {
			req, err = decodeFetchRequest(body)
		}
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				log.Info("observer disconnected", "error", err)
			} else {
				log.Warn("closing observer connection: bad request", "error", err)
			}
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil // do not pin a snapshot's buffer
		}
		buf, err = t.view.fetch(t.ctx, req, t.maxFrame, buf[:0])
		if t.ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Error("closing observer connection: cannot answer a fetch", "from", req.from, "error", err)
			return
		}
		c.SetWriteDeadline(time.Now().Add(writeTimeout + time.Duration(len(buf)>>20)*100*time.Millisecond))
		if _, err := c.Write(buf); err != nil {
			log.Info("observer disconnected", "error", err)
			return
		}
	}
}

// admitObserver checks an observer's hello and counts its connection.
// Several connections may claim one observer id: observers only read.
func (t *transport) admitObserver(h hello, c net.Conn) byte {
	if st := t.checkHello(h); st != hsOK {
		return st
	}
	switch {
	case h.from == 0:
		return hsObserverIDZero
	case h.from == t.id || t.peers[h.from] != "":
		return hsObserverIsVoter
	case t.view == nil:
		return hsUnknownNode
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.observers) >= maxObserverConns {
		return hsTooManyObservers
	}
	t.observers[c] = h.from
	return hsOK
}

func (t *transport) releaseObserver(c net.Conn) {
	t.mu.Lock()
	delete(t.observers, c)
	t.mu.Unlock()
}

// observerCount returns how many observer connections are open.
func (t *transport) observerCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.observers)
}
