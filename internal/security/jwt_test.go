package security

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/fuzzbudget"
	"github.com/stratalog/strata/internal/security/jwttest"
)

// testKeys are made once: RSA key generation is slow on a loaded machine.
var (
	testKeysOnce sync.Once
	testKeySet   map[string]*jwttest.Key
)

func testKeys(t *testing.T) map[string]*jwttest.Key {
	testKeysOnce.Do(func() { testKeySet = makeTestKeys(t) })
	if testKeySet == nil {
		t.Fatal("test keys were not made")
	}
	return testKeySet
}

func makeTestKeys(t testing.TB) map[string]*jwttest.Key {
	return map[string]*jwttest.Key{
		"rs":  jwttest.NewRSA(t, "rs-1", "RS256"),
		"ps":  jwttest.NewRSA(t, "ps-1", "PS256"),
		"es":  jwttest.NewEC(t, "es-1", "ES256"),
		"es5": jwttest.NewEC(t, "es-5", "ES512"),
		"ed":  jwttest.NewEd25519(t, "ed-1"),
		// Not in the JWKS: signs with a kid the JWKS has.
		"impostor": jwttest.NewRSA(t, "rs-1", "RS256"),
	}
}

type staticKeys []JWK

func (s staticKeys) Keys() []JWK { return s }

