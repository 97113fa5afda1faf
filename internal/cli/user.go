package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func userCommand(env *Env, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Create, list and delete SCRAM users",
		Long: `SCRAM users (SCRAM-SHA-256 and SCRAM-SHA-512), kept by the cluster as
salted credentials, never as passwords. The password is salted here and only
the salted form is sent (AlterUserScramCredentials).

To create the first user, connect on a listener that needs no SASL (an
internal PLAINTEXT or SSL listener), or as a PLAIN user from the broker's JAAS
config.`,
	}
	cmd.AddCommand(userCreateCommand(env, getenv), userListCommand(env), userDeleteCommand(env))
	return cmd
}

// UserCreateOptions are the options of `user create`.
type UserCreateOptions struct {
	Name       string
	Password   string
	Mechanism  string
	Iterations int32
}

func userCreateCommand(env *Env, getenv func(string) string) *cobra.Command {
	var o UserCreateOptions
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a SCRAM user, or change its password",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if o.Password == "" {
				o.Password = getenv("STRATA_NEW_PASSWORD")
			}
			return UserCreate(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Password, "new-password", "", "the user's password (env STRATA_NEW_PASSWORD; asked for on a terminal when absent)")
	f.StringVar(&o.Mechanism, "mechanism", "SCRAM-SHA-512", "SCRAM-SHA-256 or SCRAM-SHA-512")
	f.Int32Var(&o.Iterations, "iterations", 8192, "SCRAM iterations (4096 to 16384)")
	addJSONFlag(cmd, env)
	return cmd
}

func scramMechanism(name string) (kadm.ScramMechanism, error) {
	switch strings.ToUpper(name) {
	case "SCRAM-SHA-256":
		return kadm.ScramSha256, nil
	case "SCRAM-SHA-512":
		return kadm.ScramSha512, nil
	}
	return 0, fmt.Errorf("--mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", name)
}

// UserCreate creates (or updates) a SCRAM user.
func UserCreate(ctx context.Context, env *Env, o UserCreateOptions) error {
	mech, err := scramMechanism(o.Mechanism)
	if err != nil {
		return err
	}
	if o.Password == "" {
		ask := env.Security.askPassword
		if ask == nil {
			ask = promptPassword
		}
		if o.Password, err = ask(fmt.Sprintf("New password for %s: ", o.Name)); err != nil {
			return fmt.Errorf("user create %s: no --new-password or STRATA_NEW_PASSWORD, and %w", o.Name, err)
		}
		if o.Password == "" {
			return errors.New("user create: empty password")
		}
	}
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: o.Name, Mechanism: mech, Iterations: o.Iterations, Password: o.Password}})
	if err != nil {
		return env.wrap("create user "+o.Name, err)
	}
	return env.writeUserResults("created", res)
}

func (e *Env) writeUserResults(done string, res kadm.AlteredUserSCRAMs) error {
	type result struct {
		User  string `json:"user"`
		Error string `json:"error,omitempty"`
	}
	var out []result
	var failed []failure
	t := newTable("USER", "STATUS")
	for _, r := range res.Sorted() {
		if r.Err != nil {
			msg := errWithMessage(r.Err, r.ErrMessage).Error()
			failed = append(failed, failure{r.User, msg})
			out = append(out, result{r.User, msg})
			t.styledRow(red, r.User, msg)
			continue
		}
		out = append(out, result{User: r.User})
		t.row(r.User, done)
	}
	var err error
	if e.JSON {
		err = writeJSON(e.Stdout, out)
	} else {
		err = t.write(e.Stdout, e.Color)
	}
	if err != nil {
		return err
	}
	return joinFailures("user", failed)
}

func userListCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list [NAME...]",
		Aliases: []string{"ls"},
		Short:   "List SCRAM users and their mechanisms",
		RunE: func(cmd *cobra.Command, args []string) error {
			return UserList(cmd.Context(), env, args)
		},
	}
	addJSONFlag(cmd, env)
	return cmd
}

// UserList lists SCRAM users (all, or the named ones).
func UserList(ctx context.Context, env *Env, names []string) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	res, err := adm.DescribeUserSCRAMs(ctx, names...)
	if err != nil {
		return env.wrap("list users", err)
	}
	type cred struct {
		Mechanism  string `json:"mechanism"`
		Iterations int32  `json:"iterations"`
	}
	type user struct {
		User        string `json:"user"`
		Credentials []cred `json:"credentials"`
		Error       string `json:"error,omitempty"`
	}
	var out []user
	var failed []failure
	t := newTable("USER", "MECHANISM", "ITERATIONS")
	for _, d := range res.Sorted() {
		if d.Err != nil {
			msg := errWithMessage(d.Err, d.ErrMessage).Error()
			failed = append(failed, failure{d.User, msg})
			out = append(out, user{User: d.User, Error: msg})
			t.styledRow(red, d.User, msg, "")
			continue
		}
		u := user{User: d.User}
		for _, c := range d.CredInfos {
			u.Credentials = append(u.Credentials, cred{c.Mechanism.String(), c.Iterations})
			t.row(d.User, c.Mechanism.String(), c.Iterations)
		}
		out = append(out, u)
	}
	if env.JSON {
		err = writeJSON(env.Stdout, out)
	} else {
		err = t.write(env.Stdout, env.Color)
	}
	if err != nil {
		return err
	}
	return joinFailures("user", failed)
}

// UserDeleteOptions are the options of `user delete`.
type UserDeleteOptions struct {
	Names     []string
	Mechanism string // "": every mechanism the user has
}

func userDeleteCommand(env *Env) *cobra.Command {
	var o UserDeleteOptions
	cmd := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete SCRAM users",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			return UserDelete(cmd.Context(), env, o)
		},
	}
	cmd.Flags().StringVar(&o.Mechanism, "mechanism", "", "delete only this mechanism's credential (default: all of the user's)")
	addJSONFlag(cmd, env)
	return cmd
}

// UserDelete deletes users' SCRAM credentials.
func UserDelete(ctx context.Context, env *Env, o UserDeleteOptions) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	var dels []kadm.DeleteSCRAM
	if o.Mechanism != "" {
		mech, err := scramMechanism(o.Mechanism)
		if err != nil {
			return err
		}
		for _, n := range o.Names {
			dels = append(dels, kadm.DeleteSCRAM{User: n, Mechanism: mech})
		}
	} else {
		// Every mechanism each user has; a user without any is named
		// with SHA-512 so that the broker says it does not exist.
		described, err := adm.DescribeUserSCRAMs(ctx, o.Names...)
		if err != nil {
			return env.wrap("delete users", err)
		}
		for _, n := range o.Names {
			d := described[n]
			if d.Err != nil || len(d.CredInfos) == 0 {
				dels = append(dels, kadm.DeleteSCRAM{User: n, Mechanism: kadm.ScramSha512})
				continue
			}
			for _, c := range d.CredInfos {
				dels = append(dels, kadm.DeleteSCRAM{User: n, Mechanism: c.Mechanism})
			}
		}
	}
	res, err := adm.AlterUserSCRAMs(ctx, dels, nil)
	if err != nil {
		return env.wrap("delete users", err)
	}
	return env.writeUserResults("deleted", res)
}
