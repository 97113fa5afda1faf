package broker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/security"
	"github.com/stratalog/strata/internal/security/jwttest"
)

type saslHarness struct {
	t       *testing.T
	b       *Broker
	now     time.Time
	delayed []func()
	delays  []time.Duration
	// observed are the exchanges SASLOptions.Observe was told of, as
	// listener/mechanism/ok.
	observed []string
	// reauths and expired are what ObserveReauth (listener/mechanism/ok)
	// and ObserveExpired (listener) were told of.
	reauths, expired []string
}

func newSASLHarness(t *testing.T) *saslHarness {
	h := &saslHarness{t: t, b: newTestBroker(t), now: time.Unix(1000, 0)}
	users, err := security.NewPlainUsers(`M required user_alice="alice-pw" user_bob="bob-pw";`, "")
	if err != nil {
		t.Fatal(err)
	}
	h.b.opts.Now = func() time.Time { return h.now }
	h.b.opts.SASL = SASLOptions{
		Mechanisms:   []string{"PLAIN", "SCRAM-SHA-256"},
		PlainUsers:   func(string) *security.PlainUsers { return users },
		ReauthAfter:  time.Minute,
		FailureDelay: 100 * time.Millisecond,
		AfterFunc: func(d time.Duration, f func()) {
			h.delays = append(h.delays, d)
			h.delayed = append(h.delayed, f)
		},
		Observe: func(listener, mechanism string, ok bool) {
			h.observed = append(h.observed, fmt.Sprintf("%s/%s/%v", listener, mechanism, ok))
		},
		ObserveReauth: func(listener, mechanism string, ok bool) {
			h.reauths = append(h.reauths, fmt.Sprintf("%s/%s/%v", listener, mechanism, ok))
		},
		ObserveExpired: func(listener string) { h.expired = append(h.expired, listener) },
	}
	return h
}

func (h *saslHarness) conn(protocol string) *network.ConnInfo {
	return &network.ConnInfo{ID: 1, RemoteAddr: &net.TCPAddr{}, LocalAddr: &net.TCPAddr{}, Listener: &network.Listener{Name: "L", Protocol: protocol}}
}

func (h *saslHarness) handshake(c *network.ConnInfo, mech string) *kmsg.SASLHandshakeResponse {
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.SetVersion(1)
	req.Mechanism = mech
	rec := serveOn(h.t, h.b, c, req)
	if rec.closed != nil {
		h.t.Fatalf("SaslHandshake closed the connection: %v", rec.closed)
	}
	return decodeResp(h.t, rec, req).(*kmsg.SASLHandshakeResponse)
}

// authenticate sends one SaslAuthenticate; a delayed answer is released
// by running the injected timers.
func (h *saslHarness) authenticate(c *network.ConnInfo, msg string) (*kmsg.SASLAuthenticateResponse, *recorder) {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.SetVersion(2)
	req.SASLAuthBytes = []byte(msg)
	rec := newRecorder()
	h.b.Serve(context.Background(), &network.Request{Conn: c, Data: frameFor(req, 3)}, rec)
	for len(h.delayed) > 0 {
		f := h.delayed[0]
		h.delayed = h.delayed[1:]
		f()
	}
	<-rec.done
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.resp == nil {
		return nil, rec
	}
	return decodeResp(h.t, rec, req).(*kmsg.SASLAuthenticateResponse), rec
}

