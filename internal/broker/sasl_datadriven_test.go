package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/security"
)

// TestSASLDataDriven runs testdata/sasl: the broker's SASL state machine
// (the gate, SaslHandshake, SaslAuthenticate, re-authentication) on
// connections of SASL and other listeners, with a manual clock and the
// failure delay recorded instead of slept. Commands:
//
//	conn name=c [protocol=SASL_SSL]            a new connection
//	handshake conn=c mech=M [version=1]        SaslHandshake
//	authenticate conn=c                         SaslAuthenticate; the input is the message as a Go string literal
//	request conn=c [key=metadata|api-versions] another request: served or closed
//	advance d=30s                              moves the clock
//	observed                                    re-authentications and expired-session closes counted so far
//	scram-user name=u mech=M password=p [iterations=N]   AlterUserScramCredentials on the controller
//	scram conn=c user=u password=p [tamper=nonce|binding|proof]   a whole SCRAM-SHA-256 exchange
//
// Users alice/alice-pw and bob/bob-pw are PLAIN users; the mechanisms are
// PLAIN and SCRAM-SHA-256; sessions last 60 s (connections.max.reauth.ms).
func TestSASLDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata/sasl", func(t *testing.T, path string) {
		h := newSASLHarness(t)
		conns := map[string]*network.ConnInfo{}
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			arg := func(k, def string) string {
				for _, a := range td.CmdArgs {
					if a.Key == k && len(a.Vals) > 0 {
						return a.Vals[0]
					}
				}
				return def
			}
			conn := func() *network.ConnInfo {
				c := conns[arg("conn", "")]
				if c == nil {
					t.Fatalf("%s: unknown conn", td.Pos)
				}
				return c
			}
			switch td.Cmd {
			case "conn":
				conns[arg("name", "")] = h.conn(arg("protocol", network.ProtocolSASLSSL))
				return ""
			case "handshake":
				req := kmsg.NewPtrSASLHandshakeRequest()
				v, _ := strconv.Atoi(arg("version", "1"))
				req.SetVersion(int16(v))
				req.Mechanism = arg("mech", "")
				rec := serveOn(t, h.b, conn(), req)
				if rec.closed != nil {
					return "closed: " + rec.closed.Error()
				}
				r := decodeResp(t, rec, req).(*kmsg.SASLHandshakeResponse)
				return fmt.Sprintf("%s mechanisms=%s", codeName(r.ErrorCode), strings.Join(r.SupportedMechanisms, ","))
			case "authenticate":
				msg, err := strconv.Unquote(strings.TrimSpace(td.Input))
				if err != nil {
					t.Fatalf("%s: input %q: %v", td.Pos, td.Input, err)
				}
				return h.describeAuth(conn(), msg)
			case "request":
				var req kmsg.Request
				switch arg("key", "metadata") {
				case "metadata":
					m := kmsg.NewPtrMetadataRequest()
					m.SetVersion(12)
					req = m
				case "api-versions":
					a := kmsg.NewPtrApiVersionsRequest()
					a.SetVersion(3)
					a.ClientSoftwareName, a.ClientSoftwareVersion = "t", "1"
					req = a
				}
				if rec := serveOn(t, h.b, conn(), req); rec.closed != nil {
					return "closed: " + rec.closed.Error()
				}
				return "served"
			case "observed":
				return fmt.Sprintf("reauths=%v expired=%v", h.reauths, h.expired)
			case "advance":
				d, err := time.ParseDuration(arg("d", ""))
				if err != nil {
					t.Fatal(err)
				}
				h.now = h.now.Add(d)
				return ""
			case "scram-user":
				iter, _ := strconv.Atoi(arg("iterations", "4096"))
				mech := arg("mech", "SCRAM-SHA-256")
				salt := []byte("0123456789abcdef")
				hf := security.ScramHash(mech)
				var salted []byte
				if hf != nil {
					salted = security.SaltPassword(hf, arg("password", ""), salt, iter)
				}
				res := h.b.opts.Controller.AlterUserScramCredentials(nil, []controller.ScramUpsertion{{Name: arg("name", ""), Mechanism: mech,
					Iterations: int32(iter), Salt: salt, SaltedPassword: salted}})
				return codeName(errorCode(res[arg("name", "")]))
			case "scram":
				return h.scramExchange(t, conn(), arg("user", ""), arg("password", ""), arg("tamper", ""))
			}
			t.Fatalf("%s: unknown command %s", td.Pos, td.Cmd)
			return ""
		})
	})
}

