package security

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SCRAM (RFC 5802, RFC 7677) as Kafka runs it (KIP-84): credentials are
// salted and stored as StoredKey and ServerKey only, never the password
// or the salted password; the server checks every field of the client's
// messages, including that the final message carries the very nonce the
// server sent and the channel binding of the first (Kafka's fix for
// CVE-2024-56128 added exactly those checks).

// Kafka's bounds on SCRAM iterations (ScramMechanism.minIterations, and
// the 16384 AlterUserScramCredentials accepts at most).
const (
	ScramMinIterations = 4096
	ScramMaxIterations = 16384
)

// ScramCredential is what the server keeps of a SCRAM password.
type ScramCredential struct {
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
	Iterations int
}

// ScramHash returns the hash of a SCRAM mechanism, nil if unknown.
func ScramHash(mechanism string) func() hash.Hash {
	switch mechanism {
	case MechScramSHA256:
		return sha256.New
	case MechScramSHA512:
		return sha512.New
	}
	return nil
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

func hashSum(h func() hash.Hash, b []byte) []byte {
	x := h()
	x.Write(b)
	return x.Sum(nil)
}

// SaltPassword is RFC 5802's Hi(Normalize(password), salt, i). (Kafka, as
// most clients, does not apply SASLprep.)
func SaltPassword(h func() hash.Hash, password string, salt []byte, iterations int) []byte {
	k, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		panic(fmt.Sprintf("pbkdf2: %v", err)) // only for FIPS-rejected parameters
	}
	return k
}

// CredentialFromSalted derives the stored credential from a salted
// password (what AlterUserScramCredentials carries).
func CredentialFromSalted(h func() hash.Hash, salted, salt []byte, iterations int) ScramCredential {
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	return ScramCredential{
		Salt:       append([]byte(nil), salt...),
		StoredKey:  hashSum(h, clientKey),
		ServerKey:  hmacSum(h, salted, []byte("Server Key")),
		Iterations: iterations,
	}
}

// NewScramCredential salts password with a fresh random salt.
func NewScramCredential(mechanism, password string, iterations int) (ScramCredential, []byte, error) {
	h := ScramHash(mechanism)
	if h == nil {
		return ScramCredential{}, nil, fmt.Errorf("unknown SCRAM mechanism %q", mechanism)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return ScramCredential{}, nil, err
	}
	salted := SaltPassword(h, password, salt, iterations)
	return CredentialFromSalted(h, salted, salt, iterations), salted, nil
}

// ScramLookup finds a user's credential for the exchange's mechanism.
type ScramLookup func(user string) (ScramCredential, bool)

// NewScramServer starts the server side of a SCRAM exchange. fakeKey keys
// the fake salt given for a user that does not exist, so that the answer
// looks the same as for one that does (RFC 5802 section 5.1); nonce makes
// the server's part of the nonce (nil: 24 random bytes, base64).
func NewScramServer(mechanism string, lookup ScramLookup, fakeKey []byte, nonce func() string) (ServerExchange, error) {
	h := ScramHash(mechanism)
	if h == nil {
		return nil, fmt.Errorf("unknown SCRAM mechanism %q", mechanism)
	}
	return newScramServer(h, lookup, fakeKey, nonce), nil
}

func newScramServer(h func() hash.Hash, lookup ScramLookup, fakeKey []byte, nonce func() string) *scramServer {
	if nonce == nil {
		nonce = randomNonce
	}
	return &scramServer{h: h, lookup: lookup, fakeKey: fakeKey, nonce: nonce}
}

func randomNonce() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return base64.RawStdEncoding.EncodeToString(b)
}

type scramServer struct {
	h       func() hash.Hash
	lookup  ScramLookup
	fakeKey []byte
	nonce   func() string

	state       int // 0: want client-first, 1: want client-final, 2: over
	user        string
	known       bool
	cred        ScramCredential
	gs2Header   string
	clientFirst string // client-first-message-bare
	serverFirst string
	fullNonce   string
	principal   string
}