func decodeResp(t *testing.T, rec *recorder, req kmsg.Request) kmsg.Response {
	t.Helper()
	if rec.resp == nil {
		t.Fatalf("%s: no response (closed: %v)", kmsg.NameForKey(req.Key()), rec.closed)
	}
	var b []byte
	for _, c := range rec.resp.Chunks {
		b = append(b, c.Bytes...)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	b = b[4:] // correlation id
	if resp.IsFlexible() && req.Key() != 18 {
		b = b[1:]
	}
	if err := resp.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestSASLHandshakeAndPlain(t *testing.T) {
	h := newSASLHarness(t)

	// Not a SASL listener.
	if r := h.handshake(h.conn(network.ProtocolPlaintext), "PLAIN"); r.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("handshake on PLAINTEXT: %d", r.ErrorCode)
	}
	c := h.conn(network.ProtocolSASLPlaintext)
	// A mechanism that is not enabled: the list, and the connection stays.
	r := h.handshake(c, "GSSAPI")
	if r.ErrorCode != kerr.UnsupportedSaslMechanism.Code || strings.Join(r.SupportedMechanisms, ",") != "PLAIN,SCRAM-SHA-256" {
		t.Fatalf("GSSAPI: %+v", r)
	}
	if r := h.handshake(c, "PLAIN"); r.ErrorCode != 0 {
		t.Fatalf("PLAIN: %d", r.ErrorCode)
	}
	if r := h.handshake(c, "PLAIN"); r.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("second handshake: %d", r.ErrorCode)
	}
	resp, rec := h.authenticate(c, "\x00alice\x00alice-pw")
	if resp.ErrorCode != 0 || rec.resp.CloseAfter || resp.SessionLifetimeMillis != 60000 {
		t.Fatalf("PLAIN login: %+v", resp)
	}
	if p := c.Principal(); p.String() != "User:alice" {
		t.Fatalf("principal %s", p)
	}
	if s := c.Session(); !s.Expires.Equal(h.now.Add(time.Minute)) || s.Mechanism != "PLAIN" {
		t.Fatalf("session %+v", s)
	}

	// KIP-368: re-authenticate as the same user before expiry.
	h.now = h.now.Add(50 * time.Second)
	h.handshake(c, "PLAIN")
	if resp, _ := h.authenticate(c, "\x00alice\x00alice-pw"); resp.ErrorCode != 0 {
		t.Fatalf("re-authentication: %+v", resp)
	}
	if s := c.Session(); !s.Expires.Equal(h.now.Add(time.Minute)) {
		t.Fatalf("re-authentication did not extend the session: %+v", s)
	}
	if got := strings.Join(h.observed, " "); got != "L/PLAIN/true L/PLAIN/true" {
		t.Fatalf("observed %q, want two PLAIN successes on L", got)
	}
	// Re-authenticating with another mechanism is refused.
	if r := h.handshake(c, "SCRAM-SHA-256"); r.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("mechanism change on re-authentication: %d", r.ErrorCode)
	}
}

func TestSASLFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(h *saslHarness, c *network.ConnInfo)
		msg      string
		code     int16
		words    string
		observed string // what SASLOptions.Observe was told
	}{
		{"wrong password", func(h *saslHarness, c *network.ConnInfo) { h.handshake(c, "PLAIN") }, "\x00alice\x00nope", kerr.SaslAuthenticationFailed.Code, "Invalid username or password", "L/PLAIN/false"},
		{"unknown user", func(h *saslHarness, c *network.ConnInfo) { h.handshake(c, "PLAIN") }, "\x00zed\x00alice-pw", kerr.SaslAuthenticationFailed.Code, "Invalid username or password", "L/PLAIN/false"},
		{"malformed PLAIN", func(h *saslHarness, c *network.ConnInfo) { h.handshake(c, "PLAIN") }, "alice", kerr.IllegalSaslState.Code, "NUL-separated", "L/PLAIN/false"},
		{"before the handshake", func(*saslHarness, *network.ConnInfo) {}, "\x00alice\x00alice-pw", kerr.IllegalSaslState.Code, "before SaslHandshake", "L//false"},
		{"another user on re-authentication", func(h *saslHarness, c *network.ConnInfo) {
			h.handshake(c, "PLAIN")
			h.authenticate(c, "\x00alice\x00alice-pw")
			h.handshake(c, "PLAIN")
		}, "\x00bob\x00bob-pw", kerr.SaslAuthenticationFailed.Code, "another user", "L/PLAIN/true L/PLAIN/false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newSASLHarness(t)
			c := h.conn(network.ProtocolSASLSSL)
			tc.setup(h, c)
			h.delays = nil
			resp, rec := h.authenticate(c, tc.msg)
			if resp == nil || resp.ErrorCode != tc.code || resp.ErrorMessage == nil || !strings.Contains(*resp.ErrorMessage, tc.words) {
				t.Fatalf("answer %+v", resp)
			}
			if !rec.resp.CloseAfter {
				t.Fatal("the connection stays open after a failed authentication")
			}
			if len(h.delays) != 1 || h.delays[0] != 100*time.Millisecond {
				t.Fatalf("answer delays %v, want one of 100ms", h.delays)
			}
			if got := strings.Join(h.observed, " "); got != tc.observed {
				t.Fatalf("observed %q, want %q", got, tc.observed)
			}
			// Anything more on the connection closes it.
			req := kmsg.NewPtrSASLHandshakeRequest()
			req.SetVersion(1)
			req.Mechanism = "PLAIN"
			if rec := serveOn(t, h.b, c, req); rec.closed == nil {
				t.Fatal("a request after a failed authentication was served")
			}
		})
	}
}