func codeName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(code).(*kerr.Error).Message
}

// describeAuth sends one SaslAuthenticate and describes the answer.
func (h *saslHarness) describeAuth(c *network.ConnInfo, msg string) string {
	h.delays = nil
	resp, rec := h.authenticate(c, msg)
	if resp == nil {
		return "closed: " + rec.closed.Error()
	}
	var b strings.Builder
	b.WriteString(codeName(resp.ErrorCode))
	if resp.ErrorMessage != nil {
		fmt.Fprintf(&b, " message=%q", *resp.ErrorMessage)
	}
	if len(resp.SASLAuthBytes) > 0 {
		fmt.Fprintf(&b, " bytes=%q", resp.SASLAuthBytes)
	}
	if resp.SessionLifetimeMillis > 0 {
		fmt.Fprintf(&b, " lifetime=%dms", resp.SessionLifetimeMillis)
	}
	if rec.resp.CloseAfter {
		b.WriteString(" then-close")
	}
	for _, d := range h.delays {
		fmt.Fprintf(&b, " delayed=%s", d)
	}
	if s := c.Session(); s != nil && resp.ErrorCode == 0 && len(resp.SASLAuthBytes) == 0 {
		fmt.Fprintf(&b, " principal=%s", s.Principal)
	}
	return b.String()
}

// scramExchange runs SCRAM-SHA-256 as a client would, optionally
// tampering with the final message, and describes each step.
func (h *saslHarness) scramExchange(t *testing.T, c *network.ConnInfo, user, password, tamper string) string {
	var out []string
	hs := h.handshake(c, "SCRAM-SHA-256")
	out = append(out, "handshake: "+codeName(hs.ErrorCode))
	cnonce := "fyko+d2lbbFgONRv9qkxdawL"
	first := "n,,n=" + user + ",r=" + cnonce
	resp, rec := h.authenticate(c, first)
	if resp == nil || resp.ErrorCode != 0 {
		out = append(out, "first: "+h.short(resp, rec))
		return strings.Join(out, "\n")
	}
	serverFirst := string(resp.SASLAuthBytes)
	attrs := map[string]string{}
	for _, kv := range strings.Split(serverFirst, ",") {
		attrs[kv[:1]] = kv[2:]
	}
	out = append(out, fmt.Sprintf("first: NONE nonce-starts-with-ours=%v iterations=%s", strings.HasPrefix(attrs["r"], cnonce), attrs["i"]))
	salt, _ := base64.StdEncoding.DecodeString(attrs["s"])
	iter, _ := strconv.Atoi(attrs["i"])
	hf := sha256.New
	salted := security.SaltPassword(hf, password, salt, iter)
	nonce, binding := attrs["r"], "biws"
	switch tamper {
	case "nonce":
		nonce = cnonce
	case "binding":
		binding = base64.StdEncoding.EncodeToString([]byte("y,,"))
	}
	withoutProof := "c=" + binding + ",r=" + nonce
	auth := []byte("n=" + user + ",r=" + cnonce + "," + serverFirst + "," + withoutProof)
	clientKey := mac(hf, salted, []byte("Client Key"))
	stored := sha256.Sum256(clientKey)
	sig := mac(hf, stored[:], auth)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = clientKey[i] ^ sig[i]
	}
	if tamper == "proof" {
		proof[0] ^= 1
	}
	h.delays = nil
	resp, rec = h.authenticate(c, withoutProof+",p="+base64.StdEncoding.EncodeToString(proof))
	if resp == nil || resp.ErrorCode != 0 {
		out = append(out, "final: "+h.short(resp, rec))
		return strings.Join(out, "\n")
	}
	wantV := "v=" + base64.StdEncoding.EncodeToString(mac(hf, mac(hf, salted, []byte("Server Key")), auth))
	out = append(out, fmt.Sprintf("final: NONE server-signature-verifies=%v principal=%s", string(resp.SASLAuthBytes) == wantV, c.Principal()))
	return strings.Join(out, "\n")
}

func (h *saslHarness) short(resp *kmsg.SASLAuthenticateResponse, rec *recorder) string {
	if resp == nil {
		return "closed: " + rec.closed.Error()
	}
	s := codeName(resp.ErrorCode)
	if resp.ErrorMessage != nil {
		s += fmt.Sprintf(" message=%q", *resp.ErrorMessage)
	}
	if rec.resp.CloseAfter {
		s += " then-close"
	}
	for _, d := range h.delays {
		s += " delayed=" + d.String()
	}
	return s
}

func mac(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}
