package security

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	_ "crypto/sha256" // SHA-256 for RS256, PS256, ES256
	_ "crypto/sha512" // SHA-384 and SHA-512
)

// JWTValidatorConfig is Kafka's OAuthBearerValidatorCallbackHandler
// (KIP-768) configuration.
type JWTValidatorConfig struct {
	// Keys are the verification keys (sasl.oauthbearer.jwks.endpoint.url:
	// a JWKSFile or a JWKSEndpoint). If Keys has a KeyMissing(kid) method,
	// it is called when a token names a kid the set does not have.
	Keys interface{ Keys() []JWK }
	// ExpectedAudiences (sasl.oauthbearer.expected.audience): when set, the
	// token's aud must name one of them; when empty, a token with an aud
	// claim is refused (jose4j's default, and RFC 7519 4.1.3).
	ExpectedAudiences []string
	// ExpectedIssuer (sasl.oauthbearer.expected.issuer): when set, iss must
	// equal it.
	ExpectedIssuer string
	// SubClaim names the principal's claim (sasl.oauthbearer.sub.claim.name,
	// default "sub"); ScopeClaim the scopes' (sasl.oauthbearer.scope.claim.name,
	// default "scope").
	SubClaim, ScopeClaim string
	// ClockSkew is sasl.oauthbearer.clock.skew.seconds (Kafka's default 30 s).
	ClockSkew time.Duration
	Now       func() time.Time
}

// JWTValidator validates signed JWTs (RFC 7519, compact JWS of RFC 7515)
// as Kafka's broker-side OAuthBearerValidatorCallbackHandler does with
// jose4j: a signature by a key of the JWKS (RS256/384/512,
// PS256/384/512, ES256/384/512, EdDSA with Ed25519; never "none" or a
// symmetric algorithm), exp and iat present, exp not passed and nbf
// reached (within the clock skew), the audience and issuer when
// configured, a non-blank principal claim, and well-formed scopes.
type JWTValidator struct {
	cfg JWTValidatorConfig
}

// NewJWTValidator applies Kafka's defaults to cfg.
func NewJWTValidator(cfg JWTValidatorConfig) (*JWTValidator, error) {
	if cfg.Keys == nil {
		return nil, errors.New("a JWT validator needs a key set")
	}
	if strings.TrimSpace(cfg.SubClaim) == "" {
		cfg.SubClaim = "sub"
	}
	if strings.TrimSpace(cfg.ScopeClaim) == "" {
		cfg.ScopeClaim = "scope"
	}
	cfg.SubClaim, cfg.ScopeClaim = strings.TrimSpace(cfg.SubClaim), strings.TrimSpace(cfg.ScopeClaim)
	if cfg.ClockSkew < 0 {
		return nil, fmt.Errorf("clock skew %v is negative", cfg.ClockSkew)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &JWTValidator{cfg: cfg}, nil
}

// JWS is a parsed compact JWS: its protected header and payload
// members (each a top-level JSON object, duplicate names refused) and
// what the signature covers.
type JWS struct {
	Alg, Kid     string
	Header       map[string]json.RawMessage
	Claims       map[string]json.RawMessage
	SigningInput []byte
	Signature    []byte
}

// ParseJWS splits and decodes a compact JWS (header.payload.signature,
// each base64url without padding). It checks the form only: no key, no
// claim. A JWE (five parts), an unencoded payload (b64=false) or a
// critical header extension is refused, as none is supported.
func ParseJWS(token string) (*JWS, error) {
	parts := strings.Split(token, ".")
	switch len(parts) {
	case 3:
	case 5:
		return nil, errors.New("the token is a JWE (encrypted); only signed JWTs are accepted")
	default:
		return nil, fmt.Errorf("the token has %d dot-separated parts, a JWS has 3", len(parts))
	}
	j := &JWS{SigningInput: []byte(parts[0] + "." + parts[1])}
	var err error
	if j.Header, err = jsonObjectPart("header", parts[0]); err != nil {
		return nil, err
	}
	if j.Claims, err = jsonObjectPart("claims", parts[1]); err != nil {
		return nil, err
	}
	if j.Signature, err = decodeBase64(base64.RawURLEncoding.Strict(), parts[2]); err != nil {
		return nil, fmt.Errorf("JWS signature is not base64url: %w", err)
	}
	if err := stringMember(j.Header, "alg", &j.Alg); err != nil {
		return nil, fmt.Errorf("JWS header: %w", err)
	}
	if j.Alg == "" {
		return nil, errors.New("JWS header has no alg")
	}
	if err := stringMember(j.Header, "kid", &j.Kid); err != nil {
		return nil, fmt.Errorf("JWS header: %w", err)
	}
	if _, ok := j.Header["crit"]; ok {
		return nil, errors.New("JWS header has crit extensions, none of which is supported")
	}
	if _, ok := j.Header["b64"]; ok {
		return nil, errors.New("JWS header has b64 (RFC 7797), which is not supported")
	}
	return j, nil
}

// jsonObjectPart decodes a base64url JSON object, refusing duplicate
// member names (jose4j does too: two parsers could otherwise read two
// different tokens).
func jsonObjectPart(what, s string) (map[string]json.RawMessage, error) {
	b, err := decodeBase64(base64.RawURLEncoding.Strict(), s)
	if err != nil {
		return nil, fmt.Errorf("JWS %s is not base64url: %w", what, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("JWS %s is not a JSON object", what)
	}
	m := map[string]json.RawMessage{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("JWS %s: %w", what, err)
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("JWS %s member %q: %w", what, name, err)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("JWS %s has member %q twice", what, name)
		}
		m[name] = v
	}
	if _, err := d.Token(); err != nil {
		return nil, fmt.Errorf("JWS %s: %w", what, err)
	}
	if _, err := d.Token(); err == nil {
		return nil, fmt.Errorf("JWS %s has data after its JSON object", what)
	}
	return m, nil
}

// stringMember reads an optional string member; present but not a string
// is an error.
func stringMember(m map[string]json.RawMessage, name string, into *string) error {
	raw, ok := m[name]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("member %s is not a string", name)
	}
	return nil
}

