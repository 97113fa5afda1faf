package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func quotaCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quota",
		Short: "Set, list and delete client quotas",
		Long: `Client quotas, as Kafka's (kafka-configs --entity-type users/clients): a
quota applies to a user (the authenticated principal's name, ANONYMOUS without
authentication), a client id, or a user's client id; --default user or
--default client-id stands for every user or client id that has no quota of
its own. The most specific entity with a quota wins: user and client id, then
user with the default client id, then user, then the default user with the
client id, and so on down to the default client id.

Keys: producer_byte_rate and consumer_byte_rate (bytes per second, per
broker), request_percentage (percent of one request handler thread, per
broker), controller_mutation_rate (partitions created or deleted per second).
A client over its quota is answered with a throttle time and not read from
until it has passed.

Here --user and --client-id name the quota's entity; the SASL user and the
client id of this command itself come from the profile or STRATA_USER.
Setting and deleting needs AlterConfigs on the cluster, listing
DescribeConfigs.`,
	}
	cmd.AddCommand(quotaSetCommand(env), quotaListCommand(env), quotaDeleteCommand(env))
	return cmd
}

// QuotaEntity names a quota's entity: a user, a client id, or both; a
// part named in Defaults is <default> instead.
type QuotaEntity struct {
	User     string
	ClientID string
	Defaults []string // "user", "client-id"
}

func addQuotaEntityFlags(cmd *cobra.Command, e *QuotaEntity, what string) {
	f := cmd.Flags()
	f.StringVar(&e.User, "user", "", what+" user (the principal's name)")
	f.StringVar(&e.ClientID, "client-id", "", what+" client id")
	f.StringSliceVar(&e.Defaults, "default", nil, what+" default user or client id: user, client-id; repeatable")
}

// components turns the flags into an entity.
func (e QuotaEntity) components() (kadm.ClientQuotaEntity, error) {
	var out kadm.ClientQuotaEntity
	def := map[string]bool{}
	for _, d := range e.Defaults {
		switch d = strings.ToLower(strings.TrimSpace(d)); d {
		case "user", "client-id":
			def[d] = true
		case "client", "clients", "client_id":
			def["client-id"] = true
		case "users":
			def["user"] = true
		default:
			return nil, fmt.Errorf("--default %q: want user or client-id", d)
		}
	}
	if e.User != "" && def["user"] {
		return nil, errors.New("--user and --default user name two entities: give one")
	}
	if e.ClientID != "" && def["client-id"] {
		return nil, errors.New("--client-id and --default client-id name two entities: give one")
	}
	switch {
	case e.User != "":
		out = append(out, kadm.ClientQuotaEntityComponent{Type: "user", Name: &e.User})
	case def["user"]:
		out = append(out, kadm.ClientQuotaEntityComponent{Type: "user"})
	}
	switch {
	case e.ClientID != "":
		out = append(out, kadm.ClientQuotaEntityComponent{Type: "client-id", Name: &e.ClientID})
	case def["client-id"]:
		out = append(out, kadm.ClientQuotaEntityComponent{Type: "client-id"})
	}
	return out, nil
}

// quotaKeys are the quota keys and their flags, in display order.
var quotaKeys = []struct{ key, flag, doc string }{
	{"producer_byte_rate", "producer-byte-rate", "bytes per second the entity may produce to each broker"},
	{"consumer_byte_rate", "consumer-byte-rate", "bytes per second the entity may fetch from each broker"},
	{"request_percentage", "request-percentage", "percent of one request handler thread on each broker"},
	{"controller_mutation_rate", "controller-mutation-rate", "partitions per second the entity may create or delete"},
}

// QuotaSetOptions are the options of `quota set`.
type QuotaSetOptions struct {
	Entity QuotaEntity
	Values map[string]float64 // by key
	DryRun bool
}

func quotaSetCommand(env *Env) *cobra.Command {
	var o QuotaSetOptions
	vals := make([]float64, len(quotaKeys))
	cmd := &cobra.Command{
		Use:   "set (--user NAME | --client-id ID | --default user|client-id)... --producer-byte-rate N ...",
		Short: "Set an entity's quotas (the keys not given are left as they are)",
		Args:  cobra.NoArgs,
		Example: `  strata quota set --user alice --producer-byte-rate 1048576
  strata quota set --default client-id --consumer-byte-rate 10485760
  strata quota set --user alice --default client-id --request-percentage 50`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Values = map[string]float64{}
			for i, k := range quotaKeys {
				if cmd.Flags().Changed(k.flag) {
					o.Values[k.key] = vals[i]
				}
			}
			return QuotaSet(cmd.Context(), env, o)
		},
	}
	addQuotaEntityFlags(cmd, &o.Entity, "the quota's")
	for i, k := range quotaKeys {
		cmd.Flags().Float64Var(&vals[i], k.flag, 0, k.doc)
	}
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "have the cluster validate the change without making it (validate_only)")
	addJSONFlag(cmd, env)
	return cmd
}

