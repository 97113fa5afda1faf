package security

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SASL mechanism names.
const (
	MechPlain       = "PLAIN"
	MechScramSHA256 = "SCRAM-SHA-256"
	MechScramSHA512 = "SCRAM-SHA-512"
)

// ErrAuthentication is wrapped by every failed authentication. Its text
// is what the client is told, the same whether the user exists or not
// (Kafka's words, capital included); the wrapped detail is for the
// broker's log only.
//
//lint:ignore ST1005 the message is Kafka's, which clients show as is
var ErrAuthentication = errors.New("Authentication failed: Invalid username or password")

// ErrIllegalState is wrapped when a client's message does not fit the
// exchange (a malformed or out-of-order message): the client is told so.
var ErrIllegalState = errors.New("SASL exchange failed")

func authFailed(detail string, args ...any) error {
	return fmt.Errorf("%w (%s)", ErrAuthentication, fmt.Sprintf(detail, args...))
}

func illegal(detail string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrIllegalState, fmt.Sprintf(detail, args...))
}

// ServerExchange is the server side of one SASL authentication: each
// client message goes to Step, which returns the challenge (or the final
// server message) to send back. When done, the exchange succeeded and
// Principal names the user; an error means it failed (wrapping
// ErrAuthentication or ErrIllegalState).
type ServerExchange interface {
	Step(msg []byte) (challenge []byte, done bool, err error)
	Principal() string
}

// decodeBase64 decodes s with enc. Go's decoders skip CR and LF, even in
// strict mode, so that a token or proof with line breaks inserted
// would decode to the same bytes as the one without (a malleability
// FuzzScramServer found); RFC 4648 text as SCRAM and JOSE use it has
// none, and Kafka's decoders refuse them.
func decodeBase64(enc *base64.Encoding, s string) ([]byte, error) {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return nil, fmt.Errorf("illegal base64 data at input byte %d (a line break)", i)
	}
	return enc.DecodeString(s)
}