// TestSASLHandshakeV0RawTokens: after a v0 handshake the exchange runs as
// bare tokens; a failure closes the connection.
func TestSASLHandshakeV0RawTokens(t *testing.T) {
	h := newSASLHarness(t)
	raw := func(c *network.ConnInfo, token string) *recorder {
		rec := newRecorder()
		h.b.Serve(context.Background(), &network.Request{Conn: c, Data: []byte(token)}, rec)
		for len(h.delayed) > 0 {
			f := h.delayed[0]
			h.delayed = h.delayed[1:]
			f()
		}
		<-rec.done
		return rec
	}
	v0 := func(c *network.ConnInfo) {
		req := kmsg.NewPtrSASLHandshakeRequest()
		req.SetVersion(0)
		req.Mechanism = "PLAIN"
		if rec := serveOn(t, h.b, c, req); rec.closed != nil || decodeResp(t, rec, req).(*kmsg.SASLHandshakeResponse).ErrorCode != 0 {
			t.Fatalf("v0 handshake: %+v", rec)
		}
	}
	c := h.conn(network.ProtocolSASLPlaintext)
	v0(c)
	rec := raw(c, "\x00alice\x00alice-pw")
	if rec.closed != nil || rec.resp == nil || len(rec.resp.Chunks) != 1 || len(rec.resp.Chunks[0].Bytes) != 0 {
		t.Fatalf("raw PLAIN token: %+v", rec)
	}
	if c.Principal().String() != "User:alice" {
		t.Fatalf("principal %s", c.Principal())
	}
	// Back to Kafka requests.
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12)
	if rec := serveOn(t, h.b, c, meta); rec.closed != nil {
		t.Fatalf("Metadata after a v0 exchange: %v", rec.closed)
	}

	c = h.conn(network.ProtocolSASLPlaintext)
	v0(c)
	if rec := raw(c, "\x00alice\x00nope"); rec.closed == nil {
		t.Fatal("a failed raw exchange left the connection open")
	}
	if got := strings.Join(h.observed, " "); got != "L/PLAIN/true L/PLAIN/false" {
		t.Fatalf("observed %q, want a PLAIN success then a failure", got)
	}
}

