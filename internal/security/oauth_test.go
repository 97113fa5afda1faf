package security

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/fuzzbudget"
)

func jws(header, claims string) string {
	e := base64.RawURLEncoding.EncodeToString
	return e([]byte(header)) + "." + e([]byte(claims)) + "."
}

func TestUnsecuredJWSValidator(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	v, err := NewUnsecuredJWSValidator(`org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required
		unsecuredValidatorRequiredScope="produce" unsecuredValidatorAllowableClockSkewMs="1000";`, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	none := `{"alg":"none"}`
	for _, tc := range []struct {
		token, principal, err string
	}{
		{jws(none, `{"sub":"alice","exp":1000060,"iat":999990,"scope":"produce consume"}`), "alice", ""},
		{jws(none, `{"sub":"alice","exp":1000000.5,"scope":["produce"]}`), "alice", ""}, // within the skew
		{jws(none, `{"sub":"alice","exp":999998,"scope":"produce"}`), "", "expired"},
		{jws(none, `{"sub":"alice","scope":"produce"}`), "", "exp"},
		{jws(none, `{"sub":"alice","exp":1000060,"iat":1000005,"scope":"produce"}`), "", "future"},
		{jws(none, `{"exp":1000060,"scope":"produce"}`), "", "principal"},
		{jws(none, `{"sub":"alice","exp":1000060,"scope":"consume"}`), "", "scope"},
		{jws(`{"alg":"HS256"}`, `{"sub":"alice","exp":1000060,"scope":"produce"}`), "", "alg"},
		{jws(none, `{"sub":"alice","exp":1000060,"scope":"produce"}`) + "sig", "", "unsecured JWS"},
		{"abc", "", "unsecured JWS"},
		{"!!.!!.", "", "base64"},
		{jws(none, `{"sub":"alice","exp":1000060,"scope":"produce"}`)[:4] + "\r\n" + jws(none, `{"sub":"alice","exp":1000060,"scope":"produce"}`)[4:], "", "line break"},
	} {
		p, exp, err := v.Validate(tc.token)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.token, err, tc.err)
			}
			continue
		}
		if err != nil || p != tc.principal || exp.IsZero() {
			t.Errorf("%s: %q %v %v", tc.token, p, exp, err)
		}
	}
}

func TestOAuthBearerExchange(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	v, _ := NewUnsecuredJWSValidator("", func() time.Time { return now })
	good := jws(`{"alg":"none"}`, `{"sub":"alice","exp":1000060}`)
	s := NewOAuthBearerServer(v)
	out, done, err := s.Step([]byte("n,,\x01auth=Bearer " + good + "\x01\x01"))
	if err != nil || !done || len(out) != 0 || s.Principal() != "alice" {
		t.Fatalf("good token: %q %v %v %q", out, done, err, s.Principal())
	}
	if exp := s.(*oauthServer).Expires(); !exp.Equal(time.Unix(1000060, 0)) {
		t.Fatalf("expires %v", exp)
	}
	// A refused token: an error challenge, then failure on the client's \x01.
	s = NewOAuthBearerServer(v)
	bad := jws(`{"alg":"none"}`, `{"sub":"alice","exp":10}`)
	out, done, err = s.Step([]byte("n,,\x01auth=Bearer " + bad + "\x01\x01"))
	if err != nil || done || !strings.Contains(string(out), "invalid_token") {
		t.Fatalf("expired token: %q %v %v", out, done, err)
	}
	if _, _, err := s.Step([]byte("\x01")); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("after the error challenge: %v", err)
	}
	// An authzid other than the token's principal is refused.
	s = NewOAuthBearerServer(v)
	if out, _, _ := s.Step([]byte("n,a=bob,\x01auth=Bearer " + good + "\x01\x01")); !strings.Contains(string(out), "invalid_token") {
		t.Fatalf("authzid bob with alice's token: %q", out)
	}
	for _, msg := range []string{"", "n,,auth=Bearer x\x01\x01", "n,,\x01auth=Basic x\x01\x01", "n,,\x01host=h\x01\x01", "n,,\x01auth=Bearer x\x01", "p=x,,\x01auth=Bearer x\x01\x01"} {
		if _, _, err := NewOAuthBearerServer(v).Step([]byte(msg)); !errors.Is(err, ErrIllegalState) {
			t.Errorf("%q: %v, want ErrIllegalState", msg, err)
		}
	}
}

