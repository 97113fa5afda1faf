// Package certtest makes throwaway certificate authorities and
// certificates for tests: PEM files a TLS listener or client can load. Only
// tests import it.
package certtest
