// Package jwttest is a throwaway OAuth issuer for tests: RSA, EC and
// Ed25519 signing keys, their JWKS file, and signed JWTs with the claims a
// test asks for. Only tests import it.
package jwttest