func mustKeys(t *testing.T, keys ...*jwttest.Key) staticKeys {
	t.Helper()
	ks, skipped, err := ParseJWKS(jwttest.JWKS(keys...))
	if err != nil || len(skipped) > 0 {
		t.Fatalf("ParseJWKS: %v %v", err, skipped)
	}
	return ks
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestJWTValidator(t *testing.T) {
	k := testKeys(t)
	now := time.Unix(1_700_000_000, 0)
	v, err := NewJWTValidator(JWTValidatorConfig{
		Keys:              mustKeys(t, k["rs"], k["ps"], k["es"], k["es5"], k["ed"]),
		ExpectedAudiences: []string{"strata", "kafka"},
		ExpectedIssuer:    "https://idp.example",
		ClockSkew:         30 * time.Second,
		Now:               func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"sub": "svc-orders", "iss": "https://idp.example", "aud": "strata",
			"iat": now.Unix() - 10, "exp": now.Unix() + 3600, "scope": "produce consume"}
		if edit != nil {
			edit(c)
		}
		return c
	}
	good := k["rs"].Sign(claims(nil), nil)
	hs256 := func() string { // the RSA key's modulus as an HMAC secret: alg confusion
		in := b64json(map[string]any{"alg": "HS256", "kid": "rs-1"}) + "." + b64json(claims(nil))
		m := hmac.New(sha256.New, []byte(k["rs"].JWK()["n"].(string)))
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}()
	tampered := func(tok string) string { // the claims swapped for other claims, signature kept
		p := strings.Split(tok, ".")
		p[1] = b64json(claims(func(c map[string]any) { c["sub"] = "admin" }))
		return strings.Join(p, ".")
	}
	flipSig := func(tok string) string {
		p := strings.Split(tok, ".")
		sig, _ := base64.RawURLEncoding.DecodeString(p[2])
		sig[len(sig)/2] ^= 1
		p[2] = base64.RawURLEncoding.EncodeToString(sig)
		return strings.Join(p, ".")
	}
	for _, tc := range []struct {
		name, token, principal, err string
	}{
		{"RS256", good, "svc-orders", ""},
		{"PS256", k["ps"].Sign(claims(nil), nil), "svc-orders", ""},
		{"ES256", k["es"].Sign(claims(nil), nil), "svc-orders", ""},
		{"ES512", k["es5"].Sign(claims(nil), nil), "svc-orders", ""},
		{"EdDSA", k["ed"].Sign(claims(nil), nil), "svc-orders", ""},
		{"audience array", k["es"].Sign(claims(func(c map[string]any) { c["aud"] = []string{"x", "kafka"} }), nil), "svc-orders", ""},
		{"expired within the skew", k["es"].Sign(claims(func(c map[string]any) { c["exp"] = now.Unix() - 20 }), nil), "svc-orders", ""},
		{"scope array", k["es"].Sign(claims(func(c map[string]any) { c["scope"] = []string{"a", "b"} }), nil), "svc-orders", ""},

		{"wrong signature", flipSig(good), "", "verification error"},
		{"wrong signature ES256", flipSig(k["es"].Sign(claims(nil), nil)), "", "does not verify"},
		{"claims changed", tampered(good), "", "verification error"},
		{"signed by another key with a known kid", k["impostor"].Sign(claims(nil), nil), "", "verification error"},
		{"expired", k["rs"].Sign(claims(func(c map[string]any) { c["exp"] = now.Unix() - 31 }), nil), "", "expired"},
		{"no exp", k["rs"].Sign(claims(func(c map[string]any) { delete(c, "exp") }), nil), "", "no exp"},
		{"exp as a string", k["rs"].Sign(claims(func(c map[string]any) { c["exp"] = "9999999999" }), nil), "", "not a number"},
		{"no iat", k["rs"].Sign(claims(func(c map[string]any) { delete(c, "iat") }), nil), "", "no iat"},
		{"iat in the future", k["rs"].Sign(claims(func(c map[string]any) { c["iat"] = now.Unix() + 60 }), nil), "", "future"},
		{"nbf in the future", k["rs"].Sign(claims(func(c map[string]any) { c["nbf"] = now.Unix() + 60 }), nil), "", "not valid before"},
		{"wrong audience", k["rs"].Sign(claims(func(c map[string]any) { c["aud"] = "billing" }), nil), "", "audience"},
		{"no audience", k["rs"].Sign(claims(func(c map[string]any) { delete(c, "aud") }), nil), "", "no aud"},
		{"wrong issuer", k["rs"].Sign(claims(func(c map[string]any) { c["iss"] = "https://evil.example" }), nil), "", "issuer"},
		{"no subject", k["rs"].Sign(claims(func(c map[string]any) { c["sub"] = "  " }), nil), "", "principal"},
		{"duplicate scope", k["rs"].Sign(claims(func(c map[string]any) { c["scope"] = []string{"a", "a"} }), nil), "", "twice"},
		{"unknown kid", k["rs"].Sign(claims(nil), map[string]any{"kid": "rs-2"}), "", "no key with kid"},
		{"kid of a key of another type", k["rs"].Sign(claims(nil), map[string]any{"kid": "es-1"}), "", "does not verify RS256"},
		{"alg none", b64json(map[string]any{"alg": "none", "kid": "rs-1"}) + "." + b64json(claims(nil)) + ".", "", "not accepted"},
		{"alg none with the RS256 signature", b64json(map[string]any{"alg": "none"}) + "." + strings.SplitN(good, ".", 2)[1], "", "not accepted"},
		{"HS256 with the public key as secret", hs256, "", "not accepted"},
		{"crit header", k["rs"].Sign(claims(nil), map[string]any{"crit": []string{"exp"}}), "", "crit"},
		{"JWE", "a.b.c.d.e", "", "JWE"},
		{"two parts", "a.b", "", "3"},
		{"padding in the header", strings.Replace(good, ".", "=.", 1), "", "base64"},
		// The right signature with a line break in it would decode to the
		// same bytes (Go's base64 decoders skip CR and LF).
		{"CR in the signature", good[:len(good)-4] + "\r" + good[len(good)-4:], "", "line break"},
		{"LF in the header", "\n" + good, "", "line break"},
		{"duplicate claim", b64json(map[string]any{"alg": "RS256"}) + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"a","sub":"b"}`)) + ".AA", "", "twice"},
		{"claims not an object", b64json(map[string]any{"alg": "RS256"}) + "." + b64json([]int{1}) + ".AA", "", "not a JSON object"},
	} {
		p, exp, err := v.Validate(tc.token)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || p != tc.principal || exp.IsZero() {
			t.Errorf("%s: %q %v %v", tc.name, p, exp, err)
		}
	}

	// Without an expected audience, a token with aud is refused (jose4j)
	// and one without is accepted; sub.claim.name picks the principal.
	v2, _ := NewJWTValidator(JWTValidatorConfig{Keys: mustKeys(t, k["es"]), SubClaim: "client_id", Now: func() time.Time { return now }})
	if _, _, err := v2.Validate(k["es"].Sign(claims(nil), nil)); err == nil || !strings.Contains(err.Error(), "no audience is expected") {
		t.Errorf("aud without expected audience: %v", err)
	}
	noAud := k["es"].Sign(claims(func(c map[string]any) { delete(c, "aud"); c["client_id"] = "orders-app" }), nil)
	if p, _, err := v2.Validate(noAud); err != nil || p != "orders-app" {
		t.Errorf("client_id principal: %q %v", p, err)
	}
	// No kid: the only key that fits; with two that fit, refused.
	noKid := k["es"].Sign(claims(func(c map[string]any) { delete(c, "aud"); c["client_id"] = "orders-app" }), map[string]any{"kid": nil})
	if p, _, err := v2.Validate(noKid); err != nil || p != "orders-app" {
		t.Errorf("no kid, one ES256 key: %q %v", p, err)
	}
	v3, _ := NewJWTValidator(JWTValidatorConfig{Keys: mustKeys(t, k["rs"], k["ps"]), Now: func() time.Time { return now }})
	rsNoKid := k["rs"].Sign(claims(func(c map[string]any) { delete(c, "aud") }), map[string]any{"kid": nil})
	if _, _, err := v3.Validate(rsNoKid); err != nil {
		t.Errorf("no kid, one RS256 key: %v", err) // the PS256 key's alg excludes it
	}
	v4, _ := NewJWTValidator(JWTValidatorConfig{Keys: mustKeys(t, k["rs"], k["impostor"]), Now: func() time.Time { return now }})
	if _, _, err := v4.Validate(rsNoKid); err == nil || !strings.Contains(err.Error(), "2 JWKS keys") {
		t.Errorf("no kid, two RS256 keys: %v", err)
	}
}

func TestParseJWKS(t *testing.T) {
	k := testKeys(t)
	ks, skipped, err := ParseJWKS([]byte(`{"keys":[
		{"kty":"oct","kid":"h","k":"c2VjcmV0"},
		{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
		{"kty":"RSA","kid":"small","n":"` + strings.Repeat("A", 170) + `","e":"AQAB"},
		{"kty":"EC","kid":"k1","crv":"secp256k1","x":"AA","y":"AA"},
		{"kty":"RSA","kid":"mismatch","alg":"ES256","n":"` + k["rs"].JWK()["n"].(string) + `","e":"AQAB"},
		` + string(mustJSON(k["es"].JWK())) + `]}`))
	if err != nil || len(ks) != 1 || ks[0].Kid != "es-1" || len(skipped) != 5 {
		t.Fatalf("keys %+v skipped %q err %v", ks, skipped, err)
	}
	for _, bad := range []string{
		`[]`, `{}`, `{"keys":[1]}`, `{"keys":[]} {}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`,                                                                        // wrong size
		`{"keys":[{"kty":"EC","crv":"P-256","x":"` + strings.Repeat("A", 43) + `","y":"` + strings.Repeat("A", 43) + `"}]}`,                  // not on the curve
		`{"keys":[{"kty":"RSA","n":"` + k["rs"].JWK()["n"].(string) + `","e":"AAE"}]}`,                                                       // e=1
		`{"keys":[{"kty":"EC","crv":"P-256","x":"` + k["es"].JWK()["x"].(string) + `","y":"` + k["es"].JWK()["y"].(string) + `","d":"AA"}]}`, // private
	} {
		if _, _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestJWKSFileReload: a rotated key set is used after ReloadCheck; a
// broken or deleted file keeps the keys loaded before.
func TestJWKSFileReload(t *testing.T) {
	k := testKeys(t)
	dir := t.TempDir()
	path := jwttest.WriteJWKS(t, dir, "jwks.json", k["es"])
	now := time.Unix(1_700_000_000, 0)
	f, err := NewJWKSFile(path, time.Second, func() time.Time { return now }, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewJWTValidator(JWTValidatorConfig{Keys: f, Now: func() time.Time { return now }})
	c := map[string]any{"sub": "a", "iat": now.Unix(), "exp": now.Unix() + 60}
	edTok := k["ed"].Sign(c, nil)
	if _, _, err := v.Validate(edTok); err == nil || !strings.Contains(err.Error(), "no key with kid") {
		t.Fatalf("ed-1 before rotation: %v", err)
	}
	jwttest.WriteJWKS(t, dir, "jwks.json", k["es"], k["ed"])
	if _, _, err := v.Validate(edTok); err == nil {
		t.Fatal("the file was read again before ReloadCheck passed")
	}
	now = now.Add(time.Second)
	if _, _, err := v.Validate(edTok); err != nil {
		t.Fatalf("ed-1 after rotation: %v", err)
	}
	for _, broken := range []func(){
		func() { os.WriteFile(path, []byte(`{"keys":[`), 0o600) },
		func() { os.WriteFile(path, []byte(`{"keys":[]}`), 0o600) },
		func() { os.Remove(path) },
	} {
		broken()
		now = now.Add(time.Second)
		if _, _, err := v.Validate(edTok); err != nil {
			t.Fatalf("after a broken file: %v", err)
		}
	}
	if _, err := NewJWKSFile(filepath.Join(dir, "missing.json"), 0, nil, nil); err == nil {
		t.Fatal("a missing file loaded")
	}
	os.WriteFile(path, []byte(`{"keys":[{"kty":"oct","k":"AA"}]}`), 0o600)
	if _, err := NewJWKSFile(path, 0, nil, nil); err == nil || !strings.Contains(err.Error(), "no RSA") {
		t.Fatalf("a set without a usable key: %v", err)
	}
}

// FuzzJWS feeds arbitrary tokens to the signed-JWT validator: never a
// panic, each within the CPU budget, and no token accepted whose signed
// part (header.claims) is not one a JWKS key signed: a fuzzer cannot sign.
func FuzzJWS(f *testing.F) {
	k := makeTestKeys(f)
	ks, _, err := ParseJWKS(jwttest.JWKS(k["rs"], k["ps"], k["es"], k["es5"], k["ed"]))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	v, err := NewJWTValidator(JWTValidatorConfig{Keys: staticKeys(ks), ExpectedAudiences: []string{"strata"}, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	claims := map[string]any{"sub": "svc", "aud": "strata", "iat": now.Unix(), "exp": now.Unix() + 60, "scope": []string{"a"}}
	signed := map[string]bool{}
	for _, name := range []string{"rs", "ps", "es", "es5", "ed", "impostor"} {
		tok := k[name].Sign(claims, nil)
		if name != "impostor" {
			signed[tok[:strings.LastIndexByte(tok, '.')]] = true
		}
		f.Add(tok)
	}
	noKid := k["es"].Sign(claims, map[string]any{"kid": nil})
	signed[noKid[:strings.LastIndexByte(noKid, '.')]] = true
	f.Add(noKid)
	f.Add(b64json(map[string]any{"alg": "none"}) + "." + b64json(claims) + ".")
	f.Add(b64json(map[string]any{"alg": "ES256", "kid": "es-1", "crit": []string{"x"}}) + "." + b64json(claims) + ".AAAA")
	f.Add("a.b.c.d.e")
	f.Fuzz(func(t *testing.T, token string) {
		var p string
		var err error
		fuzzbudget.Run(t, len(token), func() { p, _, err = v.Validate(token) })
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(token, '.'); i < 0 || !signed[token[:i]] || p != "svc" {
			t.Fatalf("accepted a token nobody signed: %q (principal %q)", token, p)
		}
	})
}

// FuzzJWKS feeds arbitrary key sets to ParseJWKS: never a panic, within
// the budget, and every key it returns can verify some algorithm.
func FuzzJWKS(f *testing.F) {
	k := makeTestKeys(f)
	f.Add(jwttest.JWKS(k["rs"], k["es"], k["es5"], k["ed"]))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AA"},{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","d":"AA"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var keys []JWK
		var err error
		fuzzbudget.Run(t, len(data), func() { keys, _, err = ParseJWKS(data) })
		if err != nil {
			return
		}
		for _, key := range keys {
			fits := false
			for alg := range jwsAlgs {
				fits = fits || algFitsKey(alg, key)
			}
			if key.Key == nil || !fits || (key.Alg != "" && !algFitsKey(key.Alg, key)) {
				t.Fatalf("unusable key returned: %+v from %q", key, data)
			}
		}
	})
}
