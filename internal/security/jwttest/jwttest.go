package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math/big"
	"os"
	"path/filepath"
	"testing"
)

var b64 = base64.RawURLEncoding.EncodeToString

// Key is a signing key with its JWK id and algorithm.
type Key struct {
	Kid    string
	Alg    string // RS256, PS256, ES256, ES384, EdDSA...
	Signer crypto.Signer
}

// NewRSA makes a 2048-bit RSA key for alg (RS* or PS*).
func NewRSA(t testing.TB, kid, alg string) *Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Kid: kid, Alg: alg, Signer: k}
}

// NewEC makes an ECDSA key for alg: ES256 (P-256), ES384, ES512 (P-521).
func NewEC(t testing.TB, kid, alg string) *Key {
	t.Helper()
	curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
	if curve == nil {
		t.Fatalf("no curve for %s", alg)
	}
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Kid: kid, Alg: alg, Signer: k}
}

// NewEd25519 makes an EdDSA key.
func NewEd25519(t testing.TB, kid string) *Key {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Kid: kid, Alg: "EdDSA", Signer: k}
}

// JWK is the key's public JWK, with kid, alg and use=sig.
func (k *Key) JWK() map[string]any {
	m := map[string]any{"kid": k.Kid, "alg": k.Alg, "use": "sig"}
	switch pub := k.Signer.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		raw, err := pub.Bytes()
		if err != nil {
			panic(err)
		}
		m["kty"], m["crv"], m["x"], m["y"] = "EC", pub.Curve.Params().Name, b64(raw[1:1+size]), b64(raw[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(pub)
	}
	return m
}

// JWKS is the JSON key set of keys.
func JWKS(keys ...*Key) []byte {
	set := struct {
		Keys []map[string]any `json:"keys"`
	}{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.JWK())
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

// WriteJWKS writes the key set to dir/name and returns its path.
func WriteJWKS(t testing.TB, dir, name string, keys ...*Key) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, JWKS(keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Sign returns header.claims.signature with the key's alg and kid in the
// header (plus extra header members) and claims as given.
func (k *Key) Sign(claims map[string]any, extraHeader map[string]any) string {
	h := map[string]any{"alg": k.Alg, "typ": "JWT", "kid": k.Kid}
	for n, v := range extraHeader {
		if v == nil {
			delete(h, n)
		} else {
			h[n] = v
		}
	}
	hb, err := json.Marshal(h)
	if err != nil {
		panic(err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	input := b64(hb) + "." + b64(cb)
	return input + "." + b64(k.SignInput([]byte(input)))
}

// SignInput signs the JWS signing input as the key's alg says (raw R||S
// for ECDSA, as RFC 7518 wants).
func (k *Key) SignInput(input []byte) []byte {
	if k.Alg == "EdDSA" {
		return ed25519.Sign(k.Signer.(ed25519.PrivateKey), input)
	}
	var h hash.Hash
	var ch crypto.Hash
	switch k.Alg[2:] {
	case "256":
		h, ch = sha256.New(), crypto.SHA256
	case "384":
		h, ch = sha512.New384(), crypto.SHA384
	case "512":
		h, ch = sha512.New(), crypto.SHA512
	default:
		panic(fmt.Sprintf("alg %s", k.Alg))
	}
	h.Write(input)
	digest := h.Sum(nil)
	switch key := k.Signer.(type) {
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if k.Alg[0] == 'P' {
			sig, err = rsa.SignPSS(rand.Reader, key, ch, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, key, ch, digest)
		}
		if err != nil {
			panic(err)
		}
		return sig
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, key, digest)
		if err != nil {
			panic(err)
		}
		size := (key.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	}
	panic(fmt.Sprintf("key %T", k.Signer))
}
