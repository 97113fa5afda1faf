package security

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MechOAuthBearer is SASL/OAUTHBEARER (RFC 7628, KIP-255).
const MechOAuthBearer = "OAUTHBEARER"

// UnsecuredJWSValidator validates tokens as Kafka's default
// OAUTHBEARER handler (OAuthBearerUnsecuredValidatorCallbackHandler) does:
// an unsigned JWS (header alg "none", empty signature) whose principal
// claim names the user, with an exp claim in the future and an iat claim,
// if present, not in the future (both within the clock skew), and the
// required scopes. It proves nothing about who made the token: use it for
// development only, as Kafka warns.
type UnsecuredJWSValidator struct {
	PrincipalClaim string        // unsecuredValidatorPrincipalClaimName, default "sub"
	ScopeClaim     string        // unsecuredValidatorScopeClaimName, default "scope"
	RequiredScopes []string      // unsecuredValidatorRequiredScope
	ClockSkew      time.Duration // unsecuredValidatorAllowableClockSkewMs
	Now            func() time.Time
}

// NewUnsecuredJWSValidator reads the validator's options from the
// OAUTHBEARER JAAS config (Kafka's option names).
func NewUnsecuredJWSValidator(jaas string, now func() time.Time) (*UnsecuredJWSValidator, error) {
	v := &UnsecuredJWSValidator{PrincipalClaim: "sub", ScopeClaim: "scope", Now: now}
	if jaas != "" {
		opts, err := ParseJAAS(jaas)
		if err != nil {
			return nil, err
		}
		if s := opts["unsecuredValidatorPrincipalClaimName"]; s != "" {
			v.PrincipalClaim = s
		}
		if s := opts["unsecuredValidatorScopeClaimName"]; s != "" {
			v.ScopeClaim = s
		}
		v.RequiredScopes = append(v.RequiredScopes, strings.Fields(strings.ReplaceAll(opts["unsecuredValidatorRequiredScope"], ",", " "))...)
		if s := opts["unsecuredValidatorAllowableClockSkewMs"]; s != "" {
			ms, err := strconv.ParseInt(s, 10, 64)
			if err != nil || ms < 0 {
				return nil, fmt.Errorf("unsecuredValidatorAllowableClockSkewMs=%q is not a non-negative number", s)
			}
			v.ClockSkew = time.Duration(ms) * time.Millisecond
		}
	}
	if v.Now == nil {
		v.Now = time.Now
	}
	return v, nil
}

// Validate checks a compact-serialised unsecured JWS and returns its
// principal and expiry.
func (v *UnsecuredJWSValidator) Validate(token string) (string, time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[2] != "" {
		return "", time.Time{}, fmt.Errorf("not an unsecured JWS (three dot-separated parts, the last empty)")
	}
	var header map[string]any
	if err := decodeJWSPart(parts[0], &header); err != nil {
		return "", time.Time{}, fmt.Errorf("JWS header: %w", err)
	}
	if header["alg"] != "none" {
		return "", time.Time{}, fmt.Errorf("JWS header alg %v, want \"none\"", header["alg"])
	}
	var claims map[string]any
	if err := decodeJWSPart(parts[1], &claims); err != nil {
		return "", time.Time{}, fmt.Errorf("JWS claims: %w", err)
	}
	now := v.Now()
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return "", time.Time{}, fmt.Errorf("no numeric exp claim")
	}
	if !now.Add(-v.ClockSkew).Before(exp) {
		return "", time.Time{}, fmt.Errorf("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if raw, present := claims["iat"]; present {
		iat, ok := numericDate(raw)
		if !ok {
			return "", time.Time{}, fmt.Errorf("iat claim is not a number")
		}
		if iat.After(now.Add(v.ClockSkew)) {
			return "", time.Time{}, fmt.Errorf("token issued in the future (%s)", iat.UTC().Format(time.RFC3339))
		}
	}
	principal, _ := claims[v.PrincipalClaim].(string)
	if strings.TrimSpace(principal) == "" {
		return "", time.Time{}, fmt.Errorf("no %q claim naming the principal", v.PrincipalClaim)
	}
	if len(v.RequiredScopes) > 0 {
		var scopes []string
		switch s := claims[v.ScopeClaim].(type) {
		case string:
			scopes = strings.Fields(s)
		case []any:
			for _, x := range s {
				if str, ok := x.(string); ok {
					scopes = append(scopes, str)
				}
			}
		}
		for _, want := range v.RequiredScopes {
			if !slices.Contains(scopes, want) {
				return "", time.Time{}, fmt.Errorf("required scope %q missing", want)
			}
		}
	}
	return principal, exp, nil
}

