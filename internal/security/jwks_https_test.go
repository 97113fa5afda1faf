package security

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/security/jwttest"
)

// fakeClock is an injected clock: AfterFunc callbacks run, in time order,
// on the goroutine that calls Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at    time.Time
	f     func()
	done  bool // fired or stopped
	order int
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f, order: len(c.timers)}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.done
		t.done = true
		return was
	}
}

// Advance moves the clock by d, running every callback that falls due,
// including those the callbacks set within the window.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.done && !t.at.After(target) && (next == nil || t.at.Before(next.at) || (t.at.Equal(next.at) && t.order < next.order)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.done = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = target
	c.mu.Unlock()
}

// pending is the number of callbacks waiting.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// idp is an identity provider's JWKS endpoint over TLS: it serves the
// current key set, or fails as told, and counts the fetches.
type idp struct {
	srv      *httptest.Server
	mu       sync.Mutex
	body     []byte
	status   int
	requests atomic.Int32
}

func newIDP(t *testing.T, keys ...*jwttest.Key) *idp {
	i := &idp{body: jwttest.JWKS(keys...), status: http.StatusOK}
	i.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i.requests.Add(1)
		i.mu.Lock()
		body, status := i.body, i.status
		i.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(i.srv.Close)
	return i
}

func (i *idp) serve(status int, body []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.status, i.body = status, body
}

// tlsConfig trusts the test server's certificate only.
func (i *idp) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(i.srv.Certificate())
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
}

func endpointConfig(i *idp, c *fakeClock) JWKSEndpointConfig {
	return JWKSEndpointConfig{
		URL:             i.srv.URL + "/jwks",
		Refresh:         time.Hour,
		RetryBackoff:    100 * time.Millisecond,
		RetryBackoffMax: time.Second,
		TLS:             i.tlsConfig(),
		Now:             c.Now,
		AfterFunc:       c.AfterFunc,
	}
}

func kids(keys []JWK) []string {
	var r []string
	for _, k := range keys {
		r = append(r, k.Kid)
	}
	slices.Sort(r)
	return r
}