// QuotaSet sets quotas of one entity.
func QuotaSet(ctx context.Context, env *Env, o QuotaSetOptions) error {
	entity, err := o.Entity.components()
	if err != nil {
		return err
	}
	if len(entity) == 0 {
		return errors.New("quota set: name the entity with --user, --client-id or --default")
	}
	if len(o.Values) == 0 {
		return errors.New("quota set: give at least one of --producer-byte-rate, --consumer-byte-rate, --request-percentage, --controller-mutation-rate")
	}
	var ops []kadm.AlterClientQuotaOp
	for _, k := range quotaKeys {
		if v, ok := o.Values[k.key]; ok {
			ops = append(ops, kadm.AlterClientQuotaOp{Key: k.key, Value: v})
		}
	}
	done := "set"
	if o.DryRun {
		done = "valid (dry run)"
	}
	return env.alterQuotas(ctx, "set quota", kadm.AlterClientQuotaEntry{Entity: entity, Ops: ops}, o.DryRun, done)
}

// alterQuotas sends one entity's changes and reports the outcome.
func (e *Env) alterQuotas(ctx context.Context, what string, entry kadm.AlterClientQuotaEntry, dryRun bool, done string) error {
	adm, cl, err := e.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := e.opCtx(ctx)
	defer cancel()
	alter := adm.AlterClientQuotas
	if dryRun {
		alter = adm.ValidateAlterClientQuotas
	}
	res, err := alter(ctx, []kadm.AlterClientQuotaEntry{entry})
	if err != nil {
		return e.wrap(what, err)
	}
	name := entityString(entry.Entity)
	type result struct {
		Entity string             `json:"entity"`
		Keys   map[string]float64 `json:"keys,omitempty"`
		Status string             `json:"status"`
		Error  string             `json:"error,omitempty"`
	}
	out := result{Entity: name, Status: done, Keys: map[string]float64{}}
	t := newTable("ENTITY", "KEY", "VALUE", "STATUS")
	var failed []failure
	for _, r := range res {
		if r.Err != nil {
			msg := errWithMessage(r.Err, r.ErrMessage).Error()
			failed = append(failed, failure{name, msg})
			out.Status, out.Error = "failed", msg
			t.styledRow(red, name, "", "", msg)
		}
	}
	if len(failed) == 0 {
		for _, op := range entry.Ops {
			v := formatQuota(op.Value)
			if op.Remove {
				v = ""
			} else {
				out.Keys[op.Key] = op.Value
			}
			t.row(name, op.Key, v, done)
		}
	}
	if e.JSON {
		err = writeJSON(e.Stdout, out)
	} else {
		err = t.write(e.Stdout, e.Color)
	}
	if err != nil {
		return err
	}
	return joinFailures(what, failed)
}

// entityString prints an entity as kafka-configs does: user=alice,
// client-id=<default>.
func entityString(e kadm.ClientQuotaEntity) string {
	parts := make([]string, len(e))
	for i, c := range e {
		parts[i] = c.String()
	}
	return strings.Join(parts, ",")
}

func formatQuota(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// QuotaListOptions are the options of `quota list`.
type QuotaListOptions struct {
	Entity QuotaEntity
	// AnyUser, AnyClientID: match every entity with a user (client id),
	// named or default.
	AnyUser, AnyClientID bool
	// Strict: only entities with exactly the parts named.
	Strict bool
}

func quotaListCommand(env *Env) *cobra.Command {
	var o QuotaListOptions
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List client quotas (all, or those of the entities named)",
		Args:    cobra.NoArgs,
		Example: `  strata quota list
  strata quota list --user alice
  strata quota list --default client-id --strict`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return QuotaList(cmd.Context(), env, o)
		},
	}
	addQuotaEntityFlags(cmd, &o.Entity, "only quotas of this")
	f := cmd.Flags()
	f.BoolVar(&o.AnyUser, "any-user", false, "only entities with a user part (named or default)")
	f.BoolVar(&o.AnyClientID, "any-client-id", false, "only entities with a client id part (named or default)")
	f.BoolVar(&o.Strict, "strict", false, "only entities with exactly the parts named (e.g. a user's own quota, not its client ids')")
	addJSONFlag(cmd, env)
	return cmd
}

