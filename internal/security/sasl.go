package security

import (
	"errors"
	"fmt"
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