// jwsAlg is a signature algorithm of RFC 7518 (and RFC 8037's EdDSA).
type jwsAlg struct {
	kty  string
	hash crypto.Hash
	pss  bool
	crv  string // EC and OKP: the key's curve
}

var jwsAlgs = map[string]jwsAlg{
	"RS256": {kty: "RSA", hash: crypto.SHA256}, "RS384": {kty: "RSA", hash: crypto.SHA384}, "RS512": {kty: "RSA", hash: crypto.SHA512},
	"PS256": {kty: "RSA", hash: crypto.SHA256, pss: true}, "PS384": {kty: "RSA", hash: crypto.SHA384, pss: true}, "PS512": {kty: "RSA", hash: crypto.SHA512, pss: true},
	"ES256": {kty: "EC", hash: crypto.SHA256, crv: "P-256"}, "ES384": {kty: "EC", hash: crypto.SHA384, crv: "P-384"}, "ES512": {kty: "EC", hash: crypto.SHA512, crv: "P-521"},
	"EdDSA": {kty: "OKP", crv: "Ed25519"},
}

// algFitsKey: can key verify alg's signatures?
func algFitsKey(alg string, k JWK) bool {
	a, ok := jwsAlgs[alg]
	return ok && a.kty == k.Kty && (a.crv == "" || a.crv == k.Crv)
}

