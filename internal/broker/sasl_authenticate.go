package broker

// SaslAuthenticate (v0..2): one step of the SASL exchange whose mechanism
// SaslHandshake chose. When the exchange completes the connection is
// authenticated as the mechanism's user (network.ConnInfo.SetSession,
// where an authorizer reads the principal). With
// connections.max.reauth.ms the session lasts that long (v1+ tell the
// client, SessionLifetimeMs) and the client re-authenticates on the same
// connection (KIP-368) with the same mechanism and as the same user.
//
// A failed exchange is answered SASL_AUTHENTICATION_FAILED (or
// ILLEGAL_SASL_STATE for a malformed message) after
// connection.failed.authentication.delay.ms, and the connection is closed
// once the answer is written. The message is the same for a user that
// does not exist and a wrong password.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/security"
)

// saslState is a connection's SASL progress (network.ConnInfo's handler
// state). Requests of one connection are served in order on its reader,
// so it needs no lock.
type saslState struct {
	mechanism string
	exchange  security.ServerExchange
	failed    bool
	// raw: a v0 handshake; the next frames are bare SASL tokens.
	raw bool
}

func saslStateOf(c *network.ConnInfo) *saslState {
	if st, ok := c.HandlerState().(*saslState); ok {
		return st
	}
	st := &saslState{}
	c.SetHandlerState(st)
	return st
}

var errSASLFailedBefore = errors.New("SASL request after a failed authentication")

func (b *Broker) handleSaslAuthenticate(_ context.Context, r *request) {
	req := r.body.(*kmsg.SASLAuthenticateRequest)
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	st := saslStateOf(r.conn)
	if st.failed {
		r.resp.CloseConn(errSASLFailedBefore)
		return
	}
	if !r.conn.RequiresSASL() || st.mechanism == "" {
		b.saslFail(r, resp, kerr.IllegalSaslState, "SaslAuthenticate before SaslHandshake", nil)
		return
	}
	if st.exchange == nil {
		ex, err := b.newExchange(st.mechanism, r.conn.ListenerName())
		if err != nil {
			b.saslFail(r, resp, kerr.IllegalSaslState, err.Error(), err)
			return
		}
		st.exchange = ex
	}
	challenge, done, err := st.exchange.Step(req.SASLAuthBytes)
	if err != nil {
		code, msg := kerr.SaslAuthenticationFailed, security.ErrAuthentication.Error()
		if errors.Is(err, security.ErrIllegalState) {
			code, msg = kerr.IllegalSaslState, err.Error()
		}
		b.saslFail(r, resp, code, msg, err)
		return
	}
	resp.SASLAuthBytes = challenge
	if !done {
		r.respond(resp)
		return
	}
	user := st.exchange.Principal()
	mech := st.mechanism
	var expires time.Time // the credential's own end (an OAuth token's exp)
	if e, ok := st.exchange.(interface{ Expires() time.Time }); ok {
		expires = e.Expires()
	}
	st.exchange, st.mechanism = nil, ""
	principal := network.Principal{Type: "User", Name: user}
	if prev := r.conn.Session(); prev != nil && r.conn.RequiresSASL() && prev.Principal != principal && prev.Mechanism != "" {
		st.mechanism = mech // for saslFail's count
		b.saslFail(r, resp, kerr.SaslAuthenticationFailed, "re-authentication as another user ("+prev.Principal.String()+" before)", nil)
		return
	}
	sess := network.Session{Principal: principal, Mechanism: mech, Expires: sessionEnd(b.opts.Now(), b.opts.SASL.ReauthAfter, expires)}
	if !sess.Expires.IsZero() {
		resp.SessionLifetimeMillis = max(sess.Expires.Sub(b.opts.Now()).Milliseconds(), 1)
	}
	b.observeSASL(r.conn, mech, true)
	r.conn.SetSession(sess)
	b.log.Debug("SASL authenticated", "principal", principal.String(), "mechanism", mech, "remote", r.conn.RemoteAddr, "listener", r.conn.ListenerName())
	r.respond(resp)
}

// newExchange starts the server side of mechanism on listener.
func (b *Broker) newExchange(mechanism, listener string) (security.ServerExchange, error) {
	switch mechanism {
	case security.MechPlain:
		var users *security.PlainUsers
		if b.opts.SASL.PlainUsers != nil {
			users = b.opts.SASL.PlainUsers(listener)
		}
		if users == nil {
			users, _ = security.NewPlainUsers("", "")
		}
		return security.NewPlainServer(users), nil
	case security.MechOAuthBearer:
		var v security.TokenValidator
		if b.opts.SASL.OAuth != nil {
			v = b.opts.SASL.OAuth(listener)
		}
		if v == nil {
			return nil, errors.New("OAUTHBEARER has no token validator on listener " + listener)
		}
		return security.NewOAuthBearerServer(v), nil
	case security.MechScramSHA256, security.MechScramSHA512:
		lookup := func(user string) (security.ScramCredential, bool) {
			c, ok := b.image().ScramCredentials[scramKey(user, mechanism)]
			return security.ScramCredential{Salt: c.Salt, StoredKey: c.StoredKey, ServerKey: c.ServerKey, Iterations: int(c.Iterations)}, ok
		}
		return security.NewScramServer(mechanism, lookup, b.saslFakeKey, nil)
	}
	return nil, errors.New("mechanism " + mechanism + " has no server")
}