// TestOAuthBearerSessionEndsWithTheToken: the session lasts until the
// token's exp when that comes before connections.max.reauth.ms.
func TestOAuthBearerSessionEndsWithTheToken(t *testing.T) {
	h := newSASLHarness(t)
	v, err := security.NewUnsecuredJWSValidator("", func() time.Time { return h.now })
	if err != nil {
		t.Fatal(err)
	}
	h.b.opts.SASL.Mechanisms = append(h.b.opts.SASL.Mechanisms, "OAUTHBEARER")
	h.b.opts.SASL.OAuth = func(string) security.TokenValidator { return v }
	e := base64.RawURLEncoding.EncodeToString
	token := e([]byte(`{"alg":"none"}`)) + "." + e(fmt.Appendf(nil, `{"sub":"svc","exp":%d}`, h.now.Add(30*time.Second).Unix())) + "."
	c := h.conn(network.ProtocolSASLSSL)
	if r := h.handshake(c, "OAUTHBEARER"); r.ErrorCode != 0 {
		t.Fatalf("handshake: %d", r.ErrorCode)
	}
	resp, _ := h.authenticate(c, "n,,\x01auth=Bearer "+token+"\x01\x01")
	if resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 30000 {
		t.Fatalf("answer %+v, want a 30 s session (the token's, before the 60 s reauth)", resp)
	}
	if s := c.Session(); s.Principal.Name != "svc" || !s.Expires.Equal(h.now.Add(30*time.Second)) {
		t.Fatalf("session %+v", s)
	}
}

// TestOAuthBearerSignedTokens: with KIP-768's validator (a JWKS), a signed
// token authenticates; a bad one gets RFC 7628's invalid_token challenge,
// and the client's \x01 then SASL_AUTHENTICATION_FAILED and a closed
// connection, as Kafka answers.
func TestOAuthBearerSignedTokens(t *testing.T) {
	h := newSASLHarness(t)
	rs, es := jwttest.NewRSA(t, "rs-1", "RS256"), jwttest.NewEC(t, "es-1", "ES256")
	other := jwttest.NewEC(t, "es-1", "ES256") // same kid, not in the JWKS
	keys, err := security.NewJWKSFile(jwttest.WriteJWKS(t, t.TempDir(), "jwks.json", rs, es), 0, func() time.Time { return h.now }, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := security.NewJWTValidator(security.JWTValidatorConfig{Keys: keys, ExpectedAudiences: []string{"strata"}, ClockSkew: 30 * time.Second, Now: func() time.Time { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	h.b.opts.SASL.Mechanisms = append(h.b.opts.SASL.Mechanisms, "OAUTHBEARER")
	h.b.opts.SASL.OAuth = func(string) security.TokenValidator { return v }
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"sub": "svc-orders", "aud": "strata", "iat": h.now.Unix(), "exp": h.now.Add(45 * time.Second).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	e := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"RS256", rs.Sign(claims(nil), nil), true},
		{"ES256", es.Sign(claims(nil), nil), true},
		{"wrong signature", other.Sign(claims(nil), nil), false},
		{"expired", es.Sign(claims(func(c map[string]any) { c["exp"] = h.now.Add(-time.Minute).Unix() }), nil), false},
		{"wrong audience", es.Sign(claims(func(c map[string]any) { c["aud"] = "billing" }), nil), false},
		{"unknown kid", es.Sign(claims(nil), map[string]any{"kid": "es-2"}), false},
		{"alg none", e([]byte(`{"alg":"none","kid":"es-1"}`)) + "." + e(mustJSON(t, claims(nil))) + ".", false},
	} {
		c := h.conn(network.ProtocolSASLSSL)
		if r := h.handshake(c, "OAUTHBEARER"); r.ErrorCode != 0 {
			t.Fatalf("%s: handshake %d", tc.name, r.ErrorCode)
		}
		resp, _ := h.authenticate(c, "n,,\x01auth=Bearer "+tc.token+"\x01\x01")
		if tc.ok {
			if resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 45000 || c.Session().Principal.Name != "svc-orders" {
				t.Errorf("%s: %+v, session %+v", tc.name, resp, c.Session())
			}
			continue
		}
		if resp.ErrorCode != 0 || !strings.Contains(string(resp.SASLAuthBytes), "invalid_token") || c.Session() != nil {
			t.Errorf("%s: first answer %+v, want the invalid_token challenge", tc.name, resp)
			continue
		}
		resp, rec := h.authenticate(c, "\x01")
		if resp == nil || resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || !rec.resp.CloseAfter {
			t.Errorf("%s: after \\x01: %+v; want SASL_AUTHENTICATION_FAILED and a close", tc.name, resp)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