// TestJWKSEndpointRotation: the keys are fetched at start; a token with
// an unknown kid is refused and starts a refresh (on the clock, never on
// the validating goroutine), after which the same token is accepted; the
// refreshes a token can start are rate-limited; the scheduled refresh
// drops a key the provider retired.
func TestJWKSEndpointRotation(t *testing.T) {
	a, b, c := jwttest.NewEC(t, "a", "ES256"), jwttest.NewEC(t, "b", "ES256"), jwttest.NewEd25519(t, "c")
	p := newIDP(t, a)
	clk := newFakeClock()
	e, err := NewJWKSEndpoint(endpointConfig(p, clk))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := kids(e.Keys()); !slices.Equal(got, []string{"a"}) || p.requests.Load() != 1 {
		t.Fatalf("at start: keys %v after %d fetches", got, p.requests.Load())
	}
	v, err := NewJWTValidator(JWTValidatorConfig{Keys: e, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	claims := func() map[string]any {
		now := clk.Now().Unix()
		return map[string]any{"sub": "svc", "iat": now, "exp": now + 3600}
	}
	if _, _, err := v.Validate(a.Sign(claims(), nil)); err != nil {
		t.Fatalf("key a: %v", err)
	}

	// The provider rotates in b; a token signed with it arrives.
	p.serve(http.StatusOK, jwttest.JWKS(a, b))
	tokB := b.Sign(claims(), nil)
	if _, _, err := v.Validate(tokB); err == nil || !strings.Contains(err.Error(), `no key with kid "b"`) {
		t.Fatalf("b before the refresh: %v", err)
	}
	if n := p.requests.Load(); n != 1 {
		t.Fatalf("the validating goroutine fetched (%d fetches)", n)
	}
	clk.Advance(0)
	if n := p.requests.Load(); n != 2 {
		t.Fatalf("%d fetches after the unknown kid", n)
	}
	if _, _, err := v.Validate(tokB); err != nil {
		t.Fatalf("b after the refresh: %v", err)
	}

	// Another unknown kid within a second of that refresh: no fetch.
	p.serve(http.StatusOK, jwttest.JWKS(a, b, c))
	tokC := c.Sign(claims(), nil)
	if _, _, err := v.Validate(tokC); err == nil {
		t.Fatal("c accepted before any refresh")
	}
	clk.Advance(0)
	if n := p.requests.Load(); n != 2 {
		t.Fatalf("a second unknown kid within a second fetched (%d fetches)", n)
	}
	// A second later it may ask.
	clk.Advance(time.Second)
	v.Validate(tokC)
	clk.Advance(0)
	if _, _, err := v.Validate(tokC); err != nil || p.requests.Load() != 3 {
		t.Fatalf("c after its refresh: %v (%d fetches)", err, p.requests.Load())
	}

	// A kid the provider does not have asks once a minute, not at every
	// token.
	d := jwttest.NewEC(t, "d", "ES256")
	tokD := d.Sign(claims(), nil)
	clk.Advance(2 * time.Second)
	for range 5 {
		v.Validate(tokD)
		clk.Advance(2 * time.Second)
	}
	if n := p.requests.Load(); n != 4 {
		t.Fatalf("an unknown kid asked 5 times in 10 s: %d fetches, want 4", n)
	}
	clk.Advance(time.Minute)
	v.Validate(tokD)
	clk.Advance(0)
	if n := p.requests.Load(); n != 5 {
		t.Fatalf("the unknown kid a minute later: %d fetches, want 5", n)
	}
	// A kid too long to remember never fetches.
	v.Validate(d.Sign(claims(), map[string]any{"kid": strings.Repeat("k", 1001)}))
	clk.Advance(2 * time.Second)
	if n := p.requests.Load(); n != 5 {
		t.Fatalf("a 1001-character kid fetched: %d fetches", n)
	}

	// The provider retires a; the scheduled refresh (hourly) drops it.
	p.serve(http.StatusOK, jwttest.JWKS(b, c))
	clk.Advance(time.Hour)
	if got := kids(e.Keys()); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("after the scheduled refresh: %v", got)
	}
	if _, _, err := v.Validate(a.Sign(claims(), nil)); err == nil {
		t.Fatal("a retired key still verifies")
	}
}

// TestJWKSEndpointKeepsKeysWhenRefreshFails: a refresh that fails is
// tried again after 100, 200, 400 ms, then once more at the end of the
// one-second window, and then gives up, the keys as they were; what the
// provider answers that is not a usable key set (an error status,
// malformed JSON, no usable key, too large) is a failure too; a refresh
// that succeeds on a retry installs the new keys.
func TestJWKSEndpointKeepsKeysWhenRefreshFails(t *testing.T) {
	a, b := jwttest.NewEC(t, "a", "ES256"), jwttest.NewEC(t, "b", "ES256")
	for name, answer := range map[string]struct {
		status int
		body   []byte
	}{
		"503":          {http.StatusServiceUnavailable, []byte("down")},
		"not JSON":     {http.StatusOK, []byte(`{"keys":[`)},
		"no keys":      {http.StatusOK, []byte(`{"keys":[]}`)},
		"only HS256":   {http.StatusOK, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)},
		"over a MiB":   {http.StatusOK, []byte(`{"keys":[],"x":"` + strings.Repeat("x", MaxJWKSSize) + `"}`)},
		"private part": {http.StatusOK, []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}`)},
	} {
		t.Run(name, func(t *testing.T) {
			p := newIDP(t, a)
			clk := newFakeClock()
			e, err := NewJWKSEndpoint(endpointConfig(p, clk))
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			p.serve(answer.status, answer.body)
			clk.Advance(time.Hour) // the scheduled refresh's first attempt
			want := []int32{2, 2, 3, 3, 4, 4, 5, 6, 6}
			steps := []time.Duration{0, 99 * time.Millisecond, time.Millisecond, 199 * time.Millisecond, time.Millisecond, 399 * time.Millisecond, time.Millisecond, 300 * time.Millisecond, time.Second}
			for i, d := range steps {
				clk.Advance(d)
				if n := p.requests.Load(); n != want[i] {
					t.Fatalf("step %d (+%v): %d fetches, want %d", i, d, n, want[i])
				}
			}
			if got := kids(e.Keys()); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("keys after a failed refresh: %v", got)
			}
			// The provider comes back with b: a token naming b starts a
			// refresh whose first attempt fails, the retry succeeds.
			p.serve(http.StatusInternalServerError, nil)
			v, _ := NewJWTValidator(JWTValidatorConfig{Keys: e, Now: clk.Now})
			now := clk.Now().Unix()
			tokB := b.Sign(map[string]any{"sub": "svc", "iat": now, "exp": now + 3600}, nil)
			v.Validate(tokB)
			clk.Advance(0)
			p.serve(http.StatusOK, jwttest.JWKS(a, b))
			clk.Advance(100 * time.Millisecond)
			if _, _, err := v.Validate(tokB); err != nil {
				t.Fatalf("b after the retried refresh: %v", err)
			}
		})
	}
}

// TestJWKSEndpointTLS: the endpoint's certificate must chain to the
// configured CA (or the system's roots) and name the host; the URL must
// be https, and so must any redirect.
func TestJWKSEndpointTLS(t *testing.T) {
	a := jwttest.NewEC(t, "a", "ES256")
	p := newIDP(t, a)
	clk := newFakeClock()

	cfg := endpointConfig(p, clk)
	cfg.TLS = nil // the system's roots do not know the test CA
	if _, err := NewJWKSEndpoint(cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	cfg = endpointConfig(p, clk)
	cfg.URL = strings.Replace(p.srv.URL, "127.0.0.1", "localhost", 1) // not a name the certificate holds
	if _, err := NewJWKSEndpoint(cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong host name: %v", err)
	}
	cfg = endpointConfig(p, clk)
	cfg.URL = strings.Replace(p.srv.URL, "https:", "http:", 1)
	if _, err := NewJWKSEndpoint(cfg); err == nil || !strings.Contains(err.Error(), "not an https URL") {
		t.Fatalf("http URL: %v", err)
	}

	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(jwttest.JWKS(a)) }))
	defer plain.Close()
	redirect := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/jwks", http.StatusFound)
	}))
	defer redirect.Close()
	cfg = endpointConfig(p, clk)
	pool := x509.NewCertPool()
	pool.AddCert(redirect.Certificate())
	cfg.TLS, cfg.URL = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, redirect.URL
	if _, err := NewJWKSEndpoint(cfg); err == nil || !strings.Contains(err.Error(), "not https") {
		t.Fatalf("redirect to http: %v", err)
	}
}

// TestJWKSEndpointClose: after Close no refresh runs, scheduled or asked
// for.
func TestJWKSEndpointClose(t *testing.T) {
	p := newIDP(t, jwttest.NewEC(t, "a", "ES256"))
	clk := newFakeClock()
	e, err := NewJWKSEndpoint(endpointConfig(p, clk))
	if err != nil {
		t.Fatal(err)
	}
	if clk.pending() != 1 {
		t.Fatalf("%d callbacks pending after start, want the scheduled refresh", clk.pending())
	}
	e.Close()
	e.KeyMissing("b")
	clk.Advance(2 * time.Hour)
	if n := p.requests.Load(); n != 1 {
		t.Fatalf("%d fetches after Close", n)
	}
}
