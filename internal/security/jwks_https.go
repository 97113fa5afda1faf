package security

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Limits of the refresh a token with an unknown kid asks for (Kafka's
// RefreshingHttpsJwks: a kid longer than 1000 characters is not looked
// up, a kid that asked for a refresh does not ask again for a minute, 16
// such kids are remembered). On top of Kafka's, a refresh asked for by a
// token runs at most once per expediteMinInterval, so that a client
// cycling through kids cannot make the broker fetch continuously.
const (
	missingKidMaxLen    = 1000
	missingKidRetry     = time.Minute
	missingKidMax       = 16
	expediteMinInterval = time.Second
	defaultFetchTimeout = 10 * time.Second
)

// JWKSEndpointConfig configures a JWKS fetched over HTTPS
// (sasl.oauthbearer.jwks.endpoint.url with an https URL).
type JWKSEndpointConfig struct {
	URL string
	// Refresh is how often the keys are fetched again
	// (sasl.oauthbearer.jwks.endpoint.refresh.ms).
	Refresh time.Duration
	// RetryBackoff and RetryBackoffMax
	// (sasl.oauthbearer.jwks.endpoint.retry.backoff.ms / .max.ms): a
	// failed fetch is tried again after RetryBackoff, doubling each time,
	// until RetryBackoffMax has passed since the refresh began; then the
	// refresh gives up and the keys stay as they were.
	RetryBackoff, RetryBackoffMax time.Duration
	// TLS verifies the endpoint (nil: the system's roots, the host name
	// checked).
	TLS *tls.Config
	// Timeout bounds one fetch (zero: 10 s).
	Timeout time.Duration
	// Now and AfterFunc are the clock (nil: the real one). AfterFunc runs
	// f once after d and returns a function that stops it.
	Now       func() time.Time
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	Logger    *slog.Logger
}

// JWKSEndpoint is a JWKS fetched over HTTPS, as Kafka's
// RefreshingHttpsJwks: loaded once at start (a failure stops the start),
// fetched again every Refresh in the background and when a token names a
// kid the set does not have (rate-limited), the last good set kept when a
// fetch fails or brings no usable key. Validation never waits for the
// network: Keys returns the current set.
type JWKSEndpoint struct {
	cfg    JWKSEndpointConfig
	log    *slog.Logger
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc

	mu           sync.Mutex
	keys         []JWK
	digest       [32]byte
	missing      map[string]time.Time // kid -> when it may ask for a refresh again
	lastExpedite time.Time
	refreshing   bool
	closed       bool
	stopSched    func() bool
	stopRetry    func() bool
}

// NewJWKSEndpoint fetches the key set once and starts the background
// refresh; it fails if the first fetch fails or brings no usable key.
func NewJWKSEndpoint(cfg JWKSEndpointConfig) (*JWKSEndpoint, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("JWKS endpoint %q is not an https URL", cfg.URL)
	}
	if cfg.Refresh <= 0 {
		return nil, fmt.Errorf("JWKS refresh interval %v is not positive", cfg.Refresh)
	}
	if cfg.RetryBackoff < 0 || cfg.RetryBackoffMax < cfg.RetryBackoff {
		return nil, fmt.Errorf("JWKS retry backoff %v to %v: want 0 <= backoff <= max", cfg.RetryBackoff, cfg.RetryBackoffMax)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultFetchTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tlsCfg := cfg.TLS
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	e := &JWKSEndpoint{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "jwks", "url", cfg.URL),
		missing: map[string]time.Time{},
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				TLSClientConfig:     tlsCfg,
				TLSHandshakeTimeout: cfg.Timeout,
				MaxIdleConns:        1,
				IdleConnTimeout:     time.Minute,
			},
			// A redirect may not leave HTTPS: keys fetched in clear
			// could be anyone's.
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if req.URL.Scheme != "https" {
					return fmt.Errorf("redirect to %s refused: not https", req.URL.Redacted())
				}
				if len(via) >= 5 {
					return errors.New("more than 5 redirects")
				}
				return nil
			},
		},
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	data, keys, skipped, err := e.fetch()
	if err != nil {
		e.cancel()
		return nil, err
	}
	e.install(data, keys, skipped)
	e.mu.Lock()
	e.stopSched = e.cfg.AfterFunc(e.cfg.Refresh, e.scheduled)
	e.mu.Unlock()
	return e, nil
}

// Keys returns the current key set; it never blocks on the network.
func (e *JWKSEndpoint) Keys() []JWK {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.keys
}