func (s *scramServer) Principal() string { return s.principal }

func (s *scramServer) Step(msg []byte) ([]byte, bool, error) {
	switch s.state {
	case 0:
		s.state = 1
		out, err := s.first(string(msg))
		if err != nil {
			s.state = 2
		}
		return out, false, err
	case 1:
		s.state = 2
		out, err := s.final(string(msg))
		if err != nil {
			return nil, false, err
		}
		return out, true, nil
	}
	return nil, false, illegal("the SCRAM exchange is over")
}

// ClientFirst is a parsed client-first-message.
type ClientFirst struct {
	GS2Header  string // "n,," or "n,a=name," or "y,,"
	AuthzID    string
	User       string
	Nonce      string
	Extensions map[string]string
	Bare       string // client-first-message-bare
}

// ParseClientFirst parses and checks a client-first-message strictly:
// no channel binding (gs2 flag n or y), authzid absent or the user
// itself, a non-empty user name with only =2C and =3D escapes, a
// printable nonce without commas, and key=value extensions (no m=).
func ParseClientFirst(msg string) (*ClientFirst, error) {
	cf := &ClientFirst{}
	if !strings.HasPrefix(msg, "n,") && !strings.HasPrefix(msg, "y,") {
		if strings.HasPrefix(msg, "p=") {
			return nil, illegal("channel binding is not supported")
		}
		return nil, illegal("client-first-message does not start with a gs2 header")
	}
	rest := msg[2:]
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, illegal("client-first-message has no bare part")
	}
	if authz != "" {
		a, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return nil, illegal("bad authzid %q", authz)
		}
		name, err := decodeSaslName(a)
		if err != nil {
			return nil, err
		}
		cf.AuthzID = name
	}
	cf.GS2Header = msg[:2] + authz + ","
	cf.Bare = bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, illegal("client-first-message-bare is not n=<user>,r=<nonce>[,extensions]")
	}
	user, err := decodeSaslName(attrs[0][2:])
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, illegal("empty user name")
	}
	cf.User = user
	cf.Nonce = attrs[1][2:]
	if err := checkNonce(cf.Nonce); err != nil {
		return nil, err
	}
	for _, e := range attrs[2:] {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" || k == "m" {
			return nil, illegal("bad extension %q", e)
		}
		if cf.Extensions == nil {
			cf.Extensions = map[string]string{}
		}
		cf.Extensions[k] = v
	}
	if cf.AuthzID != "" && cf.AuthzID != cf.User {
		return nil, authFailed("authorization id %q differs from the user name %q", cf.AuthzID, cf.User)
	}
	return cf, nil
}