// verify checks sig over input with key under alg (which fits the key).
func verifyJWS(alg string, key crypto.PublicKey, input, sig []byte) error {
	a := jwsAlgs[alg]
	if a.kty == "OKP" {
		pub, ok := key.(ed25519.PublicKey)
		if !ok || len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("key of type %T for EdDSA", key)
		}
		if !ed25519.Verify(pub, input, sig) {
			return errors.New("EdDSA signature does not verify")
		}
		return nil
	}
	h := a.hash.New()
	h.Write(input)
	digest := h.Sum(nil)
	switch pub := key.(type) {
	case *rsa.PublicKey:
		if a.pss {
			return rsa.VerifyPSS(pub, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.VerifyPKCS1v15(pub, a.hash, digest, sig)
	case *ecdsa.PublicKey:
		// RFC 7518 3.4: R and S, each the curve's size, concatenated.
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("%s signature of %d bytes, want %d", alg, len(sig), 2*size)
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(pub, digest, r, s) {
			return fmt.Errorf("%s signature does not verify", alg)
		}
		return nil
	}
	return fmt.Errorf("key of type %T for %s", key, alg)
}

// key picks the JWKS key for j: the one with j's kid (an unknown kid is
// refused), or, without a kid, the only key that fits the algorithm.
func (v *JWTValidator) key(j *JWS) (JWK, error) {
	var fit []JWK
	kidKnown := false
	for _, k := range v.cfg.Keys.Keys() {
		if j.Kid != "" && k.Kid != j.Kid {
			continue
		}
		kidKnown = true
		if (k.Alg == "" || k.Alg == j.Alg) && algFitsKey(j.Alg, k) {
			fit = append(fit, k)
		}
	}
	switch {
	case j.Kid != "" && !kidKnown:
		// A key set fetched from an identity provider may be behind a
		// rotation: tell it, so that it fetches again (rate-limited).
		if m, ok := v.cfg.Keys.(interface{ KeyMissing(kid string) }); ok {
			m.KeyMissing(j.Kid)
		}
		return JWK{}, fmt.Errorf("no key with kid %q in the JWKS", j.Kid)
	case len(fit) == 0 && j.Kid != "":
		return JWK{}, fmt.Errorf("the JWKS key with kid %q does not verify %s", j.Kid, j.Alg)
	case len(fit) == 0:
		return JWK{}, fmt.Errorf("no JWKS key verifies %s", j.Alg)
	case len(fit) > 1:
		return JWK{}, fmt.Errorf("%d JWKS keys fit %s (kid %q): the token must name one with a distinct kid", len(fit), j.Alg, j.Kid)
	}
	return fit[0], nil
}

// Validate checks a signed JWT and returns its principal and expiry.
func (v *JWTValidator) Validate(token string) (string, time.Time, error) {
	j, err := ParseJWS(token)
	if err != nil {
		return "", time.Time{}, err
	}
	if _, ok := jwsAlgs[j.Alg]; !ok {
		return "", time.Time{}, fmt.Errorf("JWS alg %q is not accepted (RS*, PS*, ES*, EdDSA)", j.Alg)
	}
	k, err := v.key(j)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := verifyJWS(j.Alg, k.Key, j.SigningInput, j.Signature); err != nil {
		return "", time.Time{}, fmt.Errorf("signature (kid %q, %s): %w", k.Kid, j.Alg, err)
	}
	return v.checkClaims(j.Claims)
}

// checkClaims applies the claim rules to a verified token's claims.
func (v *JWTValidator) checkClaims(c map[string]json.RawMessage) (string, time.Time, error) {
	now, skew := v.cfg.Now(), v.cfg.ClockSkew
	date := func(name string, required bool) (time.Time, bool, error) {
		raw, ok := c[name]
		if !ok {
			if required {
				return time.Time{}, false, fmt.Errorf("no %s claim", name)
			}
			return time.Time{}, false, nil
		}
		var n json.Number
		if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
			return time.Time{}, false, fmt.Errorf("%s claim is not a number", name)
		}
		t, ok := numericDate(n)
		if !ok {
			return time.Time{}, false, fmt.Errorf("%s claim %s is not a date", name, n)
		}
		return t, true, nil
	}
	exp, _, err := date("exp", true)
	if err != nil {
		return "", time.Time{}, err
	}
	if !now.Add(-skew).Before(exp) {
		return "", time.Time{}, fmt.Errorf("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	iat, _, err := date("iat", true)
	if err != nil {
		return "", time.Time{}, err
	}
	if iat.After(now.Add(skew)) {
		return "", time.Time{}, fmt.Errorf("token issued in the future (%s)", iat.UTC().Format(time.RFC3339))
	}
	if nbf, ok, err := date("nbf", false); err != nil {
		return "", time.Time{}, err
	} else if ok && nbf.After(now.Add(skew)) {
		return "", time.Time{}, fmt.Errorf("token not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	if err := v.checkAudience(c); err != nil {
		return "", time.Time{}, err
	}
	if v.cfg.ExpectedIssuer != "" {
		var iss string
		if err := stringMember(c, "iss", &iss); err != nil {
			return "", time.Time{}, err
		}
		if iss != v.cfg.ExpectedIssuer {
			return "", time.Time{}, fmt.Errorf("issuer %q, want %q", iss, v.cfg.ExpectedIssuer)
		}
	}
	var sub string
	if err := stringMember(c, v.cfg.SubClaim, &sub); err != nil {
		return "", time.Time{}, err
	}
	if sub = strings.TrimSpace(sub); sub == "" {
		return "", time.Time{}, fmt.Errorf("no %q claim naming the principal", v.cfg.SubClaim)
	}
	if _, err := scopes(c, v.cfg.ScopeClaim); err != nil {
		return "", time.Time{}, err
	}
	return sub, exp, nil
}

// checkAudience: with expected audiences, aud (a string or an array of
// strings) must name one; without, a token with an aud is refused, as
// jose4j refuses it when Kafka sets no expected audience.
func (v *JWTValidator) checkAudience(c map[string]json.RawMessage) error {
	raw, ok := c["aud"]
	if !ok {
		if len(v.cfg.ExpectedAudiences) > 0 {
			return errors.New("no aud claim, and an audience is expected")
		}
		return nil
	}
	var auds []string
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		auds = []string{one}
	} else if err := json.Unmarshal(raw, &auds); err != nil {
		return errors.New("aud claim is neither a string nor an array of strings")
	}
	if len(v.cfg.ExpectedAudiences) == 0 {
		return fmt.Errorf("token has audience %q but no audience is expected (set sasl.oauthbearer.expected.audience)", auds)
	}
	for _, a := range auds {
		if slices.Contains(v.cfg.ExpectedAudiences, a) {
			return nil
		}
	}
	return fmt.Errorf("audience %q is not one of %q", auds, v.cfg.ExpectedAudiences)
}

// scopes reads the scope claim as Kafka does: absent is none, a string is
// one scope, an array of strings is a set; a blank or repeated scope is an
// error.
func scopes(c map[string]json.RawMessage, claim string) ([]string, error) {
	raw, ok := c[claim]
	if !ok {
		return nil, nil
	}
	var list []string
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		list = []string{one}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s claim is neither a string nor an array of strings", claim)
	}
	seen := map[string]bool{}
	for i, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("%s claim has a blank scope", claim)
		}
		if seen[s] {
			return nil, fmt.Errorf("%s claim has %q twice", claim, s)
		}
		seen[s], list[i] = true, s
	}
	return list, nil
}
