package security

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Options of Kafka's default OAUTHBEARER login handler
// (OAuthBearerUnsecuredLoginCallbackHandler), read from the OAUTHBEARER
// JAAS config.
const (
	unsecuredLoginPrefix       = "unsecuredLogin"
	unsecuredStringClaimPrefix = unsecuredLoginPrefix + "StringClaim_"
	unsecuredNumberClaimPrefix = unsecuredLoginPrefix + "NumberClaim_"
	unsecuredListClaimPrefix   = unsecuredLoginPrefix + "ListClaim_"
	unsecuredExtensionPrefix   = unsecuredLoginPrefix + "Extension_"
)

// RFC 7628's extension key and value forms (Kafka's
// OAuthBearerClientInitialResponse patterns).
var (
	oauthExtensionKey   = regexp.MustCompile(`^[A-Za-z]+$`)
	oauthExtensionValue = regexp.MustCompile(`^[\x21-\x7E \t\r\n]+$`)
)

// UnsecuredLoginToken makes the token Kafka's default OAUTHBEARER login
// handler makes from its JAAS options: an unsigned JWS (alg none) whose
// claims are iat (now), exp (now + unsecuredLoginLifetimeSeconds, default
// 3600) and the unsecuredLoginStringClaim_<name>, ...NumberClaim_<name>
// and ...ListClaim_<name> options (a list's first character separates its
// items); the principal claim (unsecuredLoginPrincipalClaimName, default
// sub) must be one of them. unsecuredLoginExtension_<name> options are the
// SASL extensions to send. It proves nothing: it is what a broker sends
// another that validates unsecured tokens (Kafka's default, for
// development).
func UnsecuredLoginToken(opts map[string]string, now time.Time) (token string, extensions map[string]string, err error) {
	lifetime := int64(3600)
	if v, ok := opts["unsecuredLoginLifetimeSeconds"]; ok {
		if lifetime, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil || lifetime <= 0 {
			return "", nil, fmt.Errorf("unsecuredLoginLifetimeSeconds=%q is not a positive number", v)
		}
	}
	principalClaim := strings.TrimSpace(opts["unsecuredLoginPrincipalClaimName"])
	if principalClaim == "" {
		principalClaim = "sub"
	}
	secs := float64(now.UnixMilli()) / 1000
	claims := map[string]any{"iat": secs, "exp": secs + float64(lifetime)}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := opts[k]
		var name string
		var value any
		switch {
		case strings.HasPrefix(k, unsecuredStringClaimPrefix):
			name, value = k[len(unsecuredStringClaimPrefix):], v
		case strings.HasPrefix(k, unsecuredNumberClaimPrefix):
			name = k[len(unsecuredNumberClaimPrefix):]
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return "", nil, fmt.Errorf("%s=%q is not a number", k, v)
			}
			value = n
		case strings.HasPrefix(k, unsecuredListClaimPrefix):
			name = k[len(unsecuredListClaimPrefix):]
			items := []string{}
			if len(v) > 1 {
				items = strings.Split(v[1:], v[:1])
			}
			value = items
		case strings.HasPrefix(k, unsecuredExtensionPrefix):
			ext := k[len(unsecuredExtensionPrefix):]
			if !oauthExtensionKey.MatchString(ext) || ext == "auth" || !oauthExtensionValue.MatchString(v) {
				return "", nil, fmt.Errorf("%s=%q is not a valid SASL extension", k, v)
			}
			if extensions == nil {
				extensions = map[string]string{}
			}
			extensions[ext] = v
			continue
		default:
			continue
		}
		if name == "" {
			continue
		}
		if name == "iat" || name == "exp" {
			return "", nil, fmt.Errorf("%s: the %s claim cannot be set explicitly", k, name)
		}
		claims[name] = value
	}
	if p, _ := claims[principalClaim].(string); strings.TrimSpace(p) == "" {
		return "", nil, fmt.Errorf("no principal: set %s%s in the OAUTHBEARER sasl.jaas.config", unsecuredStringClaimPrefix, principalClaim)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", nil, err
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + enc.EncodeToString(body) + ".", extensions, nil
}
