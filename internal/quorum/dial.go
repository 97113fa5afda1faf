package quorum

import (
	"context"
	"net"
	"time"
)

// DialFunc opens a connection to a voter's address, ready for the
// quorum's protocol: a TLS dialer runs its handshake before returning.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// dialWith dials addr with dial (plain TCP when nil), within timeout when
// it is positive.
func dialWith(ctx context.Context, dial DialFunc, addr string, timeout time.Duration) (net.Conn, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if dial == nil {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	return dial(ctx, addr)
}