// QuotaList lists quotas matching a filter (DescribeClientQuotas).
func QuotaList(ctx context.Context, env *Env, o QuotaListOptions) error {
	entity, err := o.Entity.components()
	if err != nil {
		return err
	}
	filter := exactFilter(entity)
	for typ, any := range map[string]bool{"user": o.AnyUser, "client-id": o.AnyClientID} {
		if !any {
			continue
		}
		for _, c := range entity {
			if c.Type == typ {
				return fmt.Errorf("--any-%s with a %s named: give one", typ, typ)
			}
		}
		filter = append(filter, kadm.DescribeClientQuotaComponent{Type: typ, MatchType: 2})
	}
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	res, err := adm.DescribeClientQuotas(ctx, o.Strict, filter)
	if err != nil {
		return env.wrap("list quotas", err)
	}
	type row struct {
		User     *string            `json:"user,omitempty"`
		Default  []string           `json:"default,omitempty"`
		ClientID *string            `json:"client_id,omitempty"`
		Entity   string             `json:"entity"`
		Quotas   map[string]float64 `json:"quotas"`
	}
	rows := make([]row, 0, len(res))
	for _, d := range res {
		r := row{Entity: entityString(d.Entity), Quotas: map[string]float64{}}
		for _, c := range d.Entity {
			if c.Name == nil {
				r.Default = append(r.Default, c.Type)
				continue
			}
			switch c.Type {
			case "user":
				r.User = c.Name
			case "client-id":
				r.ClientID = c.Name
			}
		}
		for _, v := range d.Values {
			r.Quotas[v.Key] = v.Value
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Entity < rows[j].Entity })
	if env.JSON {
		return writeJSON(env.Stdout, rows)
	}
	t := newTable("ENTITY", "KEY", "VALUE")
	for _, r := range rows {
		for _, k := range quotaKeys {
			if v, ok := r.Quotas[k.key]; ok {
				t.row(r.Entity, k.key, formatQuota(v))
			}
		}
	}
	return t.write(env.Stdout, env.Color)
}

// QuotaDeleteOptions are the options of `quota delete`.
type QuotaDeleteOptions struct {
	Entity QuotaEntity
	Keys   []string // "": every key the entity has
	DryRun bool
}

func quotaDeleteCommand(env *Env) *cobra.Command {
	var o QuotaDeleteOptions
	cmd := &cobra.Command{
		Use:     "delete (--user NAME | --client-id ID | --default user|client-id)... [--key KEY]...",
		Aliases: []string{"rm"},
		Short:   "Delete an entity's quotas (all, or the keys named)",
		Args:    cobra.NoArgs,
		Example: `  strata quota delete --user alice
  strata quota delete --default client-id --key consumer_byte_rate`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return QuotaDelete(cmd.Context(), env, o)
		},
	}
	addQuotaEntityFlags(cmd, &o.Entity, "the quota's")
	cmd.Flags().StringSliceVar(&o.Keys, "key", nil, "a quota key to delete (producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate); repeatable; default: all")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "have the cluster validate the change without making it (validate_only)")
	addJSONFlag(cmd, env)
	return cmd
}

// QuotaDelete removes quotas of one entity.
func QuotaDelete(ctx context.Context, env *Env, o QuotaDeleteOptions) error {
	entity, err := o.Entity.components()
	if err != nil {
		return err
	}
	if len(entity) == 0 {
		return errors.New("quota delete: name the entity with --user, --client-id or --default")
	}
	keys := o.Keys
	if len(keys) == 0 {
		// Every key the entity has.
		if keys, err = env.quotaKeysOf(ctx, entity); err != nil {
			return err
		}
		if len(keys) == 0 {
			return fmt.Errorf("quota delete %s: no quota is set", entityString(entity))
		}
	}
	ops := make([]kadm.AlterClientQuotaOp, 0, len(keys))
	for _, k := range keys {
		ops = append(ops, kadm.AlterClientQuotaOp{Key: k, Remove: true})
	}
	done := "deleted"
	if o.DryRun {
		done = "valid (dry run)"
	}
	return env.alterQuotas(ctx, "delete quota", kadm.AlterClientQuotaEntry{Entity: entity, Ops: ops}, o.DryRun, done)
}

// quotaKeysOf returns the keys set on exactly entity, in display order.
func (e *Env) quotaKeysOf(ctx context.Context, entity kadm.ClientQuotaEntity) ([]string, error) {
	adm, cl, err := e.newAdmin()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := e.opCtx(ctx)
	defer cancel()
	filter := exactFilter(entity)
	res, err := adm.DescribeClientQuotas(ctx, true, filter)
	if err != nil {
		return nil, e.wrap("delete quota", err)
	}
	have := map[string]bool{}
	for _, d := range res {
		for _, v := range d.Values {
			have[v.Key] = true
		}
	}
	var keys []string
	for _, k := range quotaKeys {
		if have[k.key] {
			keys = append(keys, k.key)
		}
	}
	return keys, nil
}

// exactFilter matches each part of entity exactly (a name, or the
// default).
func exactFilter(entity kadm.ClientQuotaEntity) []kadm.DescribeClientQuotaComponent {
	var filter []kadm.DescribeClientQuotaComponent
	for _, c := range entity {
		if c.Name != nil {
			filter = append(filter, kadm.DescribeClientQuotaComponent{Type: c.Type, MatchName: c.Name, MatchType: 0})
		} else {
			filter = append(filter, kadm.DescribeClientQuotaComponent{Type: c.Type, MatchType: 1})
		}
	}
	return filter
}
