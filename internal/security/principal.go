package security

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// PrincipalMapper applies ssl.principal.mapping.rules to a certificate
// subject's distinguished name (RFC 2253, as Java's
// X500Principal.getName() writes it: "CN=alice,OU=eng,O=Example"). Rules
// are tried in order: RULE:pattern/replacement/ with an optional L or U
// (lower or upper case the result) applies when pattern matches the whole
// name; DEFAULT keeps the name as it is. No rule applying fails, as in
// Kafka.
type PrincipalMapper struct {
	rules []mappingRule
	text  string
}

type mappingRule struct {
	def         bool
	re          *regexp.Regexp
	replacement string
	lower       bool
	upper       bool
}

// ParsePrincipalMappingRules parses ssl.principal.mapping.rules; empty
// means DEFAULT.
func ParsePrincipalMappingRules(s string) (*PrincipalMapper, error) {
	m := &PrincipalMapper{text: s}
	rest := strings.TrimSpace(s)
	if rest == "" {
		rest = "DEFAULT"
	}
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t\n,")
		if rest == "" {
			break
		}
		switch {
		case strings.HasPrefix(rest, "DEFAULT"):
			m.rules = append(m.rules, mappingRule{def: true})
			rest = rest[len("DEFAULT"):]
		case strings.HasPrefix(rest, "RULE:"):
			rest = rest[len("RULE:"):]
			pattern, r, err := untilSlash(rest)
			if err != nil {
				return nil, fmt.Errorf("ssl.principal.mapping.rules %q: %w", s, err)
			}
			repl, r, err := untilSlash(r)
			if err != nil {
				return nil, fmt.Errorf("ssl.principal.mapping.rules %q: %w", s, err)
			}
			rule := mappingRule{replacement: javaReplacement(repl)}
			if strings.HasPrefix(r, "L") {
				rule.lower, r = true, r[1:]
			} else if strings.HasPrefix(r, "U") {
				rule.upper, r = true, r[1:]
			}
			re, err := regexp.Compile("^(?:" + pattern + ")$")
			if err != nil {
				return nil, fmt.Errorf("ssl.principal.mapping.rules: pattern %q: %w", pattern, err)
			}
			rule.re = re
			m.rules = append(m.rules, rule)
			rest = r
		default:
			return nil, fmt.Errorf("ssl.principal.mapping.rules %q: expected RULE:pattern/replacement/[LU] or DEFAULT at %q", s, rest)
		}
		rest = strings.TrimLeft(rest, " \t\n")
		if rest != "" && rest[0] != ',' {
			return nil, fmt.Errorf("ssl.principal.mapping.rules %q: expected a comma at %q", s, rest)
		}
	}
	return m, nil
}

// untilSlash returns s up to the first unescaped '/', unescaping "\/".
func untilSlash(s string) (string, string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '/':
			b.WriteByte('/')
			i++
		case s[i] == '/':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", errors.New("unterminated rule (missing '/')")
}

// javaReplacement turns Java's $1 group references into Go's ${1}.
var javaGroup = regexp.MustCompile(`\$(\d+)`)

func javaReplacement(r string) string { return javaGroup.ReplaceAllString(r, "$${$1}") }

// Map returns the principal name for a distinguished name.
func (m *PrincipalMapper) Map(dn string) (string, error) {
	for _, r := range m.rules {
		if r.def {
			return dn, nil
		}
		if !r.re.MatchString(dn) {
			continue
		}
		out := r.re.ReplaceAllString(dn, r.replacement)
		switch {
		case r.lower:
			out = strings.ToLower(out)
		case r.upper:
			out = strings.ToUpper(out)
		}
		return out, nil
	}
	return "", fmt.Errorf("no rule of ssl.principal.mapping.rules (%s) applies to %q", m.text, dn)
}