func decodeSaslName(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '=':
			switch {
			case strings.HasPrefix(s[i:], "=2C"):
				b.WriteByte(',')
			case strings.HasPrefix(s[i:], "=3D"):
				b.WriteByte('=')
			default:
				return "", illegal("bad escape in user name %q", s)
			}
			i += 2
		case c == ',' || c == 0:
			return "", illegal("bad character in user name %q", s)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func checkNonce(n string) error {
	if n == "" {
		return illegal("empty nonce")
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == ',' {
			return illegal("bad character in nonce")
		}
	}
	return nil
}

func (s *scramServer) first(msg string) ([]byte, error) {
	cf, err := ParseClientFirst(msg)
	if err != nil {
		return nil, err
	}
	if len(cf.Extensions) > 0 {
		if cf.Extensions["tokenauth"] == "true" {
			return nil, authFailed("delegation tokens are not supported")
		}
	}
	s.user, s.gs2Header, s.clientFirst = cf.User, cf.GS2Header, cf.Bare
	s.cred, s.known = s.lookup(cf.User)
	if !s.known {
		// A fake credential, the same for every attempt at this name.
		mac := hmacSum(s.h, s.fakeKey, []byte("salt:"+cf.User))
		s.cred = ScramCredential{Salt: mac[:16], Iterations: ScramMinIterations,
			StoredKey: hmacSum(s.h, s.fakeKey, []byte("stored:"+cf.User)), ServerKey: hmacSum(s.h, s.fakeKey, []byte("server:"+cf.User))}
	}
	s.fullNonce = cf.Nonce + s.nonce()
	s.serverFirst = "r=" + s.fullNonce + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(s.cred.Iterations)
	return []byte(s.serverFirst), nil
}

// ClientFinal is a parsed client-final-message.
type ClientFinal struct {
	ChannelBinding string // base64, as sent
	Nonce          string
	Proof          []byte
	WithoutProof   string
}

// ParseClientFinal parses a client-final-message strictly:
// c=<b64>,r=<nonce>[,extensions],p=<b64 proof>.
func ParseClientFinal(msg string) (*ClientFinal, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, illegal("client-final-message has no proof")
	}
	cf := &ClientFinal{WithoutProof: msg[:i]}
	proof, err := decodeBase64(base64.StdEncoding.Strict(), msg[i+3:])
	if err != nil {
		return nil, illegal("proof is not base64")
	}
	cf.Proof = proof
	attrs := strings.Split(cf.WithoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, illegal("client-final-message is not c=<binding>,r=<nonce>,...,p=<proof>")
	}
	cf.ChannelBinding, cf.Nonce = attrs[0][2:], attrs[1][2:]
	for _, e := range attrs[2:] {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return nil, illegal("bad extension %q", e)
		}
	}
	return cf, nil
}

func (s *scramServer) final(msg string) ([]byte, error) {
	cf, err := ParseClientFinal(msg)
	if err != nil {
		return nil, err
	}
	// CVE-2024-56128: the nonce must be the one the server sent, and the
	// channel binding the first message's gs2 header.
	if !s.nonceMatches(cf.Nonce) {
		return nil, illegal("the client's final nonce is not the server's")
	}
	if cf.ChannelBinding != base64.StdEncoding.EncodeToString([]byte(s.gs2Header)) {
		return nil, illegal("the channel binding does not match the client's first message")
	}
	if len(cf.Proof) != s.h().Size() {
		return nil, authFailed("proof of %d bytes", len(cf.Proof))
	}
	authMessage := []byte(s.clientFirst + "," + s.serverFirst + "," + cf.WithoutProof)
	sig := hmacSum(s.h, s.cred.StoredKey, authMessage)
	clientKey := make([]byte, len(sig))
	for i := range sig {
		clientKey[i] = cf.Proof[i] ^ sig[i]
	}
	ok := subtle.ConstantTimeCompare(hashSum(s.h, clientKey), s.cred.StoredKey) == 1
	if !ok || !s.known {
		return nil, authFailed("SCRAM proof of %q does not verify", s.user)
	}
	s.principal = s.user
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacSum(s.h, s.cred.ServerKey, authMessage))), nil
}

// nonceMatches checks the final message's nonce: exactly the nonce of the
// server-first message (RFC 5802, and Kafka 4's check), or exactly the
// client's nonce followed by it, which librdkafka before 2.6.1 sends
// (confluentinc/librdkafka#4895; Debian's kcat and confluent-kafka-python
// link such a version). Kafka 3.8.1 and 3.9, the first fixed for
// CVE-2024-56128, accept any prefix (endsWith) for the same reason; only
// that one prefix is accepted here, so the server's nonce is still bound
// to the exchange.
func (s *scramServer) nonceMatches(got string) bool {
	clientNonce := strings.TrimPrefix(strings.SplitN(s.clientFirst, ",", 3)[1], "r=")
	exact := subtle.ConstantTimeCompare([]byte(got), []byte(s.fullNonce)) == 1
	librdkafka := subtle.ConstantTimeCompare([]byte(got), []byte(clientNonce+s.fullNonce)) == 1
	return exact || librdkafka
}
