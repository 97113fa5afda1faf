package security

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
)

// PlainUsers are the users SASL/PLAIN accepts, with their passwords: from
// a JAAS config's user_<name>="<password>" options (as Kafka's
// PlainLoginModule takes them) and from a sasl.plain.users file of
// name=password lines.
type PlainUsers struct {
	users map[string]string
}

// NewPlainUsers merges the users of a JAAS config and of a users file
// (either may be empty).
func NewPlainUsers(jaas, usersFile string) (*PlainUsers, error) {
	u := &PlainUsers{users: map[string]string{}}
	if jaas != "" {
		opts, err := ParseJAAS(jaas)
		if err != nil {
			return nil, err
		}
		for k, v := range opts {
			if name, ok := strings.CutPrefix(k, "user_"); ok && name != "" {
				u.users[name] = v
			}
		}
	}
	if usersFile != "" {
		b, err := os.ReadFile(usersFile)
		if err != nil {
			return nil, fmt.Errorf("sasl.plain.users: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || line[0] == '#' {
				continue
			}
			name, pw, ok := strings.Cut(line, "=")
			if !ok || strings.TrimSpace(name) == "" {
				return nil, fmt.Errorf("sasl.plain.users %s line %d: want name=password", usersFile, n)
			}
			u.users[strings.TrimSpace(name)] = pw
		}
	}
	return u, nil
}

// Len is the number of users.
func (u *PlainUsers) Len() int { return len(u.users) }

// check compares in constant time, and as long for a user that does not
// exist (against a hash of nothing).
func (u *PlainUsers) check(name, password string) bool {
	want, ok := u.users[name]
	a := sha256.Sum256([]byte(password))
	b := sha256.Sum256([]byte(want))
	eq := subtle.ConstantTimeCompare(a[:], b[:]) == 1
	return ok && eq
}

// NewPlainServer starts a SASL/PLAIN exchange (RFC 4616): one client
// message, [authzid] NUL authcid NUL passwd.
func NewPlainServer(users *PlainUsers) ServerExchange { return &plainServer{users: users} }

type plainServer struct {
	users *PlainUsers
	user  string
	done  bool
}

func (s *plainServer) Principal() string { return s.user }

func (s *plainServer) Step(msg []byte) ([]byte, bool, error) {
	if s.done {
		return nil, false, illegal("PLAIN takes one message")
	}
	s.done = true
	authzid, authcid, passwd, err := ParsePlain(msg)
	if err != nil {
		return nil, false, err
	}
	if authzid != "" && authzid != authcid {
		return nil, false, authFailed("authorization id %q differs from the user name", authzid)
	}
	if !s.users.check(authcid, passwd) {
		return nil, false, authFailed("PLAIN credentials of %q do not match", authcid)
	}
	s.user = authcid
	return nil, true, nil
}

// ParsePlain splits a PLAIN message into its three fields; the user name
// and password must not be empty and no field may hold a NUL.
func ParsePlain(msg []byte) (authzid, authcid, passwd string, err error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", "", "", illegal("PLAIN message has %d NUL-separated fields, want 3", len(parts))
	}
	if len(parts[1]) == 0 || len(parts[2]) == 0 {
		return "", "", "", illegal("PLAIN message has an empty user name or password")
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), nil
}

// ParseJAAS reads the options of a JAAS login module line:
// `<class> required key="value" key=value ...;`. Values may be quoted
// (with \" and \\ escapes).
func ParseJAAS(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, ";")
	fields := 0
	out := map[string]string{}
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	word := func() string {
		start := i
		for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '=' {
			i++
		}
		return s[start:i]
	}
	for {
		skip()
		if i >= len(s) {
			break
		}
		w := word()
		if i < len(s) && s[i] == '=' {
			i++
			var v strings.Builder
			if i < len(s) && s[i] == '"' {
				i++
				closed := false
				for i < len(s) {
					c := s[i]
					if c == '\\' && i+1 < len(s) {
						v.WriteByte(s[i+1])
						i += 2
						continue
					}
					if c == '"' {
						closed = true
						i++
						break
					}
					v.WriteByte(c)
					i++
				}
				if !closed {
					return nil, fmt.Errorf("sasl.jaas.config: unterminated quote in option %s", w)
				}
			} else {
				v.WriteString(word())
			}
			out[w] = v.String()
			continue
		}
		fields++
		if fields > 2 {
			return nil, fmt.Errorf("sasl.jaas.config: unexpected %q (want <LoginModule> required key=\"value\" ...;)", w)
		}
	}
	return out, nil
}
