package kclient

// SASL on a connection: SaslHandshake v1, then SaslAuthenticate v2 until
// the mechanism is done. A server that limits sessions
// (connections.max.reauth.ms, or an OAUTHBEARER token's expiry) says how
// long this one lasts in SessionLifetimeMs; the client then runs the same
// exchange again on the same connection, between two requests, before
// the session ends (KIP-368). A connection carries one request at a time
// (conn.mu), so nothing interleaves with the re-authentication on the
// wire. The mechanism's Authenticate is called for each exchange: an
// OAUTHBEARER mechanism makes a fresh token each time.

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Re-authentication is scheduled, as Kafka's clients do, at a random point
// between 85% and 95% of the session's lifetime: the rest is a margin for
// the network and clock drift, and the jitter keeps many connections
// authenticated together from re-authenticating together.
const (
	reauthAtLeast = 0.85
	reauthJitter  = 0.10
)

// authenticate runs the SASL exchange on the connection and schedules the
// next one.
func (rc *conn) authenticate(ctx context.Context, c *Client, addr, clientID string, deadline time.Time) error {
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = rc.mech.Name()
	resp, err := rc.exchange(ctx, clientID, hs, deadline, nil, c.maxBytes)
	if err != nil {
		return fmt.Errorf("SaslHandshake: %w", err)
	}
	if code := resp.(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
		return fmt.Errorf("SaslHandshake %s: %w", rc.mech.Name(), kerr.ErrorForCode(code))
	}
	sess, msg, err := rc.mech.Authenticate(ctx, addr)
	if err != nil {
		return err
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.SetVersion(2)
		req.SASLAuthBytes = msg
		sent := c.now()
		resp, err := rc.exchange(ctx, clientID, req, deadline, nil, c.maxBytes)
		if err != nil {
			return fmt.Errorf("SaslAuthenticate: %w", err)
		}
		ar := resp.(*kmsg.SASLAuthenticateResponse)
		if ar.ErrorCode != 0 {
			detail := ""
			if ar.ErrorMessage != nil {
				detail = *ar.ErrorMessage
			}
			return fmt.Errorf("SaslAuthenticate: %w: %s", kerr.ErrorForCode(ar.ErrorCode), detail)
		}
		done, next, err := sess.Challenge(ar.SASLAuthBytes)
		if err != nil {
			return err
		}
		if done {
			// The lifetime counts from when the last SaslAuthenticate
			// was sent: the server's session began after that.
			rc.reauthAt = time.Time{}
			if life := time.Duration(ar.SessionLifetimeMillis) * time.Millisecond; life > 0 {
				frac := reauthAtLeast + reauthJitter*c.jitter()
				rc.reauthAt = sent.Add(time.Duration(float64(life) * frac))
			}
			return nil
		}
		msg = next
	}
}

// maybeReauthenticate runs before a request on an authenticated
// connection that the server may hold for up to hold (a fetch's long
// poll): if the session would reach its re-authentication point before
// the answer, the exchange runs again first. A connection idle past its
// session's end is re-authenticated too, as Kafka's clients do and its
// brokers accept. A failed re-authentication leaves nothing to trust on
// the wire: the connection is closed and the request dials a new one.
func (rc *conn) maybeReauthenticate(ctx context.Context, c *Client, addr, clientID string, deadline time.Time, hold time.Duration) {
	if rc.mech == nil || rc.reauthAt.IsZero() || c.now().Add(hold).Before(rc.reauthAt) {
		return
	}
	if err := rc.authenticate(ctx, c, addr, clientID, deadline); err != nil {
		if ctx.Err() == nil { // else the caller gave up, and the request fails with that
			c.log.Warn("SASL re-authentication failed; closing the connection to dial again", "addr", addr, "mechanism", rc.mech.Name(), "error", err)
		}
		rc.drop()
		return
	}
	c.log.Debug("SASL re-authenticated", "addr", addr, "mechanism", rc.mech.Name(), "next", rc.reauthAt)
}

// serverHold is how long the server may hold req before answering it: a
// fetch's long poll. Re-authentication is scheduled to happen before that
// answer, not after it.
func serverHold(req kmsg.Request) time.Duration {
	if f, ok := req.(*kmsg.FetchRequest); ok && f.MaxWaitMillis > 0 {
		return time.Duration(f.MaxWaitMillis) * time.Millisecond
	}
	return 0
}