// FuzzOAuthBearer feeds arbitrary client messages: never a panic, and no
// success without a valid unexpired token.
func FuzzOAuthBearer(f *testing.F) {
	now := time.Unix(1_000_000, 0)
	v, _ := NewUnsecuredJWSValidator("", func() time.Time { return now })
	f.Add([]byte("n,,\x01auth=Bearer " + jws(`{"alg":"none"}`, `{"sub":"alice","exp":1000060}`) + "\x01\x01"))
	f.Add([]byte("n,a=x,\x01host=h\x01auth=Bearer a.b.\x01\x01"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var done bool
		var err error
		fuzzbudget.Run(t, len(msg), func() { _, done, err = NewOAuthBearerServer(v).Step(msg) })
		if done && err == nil {
			tok, _, perr := ParseOAuthBearerClientMessage(msg)
			if perr != nil {
				t.Fatalf("accepted an unparseable message %q", msg)
			}
			if _, exp, verr := v.Validate(tok); verr != nil || !exp.After(now) {
				t.Fatalf("accepted a token the validator refuses: %q", msg)
			}
		}
	})
}

// TestUnsecuredLoginToken: the token Kafka's default login handler makes
// from its JAAS options passes Kafka's default validator with the
// configured principal, claims and lifetime; a missing principal, an
// explicit iat or exp, a bad number or extension is a configuration
// error.
func TestUnsecuredLoginToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 250_000_000)
	jaas := `org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required
		unsecuredLoginStringClaim_sub="broker" unsecuredLoginListClaim_scope=",produce,inter.broker"
		unsecuredLoginNumberClaim_level="3" unsecuredLoginLifetimeSeconds="600" unsecuredLoginExtension_traceId="abc";`
	opts, err := ParseJAAS(jaas)
	if err != nil {
		t.Fatal(err)
	}
	tok, ext, err := UnsecuredLoginToken(opts, now)
	if err != nil {
		t.Fatal(err)
	}
	if ext["traceId"] != "abc" || len(ext) != 1 {
		t.Fatalf("extensions %v", ext)
	}
	v, err := NewUnsecuredJWSValidator(`x required unsecuredValidatorRequiredScope="inter.broker";`, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	p, exp, err := v.Validate(tok)
	if err != nil || p != "broker" || !exp.Equal(now.Add(600*time.Second)) {
		t.Fatalf("validated as %q until %v: %v", p, exp, err)
	}
	// Through the whole exchange, as another broker reads it.
	s := NewOAuthBearerServer(v)
	if _, done, err := s.Step([]byte("n,,\x01traceId=abc\x01auth=Bearer " + tok + "\x01\x01")); err != nil || !done || s.Principal() != "broker" {
		t.Fatalf("exchange: %v %v %q", done, err, s.Principal())
	}
	for opt, want := range map[string]string{
		`unsecuredLoginStringClaim_iss="x"`:                                         "no principal",
		`unsecuredLoginStringClaim_sub="a" unsecuredLoginNumberClaim_exp="1"`:       "cannot be set",
		`unsecuredLoginStringClaim_sub="a" unsecuredLoginNumberClaim_n="x"`:         "not a number",
		`unsecuredLoginStringClaim_sub="a" unsecuredLoginLifetimeSeconds="0"`:       "not a positive number",
		`unsecuredLoginStringClaim_sub="a" unsecuredLoginExtension_auth="x"`:        "extension",
		`unsecuredLoginStringClaim_sub="a" unsecuredLoginExtension_a1="x"`:          "extension",
		`unsecuredLoginPrincipalClaimName="user" unsecuredLoginStringClaim_sub="a"`: "unsecuredLoginStringClaim_user",
	} {
		opts, err := ParseJAAS("x required " + opt + ";")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := UnsecuredLoginToken(opts, now); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", opt, err, want)
		}
	}
}