// saslFail answers a failed exchange after the failure delay and closes
// the connection once the answer is written.
func (b *Broker) saslFail(r *request, resp *kmsg.SASLAuthenticateResponse, code *kerr.Error, msg string, cause error) {
	st := saslStateOf(r.conn)
	b.observeSASL(r.conn, st.mechanism, false)
	st.failed, st.exchange = true, nil
	resp.ErrorCode, resp.ErrorMessage = code.Code, &msg
	b.log.Info("SASL authentication failed", "remote", r.conn.RemoteAddr, "listener", r.conn.ListenerName(), "error", code.Message, "detail", cause)
	resp.SetVersion(r.version)
	answer := func() { r.respondClose(resp) }
	if d := b.opts.SASL.FailureDelay; d > 0 {
		after := b.opts.SASL.AfterFunc
		if after == nil {
			after = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
		}
		after(d, answer)
		return
	}
	answer()
}

// rawSASL reports whether the connection's next frame is a bare SASL
// token (after a SaslHandshake v0).
func rawSASL(c *network.ConnInfo) bool {
	st, ok := c.HandlerState().(*saslState)
	return ok && st.raw
}

// serveRawSASL runs one step of a v0 exchange: the frame is the client's
// token and the answer the server's, both without Kafka headers. A
// failure closes the connection (v0 has no way to say why).
func (b *Broker) serveRawSASL(nr *network.Request, resp network.Responder) {
	st := saslStateOf(nr.Conn)
	if st.exchange == nil {
		ex, err := b.newExchange(st.mechanism, nr.Conn.ListenerName())
		if err != nil {
			b.observeSASL(nr.Conn, st.mechanism, false)
			resp.CloseConn(err)
			return
		}
		st.exchange = ex
	}
	challenge, done, err := st.exchange.Step(nr.Data)
	if err != nil {
		b.observeSASL(nr.Conn, st.mechanism, false)
		st.failed, st.raw, st.exchange = true, false, nil
		b.log.Info("SASL authentication failed", "remote", nr.Conn.RemoteAddr, "listener", nr.Conn.ListenerName(), "detail", err)
		close := func() { resp.CloseConn(fmt.Errorf("SASL authentication failed (SaslHandshake v0): %w", err)) }
		if d := b.opts.SASL.FailureDelay; d > 0 {
			after := b.opts.SASL.AfterFunc
			if after == nil {
				after = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
			}
			after(d, close)
			return
		}
		close()
		return
	}
	if done {
		st.raw = false
		var expires time.Time
		if e, ok := st.exchange.(interface{ Expires() time.Time }); ok {
			expires = e.Expires()
		}
		sess := network.Session{Principal: network.Principal{Type: "User", Name: st.exchange.Principal()}, Mechanism: st.mechanism,
			Expires: sessionEnd(b.opts.Now(), b.opts.SASL.ReauthAfter, expires)}
		b.observeSASL(nr.Conn, st.mechanism, true)
		st.exchange, st.mechanism = nil, ""
		nr.Conn.SetSession(sess)
	}
	resp.Respond(&network.Response{Chunks: []network.Chunk{{Bytes: append([]byte(nil), challenge...)}}})
}

// observeSASL reports how a SASL exchange on conn ended
// (SASLOptions.Observe), and, when conn had authenticated before, how its
// re-authentication did (SASLOptions.ObserveReauth). It runs before the
// exchange's session replaces the connection's.
func (b *Broker) observeSASL(conn *network.ConnInfo, mechanism string, ok bool) {
	if f := b.opts.SASL.Observe; f != nil {
		f(conn.ListenerName(), mechanism, ok)
	}
	if f := b.opts.SASL.ObserveReauth; f != nil {
		if prev := conn.Session(); prev != nil && prev.Mechanism != "" {
			f(conn.ListenerName(), mechanism, ok)
		}
	}
}

// sessionEnd is when a session must re-authenticate: after reauth
// (connections.max.reauth.ms) or when its credential expires, whichever
// comes first; zero when neither applies.
func sessionEnd(now time.Time, reauth time.Duration, credential time.Time) time.Time {
	var end time.Time
	if reauth > 0 {
		end = now.Add(reauth)
	}
	if !credential.IsZero() && (end.IsZero() || credential.Before(end)) {
		end = credential
	}
	return end
}