// KeyMissing is told that a token named a kid the set does not have: the
// identity provider may have rotated its keys, so a refresh is started
// now unless this kid asked for one in the last minute, a refresh is
// running, or one was asked for within expediteMinInterval. The token
// itself is refused (as in Kafka); a client that tries again after the
// refresh gets the new key.
func (e *JWKSEndpoint) KeyMissing(kid string) {
	if kid == "" {
		return
	}
	if len(kid) > missingKidMaxLen {
		e.log.Warn("token kid too long to look up", "kid_prefix", kid[:64], "len", len(kid))
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.cfg.Now()
	if next, ok := e.missing[kid]; ok && now.Before(next) {
		return
	}
	if e.closed || e.refreshing || (!e.lastExpedite.IsZero() && now.Sub(e.lastExpedite) < expediteMinInterval) {
		return
	}
	if len(e.missing) >= missingKidMax {
		e.evictMissing()
	}
	e.missing[kid] = now.Add(missingKidRetry)
	e.lastExpedite = now
	e.log.Info("token names an unknown kid: refreshing the JWKS", "kid", kid)
	e.startRefreshLocked()
}

// evictMissing drops the remembered kid that may ask again soonest
// (e.mu held).
func (e *JWKSEndpoint) evictMissing() {
	var oldest string
	var at time.Time
	for k, t := range e.missing {
		if oldest == "" || t.Before(at) {
			oldest, at = k, t
		}
	}
	delete(e.missing, oldest)
}

// Close stops the background refresh and cancels a fetch in flight.
func (e *JWKSEndpoint) Close() {
	e.mu.Lock()
	e.closed = true
	if e.stopSched != nil {
		e.stopSched()
	}
	if e.stopRetry != nil {
		e.stopRetry()
	}
	e.mu.Unlock()
	e.cancel()
	e.client.CloseIdleConnections()
}

// scheduled is the periodic refresh: at a fixed rate, skipped when a
// refresh (with its retries) is still running.
func (e *JWKSEndpoint) scheduled() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.stopSched = e.cfg.AfterFunc(e.cfg.Refresh, e.scheduled)
	if !e.refreshing {
		e.startRefreshLocked()
	}
}

// startRefreshLocked starts a refresh on the clock's goroutine, never the
// caller's (e.mu held).
func (e *JWKSEndpoint) startRefreshLocked() {
	e.refreshing = true
	deadline := e.cfg.Now().Add(e.cfg.RetryBackoffMax)
	e.stopRetry = e.cfg.AfterFunc(0, func() { e.attempt(1, deadline) })
}

// attempt is one fetch of a refresh; a failure is tried again after
// RetryBackoff·2^(n-1), as long as that stays before deadline.
func (e *JWKSEndpoint) attempt(n int, deadline time.Time) {
	if e.isClosed() {
		return
	}
	data, keys, skipped, err := e.fetch()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if err == nil {
		e.refreshing = false
		e.installLocked(data, keys, skipped)
		return
	}
	wait := e.cfg.RetryBackoff << (n - 1)
	if n > 32 || wait < 0 {
		wait = e.cfg.RetryBackoffMax
	}
	if left := deadline.Sub(e.cfg.Now()); wait > left {
		wait = left
	}
	if wait <= 0 {
		e.refreshing = false
		e.log.Warn("JWKS refresh failed; keeping the keys fetched before", "attempts", n, "keys", len(e.keys), "err", err)
		return
	}
	e.log.Warn("JWKS fetch failed; trying again", "attempt", n, "backoff", wait, "err", err)
	e.stopRetry = e.cfg.AfterFunc(wait, func() { e.attempt(n+1, deadline) })
}

func (e *JWKSEndpoint) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// fetch GETs the key set and parses it; an answer other than 200, one
// over MaxJWKSSize, one that does not parse or has no usable key is an
// error.
func (e *JWKSEndpoint) fetch() (data []byte, keys []JWK, skipped []string, err error) {
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.cfg.URL, nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("JWKS endpoint %s: %w", e.cfg.URL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("JWKS endpoint: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, nil, fmt.Errorf("JWKS endpoint %s answered %s", e.cfg.URL, resp.Status)
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("JWKS endpoint %s: reading the answer: %w", e.cfg.URL, err)
	}
	if len(data) > MaxJWKSSize {
		return nil, nil, nil, fmt.Errorf("JWKS endpoint %s answered more than %d bytes", e.cfg.URL, MaxJWKSSize)
	}
	keys, skipped, err = ParseJWKS(data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("JWKS endpoint %s: %w", e.cfg.URL, err)
	}
	if len(keys) == 0 {
		return nil, nil, nil, fmt.Errorf("JWKS endpoint %s has no RSA, EC or Ed25519 signature verification key", e.cfg.URL)
	}
	return data, keys, skipped, nil
}

func (e *JWKSEndpoint) install(data []byte, keys []JWK, skipped []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.installLocked(data, keys, skipped)
}

// installLocked makes keys the current set; the skipped keys are logged
// when the set's contents changed, not at every refresh (e.mu held).
func (e *JWKSEndpoint) installLocked(data []byte, keys []JWK, skipped []string) {
	d := sha256.Sum256(data)
	changed := d != e.digest
	old := len(e.keys)
	e.keys, e.digest = keys, d
	for _, k := range keys {
		delete(e.missing, k.Kid)
	}
	if !changed {
		return
	}
	for _, s := range skipped {
		e.log.Warn("JWKS key not used", "key", s)
	}
	e.log.Info("JWKS fetched", "keys", len(keys), "before", old)
}
