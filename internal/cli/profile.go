package cli

// Named profiles (as rpk's): a cluster's brokers and TLS/SASL settings are
// saved once and picked by name, so that `strata --profile prod topic list`
// or `strata profile use prod` replaces repeating every flag. Precedence,
// highest first: a flag given on the command line, its STRATA_*
// environment variable, the profile, the built-in default.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// Profile is one named cluster's connection settings.
type Profile struct {
	Brokers       string `json:"brokers,omitempty"`
	TLS           bool   `json:"tls,omitempty"`
	TLSCA         string `json:"tls_ca,omitempty"`
	TLSCert       string `json:"tls_cert,omitempty"`
	TLSKey        string `json:"tls_key,omitempty"`
	SASLMechanism string `json:"sasl_mechanism,omitempty"`
	User          string `json:"user,omitempty"`
	Password      string `json:"password,omitempty"`
}

// profileFile is the profiles file: the profiles and the one in use.
type profileFile struct {
	Current  string              `json:"current,omitempty"`
	Profiles map[string]*Profile `json:"profiles"`
}

// profilePath is $STRATA_CONFIG, else $XDG_CONFIG_HOME/strata/profiles.json,
// else ~/.config/strata/profiles.json.
func profilePath(getenv func(string) string) (string, error) {
	if p := getenv("STRATA_CONFIG"); p != "" {
		return p, nil
	}
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("profiles: neither STRATA_CONFIG, XDG_CONFIG_HOME nor HOME is set")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "strata", "profiles.json"), nil
}

func loadProfiles(path string) (*profileFile, error) {
	f := &profileFile{Profiles: map[string]*Profile{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("profiles file %s: %w", path, err)
	}
	if f.Profiles == nil {
		f.Profiles = map[string]*Profile{}
	}
	return f, nil
}

// save writes the file readable by its owner only: it may hold passwords.
func (f *profileFile) save(path string) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	return nil
}

// NoProfileAnnotation marks a command that connects to no cluster
// (strata serve, config, version): profiles are not read for it, so that
// a broker started with another user's HOME (an unreadable
// ~/.config/strata) still starts.
const NoProfileAnnotation = "strata/no-profile"

// applyProfile fills the connection settings a flag or the environment
// did not set from the selected profile (--profile, STRATA_PROFILE, or the
// file's current one). brokerList is the --brokers value to fill.
func applyProfile(cmd *cobra.Command, env *Env, name string, brokerList *string, getenv func(string) string) error {
	if cmd.Annotations[NoProfileAnnotation] != "" {
		return nil // not a client: strata serve must not depend on a CLI file
	}
	path, err := profilePath(getenv)
	if err != nil {
		if name != "" {
			return err
		}
		return nil // no profiles without a home: not an error unless asked for
	}
	f, err := loadProfiles(path)
	if err != nil {
		return err
	}
	if name == "" {
		name = f.Current
	}
	if name == "" {
		return nil
	}
	p, ok := f.Profiles[name]
	if !ok {
		return fmt.Errorf("profile %q does not exist in %s (strata profile list)", name, path)
	}
	unset := func(flag, envVar string) bool {
		// The root's connection flag itself: a command may shadow its
		// name with a flag of its own (quota's --user and --client-id
		// name a quota entity).
		if fl := cmd.Root().PersistentFlags().Lookup(flag); fl != nil && fl.Changed {
			return false
		}
		return envVar == "" || getenv(envVar) == ""
	}
	s := &env.Security
	if p.Brokers != "" && unset("brokers", "STRATA_BROKERS") {
		*brokerList = p.Brokers
	}
	if p.TLS && unset("tls", "STRATA_TLS") {
		s.TLS = true
	}
	for _, f := range []struct {
		flag, envVar string
		dst          *string
		val          string
	}{
		{"tls-ca", "STRATA_TLS_CA", &s.CAFile, p.TLSCA},
		{"tls-cert", "STRATA_TLS_CERT", &s.CertFile, p.TLSCert},
		{"tls-key", "STRATA_TLS_KEY", &s.KeyFile, p.TLSKey},
		{"sasl-mechanism", "STRATA_SASL_MECHANISM", &s.Mechanism, p.SASLMechanism},
		{"user", "STRATA_USER", &s.User, p.User},
		{"password", "STRATA_PASSWORD", &s.Password, p.Password},
	} {
		if f.val != "" && unset(f.flag, f.envVar) {
			*f.dst = f.val
		}
	}
	return nil
}