func decodeJWSPart(s string, into any) error {
	b, err := decodeBase64(base64.RawURLEncoding, s)
	if err != nil {
		return fmt.Errorf("not base64url: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(into)
}

func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// TokenValidator validates an OAUTHBEARER token, returning the principal
// and when the token expires.
type TokenValidator interface {
	Validate(token string) (principal string, expires time.Time, err error)
}

// NewOAuthBearerServer starts the server side of an OAUTHBEARER exchange.
func NewOAuthBearerServer(v TokenValidator) ServerExchange { return &oauthServer{v: v} }

type oauthServer struct {
	v         TokenValidator
	state     int // 0: want the client's message; 1: sent an error, want its \x01; 2: over
	principal string
	expires   time.Time
	failure   error
}

func (s *oauthServer) Principal() string { return s.principal }

// Expires is when the token stops being valid: the session ends then.
func (s *oauthServer) Expires() time.Time { return s.expires }

func (s *oauthServer) Step(msg []byte) ([]byte, bool, error) {
	switch s.state {
	case 0:
		token, authzid, err := ParseOAuthBearerClientMessage(msg)
		if err != nil {
			s.state = 2
			return nil, false, err
		}
		principal, exp, err := s.v.Validate(token)
		if err == nil && authzid != "" && authzid != principal {
			err = fmt.Errorf("authorization id %q differs from the token's principal %q", authzid, principal)
		}
		if err != nil {
			// RFC 7628 3.2.2: an error JSON as a challenge; the client
			// answers a single \x01, and the exchange fails then.
			s.state, s.failure = 1, err
			return []byte(`{"status":"invalid_token"}`), false, nil
		}
		s.state, s.principal, s.expires = 2, principal, exp
		return nil, true, nil
	case 1:
		s.state = 2
		return nil, false, authFailed("OAUTHBEARER token refused: %v", s.failure)
	}
	return nil, false, illegal("the OAUTHBEARER exchange is over")
}

// ParseOAuthBearerClientMessage parses RFC 7628's client initial response:
// a gs2 header ("n,," or "n,a=<authzid>,"), then \x01-separated key=value
// pairs ending with \x01\x01, one of them auth=Bearer <token>.
func ParseOAuthBearerClientMessage(msg []byte) (token, authzid string, err error) {
	s := string(msg)
	if !strings.HasPrefix(s, "n,") && !strings.HasPrefix(s, "y,") {
		return "", "", illegal("OAUTHBEARER message does not start with a gs2 header")
	}
	authz, rest, ok := strings.Cut(s[2:], ",")
	if !ok {
		return "", "", illegal("OAUTHBEARER gs2 header is not terminated")
	}
	if authz != "" {
		a, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return "", "", illegal("bad authzid in the gs2 header")
		}
		if authzid, err = decodeSaslName(a); err != nil {
			return "", "", err
		}
	}
	if !strings.HasPrefix(rest, "\x01") || !strings.HasSuffix(rest, "\x01\x01") || len(rest) < 3 {
		return "", "", illegal("OAUTHBEARER key-value pairs are not \\x01-separated and \\x01\\x01-terminated")
	}
	for _, kv := range strings.Split(rest[1:len(rest)-2], "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", "", illegal("bad OAUTHBEARER key-value pair")
		}
		if k == "auth" {
			if token != "" {
				return "", "", illegal("two auth values")
			}
			scheme, tok, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
				return "", "", illegal("auth value is not \"Bearer <token>\"")
			}
			token = strings.TrimSpace(tok)
		}
	}
	if token == "" {
		return "", "", illegal("no auth=Bearer <token> in the OAUTHBEARER message")
	}
	return token, authzid, nil
}
