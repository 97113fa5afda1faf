package security

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"slices"
	"sync"
	"time"
)

// MaxJWKSSize bounds the JWKS file read into memory.
const MaxJWKSSize = 1 << 20

// RSA modulus bounds: jose4j (Kafka's JOSE library) refuses RSA keys
// below 2048 bits; above 16384 bits a verification costs too much CPU
// for a key nobody uses.
const (
	minRSABits = 2048
	maxRSABits = 16384
)

// JWK is one usable verification key of a JSON Web Key Set (RFC 7517).
type JWK struct {
	Kid string // "kid"; may be empty
	Alg string // "alg"; empty: any algorithm of the key's type
	Kty string // "RSA", "EC" or "OKP"
	Crv string // the curve of an EC or OKP key
	Key crypto.PublicKey
}

// jwkJSON is a key's members as RFC 7517/7518 name them.
type jwkJSON struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Alg    string   `json:"alg"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	D      string   `json:"d"`
}

// ParseJWKS reads a JWK Set ({"keys":[...]}) and returns its verification
// keys. A key Strata cannot verify with (a symmetric or encryption key, an
// unknown type or curve, an RSA key under 2048 bits, one that carries a
// private part) is left out and named in skipped, as jose4j ignores keys
// it does not support; malformed JSON or a malformed member of a supported
// key is an error.
func ParseJWKS(data []byte) (keys []JWK, skipped []string, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&set); err != nil {
		return nil, nil, fmt.Errorf("JWKS is not a JSON object: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, nil, errors.New("JWKS has data after its JSON object")
	}
	if set.Keys == nil {
		return nil, nil, errors.New(`JWKS has no "keys" array`)
	}
	for i, raw := range set.Keys {
		var j jwkJSON
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, nil, fmt.Errorf("JWKS key %d: %w", i, err)
		}
		name := fmt.Sprintf("key %d (kid %q)", i, j.Kid)
		if j.Use != "" && j.Use != "sig" {
			skipped = append(skipped, name+": use "+j.Use)
			continue
		}
		if j.KeyOps != nil && !slices.Contains(j.KeyOps, "verify") {
			skipped = append(skipped, name+": key_ops without verify")
			continue
		}
		if j.D != "" {
			// A private key published as a verification key is a
			// configuration mistake worth refusing outright.
			return nil, nil, fmt.Errorf("JWKS %s holds a private key (member d): publish public keys only", name)
		}
		k := JWK{Kid: j.Kid, Alg: j.Alg, Kty: j.Kty, Crv: j.Crv}
		switch j.Kty {
		case "RSA":
			k.Key, err = rsaJWK(j)
		case "EC":
			k.Key, err = ecJWK(j)
		case "OKP":
			k.Key, err = okpJWK(j)
		default:
			skipped = append(skipped, name+": kty "+j.Kty)
			continue
		}
		if errors.Is(err, errUnsupportedKey) {
			skipped = append(skipped, name+": "+err.Error())
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("JWKS %s: %w", name, err)
		}
		if k.Alg != "" && !algFitsKey(k.Alg, k) {
			skipped = append(skipped, name+": alg "+k.Alg+" does not fit a "+k.Kty+" key")
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

var errUnsupportedKey = errors.New("unsupported key")

func b64Member(name, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("member %s is missing", name)
	}
	b, err := decodeBase64(base64.RawURLEncoding.Strict(), s)
	if err != nil {
		return nil, fmt.Errorf("member %s is not base64url: %w", name, err)
	}
	return b, nil
}

func rsaJWK(j jwkJSON) (crypto.PublicKey, error) {
	n, err := b64Member("n", j.N)
	if err != nil {
		return nil, err
	}
	e, err := b64Member("e", j.E)
	if err != nil {
		return nil, err
	}
	if len(e) > 4 {
		return nil, errors.New("exponent e is longer than 4 bytes")
	}
	var exp int
	for _, c := range e {
		exp = exp<<8 | int(c)
	}
	if exp < 3 || exp%2 == 0 {
		return nil, fmt.Errorf("exponent e=%d is not an odd number above 2", exp)
	}
	mod := new(big.Int).SetBytes(n)
	if bits := mod.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("%w: RSA modulus of %d bits (want %d to %d)", errUnsupportedKey, bits, minRSABits, maxRSABits)
	}
	return &rsa.PublicKey{N: mod, E: exp}, nil
}

// ecCurve is a JOSE curve name's curve, its coordinate size and its
// signature algorithm.
func ecCurve(crv string) (elliptic.Curve, int, string, bool) {
	switch crv {
	case "P-256":
		return elliptic.P256(), 32, "ES256", true
	case "P-384":
		return elliptic.P384(), 48, "ES384", true
	case "P-521":
		return elliptic.P521(), 66, "ES512", true
	}
	return nil, 0, "", false
}

func ecJWK(j jwkJSON) (crypto.PublicKey, error) {
	curve, size, _, ok := ecCurve(j.Crv)
	if !ok {
		return nil, fmt.Errorf("%w: EC curve %q", errUnsupportedKey, j.Crv)
	}
	x, err := b64Member("x", j.X)
	if err != nil {
		return nil, err
	}
	y, err := b64Member("y", j.Y)
	if err != nil {
		return nil, err
	}
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("%s coordinates of %d and %d bytes, want %d", j.Crv, len(x), len(y), size)
	}
	// ParseUncompressedPublicKey checks that the point is on the curve.
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, slices.Concat([]byte{4}, x, y))
	if err != nil {
		return nil, fmt.Errorf("%s point: %w", j.Crv, err)
	}
	return pub, nil
}

func okpJWK(j jwkJSON) (crypto.PublicKey, error) {
	if j.Crv != "Ed25519" {
		return nil, fmt.Errorf("%w: OKP curve %q", errUnsupportedKey, j.Crv)
	}
	x, err := b64Member("x", j.X)
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("Ed25519 key of %d bytes, want %d", len(x), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(x), nil
}

// JWKSFile is a JWKS read from a file and read again when it changes:
// at most every ReloadCheck, the file is read and, if its contents
// differ, parsed; a file that no longer parses (half written, deleted)
// keeps the previous keys and is logged.
type JWKSFile struct {
	path        string
	reloadCheck time.Duration
	now         func() time.Time
	log         *slog.Logger

	mu        sync.Mutex
	keys      []JWK
	digest    [32]byte
	lastCheck time.Time
}

// NewJWKSFile loads path; it fails if the file cannot be read or parsed
// or holds no usable key.
func NewJWKSFile(path string, reloadCheck time.Duration, now func() time.Time, log *slog.Logger) (*JWKSFile, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &JWKSFile{path: path, reloadCheck: reloadCheck, now: now, log: log.With("component", "jwks", "file", path)}
	data, err := f.read()
	if err != nil {
		return nil, err
	}
	if err := f.install(data); err != nil {
		return nil, err
	}
	f.lastCheck = now()
	return f, nil
}

func (f *JWKSFile) read() ([]byte, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("JWKS file: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("JWKS file %s: %w", f.path, err)
	}
	if len(data) > MaxJWKSSize {
		return nil, fmt.Errorf("JWKS file %s is larger than %d bytes", f.path, MaxJWKSSize)
	}
	return data, nil
}

// install parses data and makes it the current key set (f.mu held, or
// not yet shared).
func (f *JWKSFile) install(data []byte) error {
	keys, skipped, err := ParseJWKS(data)
	if err != nil {
		return fmt.Errorf("JWKS file %s: %w", f.path, err)
	}
	for _, s := range skipped {
		f.log.Warn("JWKS key not used", "key", s)
	}
	if len(keys) == 0 {
		return fmt.Errorf("JWKS file %s has no RSA, EC or Ed25519 signature verification key", f.path)
	}
	f.keys, f.digest = keys, sha256.Sum256(data)
	return nil
}

// Keys returns the current keys, reading the file again first if
// ReloadCheck has passed since it was last read.
func (f *JWKSFile) Keys() []JWK {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if now.Sub(f.lastCheck) < f.reloadCheck {
		return f.keys
	}
	f.lastCheck = now
	data, err := f.read()
	if err != nil {
		f.log.Error("JWKS file not read again; keeping the keys loaded before", "err", err)
		return f.keys
	}
	if sha256.Sum256(data) == f.digest {
		return f.keys
	}
	old := len(f.keys)
	if err := f.install(data); err != nil {
		f.log.Error("JWKS file changed but does not load; keeping the keys loaded before", "err", err)
		return f.keys
	}
	f.log.Info("JWKS file reloaded", "keys", len(f.keys), "before", old)
	return f.keys
}