// profileCommand is `strata profile`.
func profileCommand(env *Env, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Named cluster profiles: brokers, TLS and SASL settings saved once (as rpk profiles)",
		Long: `A profile saves a cluster's --brokers, --tls* and SASL flags under a name,
in $STRATA_CONFIG (default ~/.config/strata/profiles.json, readable by its
owner only: it may hold a password). Commands use the current profile
(strata profile use), or the one named by --profile or STRATA_PROFILE; a
flag or STRATA_* variable given explicitly still wins.`,
		Example: `  strata --brokers kafka-1:9093 --tls-ca ca.pem --sasl-mechanism SCRAM-SHA-512 --user alice profile create prod
  strata profile use prod
  strata topic list                    # uses prod
  strata --profile dev topic list`,
	}
	// edit loads the profiles file, lets fn change it, and saves it.
	edit := func(fn func(path string, f *profileFile) error) error {
		p, err := profilePath(getenv)
		if err != nil {
			return err
		}
		f, err := loadProfiles(p)
		if err != nil {
			return err
		}
		if err := fn(p, f); err != nil {
			return err
		}
		return f.save(p)
	}
	exists := func(f *profileFile, name string) error {
		if _, ok := f.Profiles[name]; !ok {
			return fmt.Errorf("profile %q does not exist (strata profile list)", name)
		}
		return nil
	}
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Save the connection flags given with this command as profile NAME (replacing one of that name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var saved string
			err := edit(func(p string, f *profileFile) error {
				s := env.Security
				f.Profiles[args[0]] = &Profile{Brokers: strings.Join(env.Brokers, ","), TLS: s.TLS, TLSCA: s.CAFile, TLSCert: s.CertFile, TLSKey: s.KeyFile,
					SASLMechanism: s.Mechanism, User: s.User, Password: s.Password}
				if f.Current == "" {
					f.Current = args[0]
				}
				saved = p
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "profile %s saved in %s\n", args[0], saved)
			return nil
		},
	}
	use := &cobra.Command{
		Use:   "use NAME",
		Short: "Make NAME the profile commands use",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return edit(func(_ string, f *profileFile) error {
				if err := exists(f, args[0]); err != nil {
					return err
				}
				f.Current = args[0]
				return nil
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete profile NAME",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return edit(func(_ string, f *profileFile) error {
				if err := exists(f, args[0]); err != nil {
					return err
				}
				delete(f.Profiles, args[0])
				if f.Current == args[0] {
					f.Current = ""
				}
				return nil
			})
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the profiles (* marks the current one; passwords are not shown)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := profilePath(getenv)
			if err != nil {
				return err
			}
			f, err := loadProfiles(p)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(f.Profiles))
			for n := range f.Profiles {
				names = append(names, n)
			}
			sort.Strings(names)
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tBROKERS\tTLS\tSASL\tUSER")
			for _, n := range names {
				pr := f.Profiles[n]
				mark := ""
				if n == f.Current {
					mark = "*"
				}
				tlsOn := "no"
				if pr.TLS || pr.TLSCA != "" || pr.TLSCert != "" {
					tlsOn = "yes"
				}
				fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\n", n, mark, orDash(pr.Brokers), tlsOn, orDash(pr.SASLMechanism), orDash(pr.User))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(create, use, del, list)
	return cmd
}
