package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/network"
)

// localConn names the in-process "connection" of ServeLocal in logs.
var localConn = &network.ConnInfo{RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}

// ServeLocal runs req through this broker's handlers in-process, exactly
// as if it had come over a connection, and returns the response. The node
// uses it for the requests it would otherwise send itself: the transaction
// coordinator's WriteTxnMarkers and KIP-890 verifications when this broker
// leads the partition.
func (b *Broker) ServeLocal(ctx context.Context, clientID string, req kmsg.Request) (kmsg.Response, error) {
	frame := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	frame = binary.BigEndian.AppendUint16(frame, uint16(req.GetVersion()))
	frame = binary.BigEndian.AppendUint32(frame, 1)
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(clientID)))
	frame = append(frame, clientID...)
	if req.IsFlexible() {
		frame = append(frame, 0)
	}
	frame = req.AppendTo(frame)
	lr := &localResponder{done: make(chan struct{})}
	b.Serve(ctx, &network.Request{Conn: localConn, Data: frame}, lr)
	select {
	case <-lr.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s in-process: %w", kmsg.NameForKey(req.Key()), ctx.Err())
	}
	if lr.err != nil {
		return nil, fmt.Errorf("%s in-process: %w", kmsg.NameForKey(req.Key()), lr.err)
	}
	body := lr.body
	if len(body) < 4 {
		return nil, fmt.Errorf("%s in-process: short response", kmsg.NameForKey(req.Key()))
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != apiKeyApiVersions {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%s in-process: decode response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// localResponder collects the response of ServeLocal.
type localResponder struct {
	done chan struct{}
	body []byte
	err  error
}

func (l *localResponder) Respond(resp *network.Response) {
	for _, c := range resp.Chunks {
		if c.File != nil {
			l.err = errors.New("a file-backed response cannot be served in-process")
			break
		}
		l.body = append(l.body, c.Bytes...)
	}
	if resp.Release != nil {
		resp.Release()
	}
	close(l.done)
}

func (l *localResponder) NoResponse() {
	l.err = errors.New("no response")
	close(l.done)
}

func (l *localResponder) CloseConn(reason error) {
	l.err = fmt.Errorf("connection closed: %w", reason)
	close(l.done)
}
