package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
)

func aclCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Create, list and delete ACLs",
		Long: `ACLs, checked by brokers configured with Kafka's standard authorizer
(authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer).
An ACL allows or denies a principal (User:alice, or User:* for everyone),
connecting from a host (* for any), an operation on a resource: a topic, a
group, the cluster, a transactional id or a delegation token, named
literally (* for every resource of the type) or by prefix (--pattern
prefixed). A deny wins over any allow.

Creating and deleting ACLs needs Alter on the cluster, listing Describe:
run them as a super user (super.users).`,
	}
	cmd.AddCommand(aclCreateCommand(env), aclListCommand(env), aclDeleteCommand(env))
	return cmd
}

// ACLOptions name the ACLs of `acl create` (every field concrete) or
// select them for `acl list` and `acl delete` (an empty field matches
// anything).
type ACLOptions struct {
	Topic, Group, TransactionalID, DelegationToken string
	Cluster                                        bool
	Pattern                                        string // literal, prefixed; list/delete also any, match
	Principals                                     []string
	Host                                           string
	Operations                                     []string
	Deny                                           bool
	// Permission filters list and delete: allow, deny or "" (both).
	Permission string
}

func addACLFlags(cmd *cobra.Command, env *Env, o *ACLOptions, filter bool) {
	f := cmd.Flags()
	f.StringVar(&o.Topic, "topic", "", "a topic (* for every topic)")
	f.StringVar(&o.Group, "group", "", "a consumer group (* for every group)")
	f.StringVar(&o.TransactionalID, "transactional-id", "", "a transactional id (* for every one)")
	f.StringVar(&o.DelegationToken, "delegation-token", "", "a delegation token id")
	f.BoolVar(&o.Cluster, "cluster", false, "the cluster")
	f.StringSliceVar(&o.Principals, "principal", nil, "principal, Type:Name (User:alice, User:* for everyone); repeatable")
	f.StringSliceVar(&o.Operations, "operation", nil, "read, write, create, delete, alter, describe, cluster-action, describe-configs, alter-configs, idempotent-write, all; repeatable")
	if filter {
		f.StringVar(&o.Pattern, "pattern", "any", "any, match (every ACL that applies to the named resource), literal or prefixed")
		f.StringVar(&o.Host, "host", "", "host the ACL applies to (default: any)")
		f.StringVar(&o.Permission, "permission", "", "allow or deny (default: both)")
	} else {
		f.StringVar(&o.Pattern, "pattern", "literal", "literal (the name, or *) or prefixed (every name that starts with it)")
		f.StringVar(&o.Host, "host", "*", "host (IP address) the ACL applies to; * for any")
		f.BoolVar(&o.Deny, "deny", false, "deny instead of allow")
	}
	addJSONFlag(cmd, env)
}

// resource returns the resource type and name the options name.
func (o ACLOptions) resource(filter bool) (authz.ResourceType, *string, error) {
	var rt authz.ResourceType
	var name *string
	n := 0
	set := func(t authz.ResourceType, v string) {
		if v != "" {
			rt, name = t, &v
			n++
		}
	}
	set(authz.ResourceTopic, o.Topic)
	set(authz.ResourceGroup, o.Group)
	set(authz.ResourceTransactionalID, o.TransactionalID)
	set(authz.ResourceDelegationToken, o.DelegationToken)
	if o.Cluster {
		set(authz.ResourceCluster, authz.ClusterName)
	}
	switch {
	case n > 1:
		return 0, nil, errors.New("name one resource: --topic, --group, --transactional-id, --delegation-token or --cluster")
	case n == 0 && !filter:
		return 0, nil, errors.New("name the resource: --topic, --group, --transactional-id, --delegation-token or --cluster")
	case n == 0:
		return authz.ResourceAny, nil, nil
	}
	return rt, name, nil
}

func parseOps(names []string, filter bool) ([]authz.Operation, error) {
	if len(names) == 0 {
		if filter {
			return []authz.Operation{authz.OpAny}, nil
		}
		return nil, errors.New("name at least one --operation")
	}
	var out []authz.Operation
	for _, n := range names {
		op, err := authz.ParseOperation(n)
		if err != nil {
			return nil, fmt.Errorf("--operation: %w", err)
		}
		out = append(out, op)
	}
	return out, nil
}

func aclCreateCommand(env *Env) *cobra.Command {
	var o ACLOptions
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create ACLs: each --principal gets each --operation on the resource",
		Example: `  strata acl create --principal User:alice --operation read --topic orders
  strata acl create --principal User:alice --operation read --group orders- --pattern prefixed
  strata acl create --principal User:* --operation write --topic audit --deny`,
		RunE: func(cmd *cobra.Command, _ []string) error { return ACLCreate(cmd.Context(), env, o) },
	}
	addACLFlags(cmd, env, &o, false)
	return cmd
}

func aclListCommand(env *Env) *cobra.Command {
	var o ACLOptions
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List ACLs (all, or those the flags select)",
		RunE:    func(cmd *cobra.Command, _ []string) error { return ACLList(cmd.Context(), env, o) },
	}
	addACLFlags(cmd, env, &o, true)
	return cmd
}

func aclDeleteCommand(env *Env) *cobra.Command {
	var o ACLOptions
	var all bool
	cmd := &cobra.Command{
		Use:     "delete",
		Aliases: []string{"rm"},
		Short:   "Delete the ACLs the flags select",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !all && o.Topic == "" && o.Group == "" && o.TransactionalID == "" && o.DelegationToken == "" && !o.Cluster && len(o.Principals) == 0 {
				return errors.New("acl delete: select ACLs with a resource or --principal, or pass --all")
			}
			return ACLDelete(cmd.Context(), env, o)
		},
	}
	addACLFlags(cmd, env, &o, true)
	cmd.Flags().BoolVar(&all, "all", false, "with no other selection: delete every ACL")
	return cmd
}

// filters builds the DescribeAcls/DeleteAcls filters the options select
// (one per principal and operation).
func (o ACLOptions) filters() ([]authz.Filter, error) {
	rt, name, err := o.resource(true)
	if err != nil {
		return nil, err
	}
	pt, err := authz.ParsePatternType(o.Pattern)
	if err != nil {
		return nil, fmt.Errorf("--pattern: %w", err)
	}
	ops, err := parseOps(o.Operations, true)
	if err != nil {
		return nil, err
	}
	perm := authz.PermissionAny
	if o.Permission != "" {
		if perm, err = authz.ParsePermission(o.Permission); err != nil {
			return nil, fmt.Errorf("--permission: %w", err)
		}
	}
	var host *string
	if o.Host != "" {
		host = &o.Host
	}
	principals := []*string{nil}
	if len(o.Principals) > 0 {
		principals = nil
		for i := range o.Principals {
			principals = append(principals, &o.Principals[i])
		}
	}
	var out []authz.Filter
	for _, p := range principals {
		for _, op := range ops {
			out = append(out, authz.Filter{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: p, Host: host, Operation: op, Permission: perm})
		}
	}
	return out, nil
}

// ACLCreate creates ACLs.
func ACLCreate(ctx context.Context, env *Env, o ACLOptions) error {
	rt, name, err := o.resource(false)
	if err != nil {
		return err
	}
	pt, err := authz.ParsePatternType(o.Pattern)
	if err != nil {
		return fmt.Errorf("--pattern: %w", err)
	}
	ops, err := parseOps(o.Operations, false)
	if err != nil {
		return err
	}
	if len(o.Principals) == 0 {
		return errors.New("name at least one --principal (User:name)")
	}
	perm := authz.Allow
	if o.Deny {
		perm = authz.Deny
	}
	req := kmsg.NewPtrCreateACLsRequest()
	var bindings []authz.Binding
	for _, p := range o.Principals {
		for _, op := range ops {
			b := authz.Binding{ResourceType: rt, ResourceName: *name, PatternType: pt, Principal: p, Host: o.Host, Operation: op, Permission: perm}
			if err := b.Validate(); err != nil {
				return fmt.Errorf("acl create: %w", err)
			}
			bindings = append(bindings, b)
			req.Creations = append(req.Creations, kmsg.CreateACLsRequestCreation{ResourceType: kmsg.ACLResourceType(rt), ResourceName: *name,
				ResourcePatternType: kmsg.ACLResourcePatternType(pt), Principal: p, Host: o.Host, Operation: kmsg.ACLOperation(op), PermissionType: kmsg.ACLPermissionType(perm)})
		}
	}
	_, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return env.wrap("create ACLs", err)
	}
	var failed []failure
	var results []aclRow
	for i, r := range resp.Results {
		row := toRow(bindings[i])
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			msg := errWithMessage(err, deref(r.ErrorMessage)).Error()
			failed = append(failed, failure{bindings[i].String(), msg})
			row.Error = msg
		}
		results = append(results, row)
	}
	if err := env.writeACLs(results, "created"); err != nil {
		return err
	}
	return joinFailures("acl", failed)
}

// ACLList lists the ACLs the options select.
func ACLList(ctx context.Context, env *Env, o ACLOptions) error {
	filters, err := o.filters()
	if err != nil {
		return err
	}
	_, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	var rows []aclRow
	seen := map[aclRow]bool{}
	for _, f := range filters {
		req := kmsg.NewPtrDescribeACLsRequest()
		req.ResourceType, req.ResourceName, req.ResourcePatternType = kmsg.ACLResourceType(f.ResourceType), f.ResourceName, kmsg.ACLResourcePatternType(f.PatternType)
		req.Principal, req.Host, req.Operation, req.PermissionType = f.Principal, f.Host, kmsg.ACLOperation(f.Operation), kmsg.ACLPermissionType(f.Permission)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return env.wrap("list ACLs", err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return fmt.Errorf("list ACLs: %w", errWithMessage(err, deref(resp.ErrorMessage)))
		}
		for _, res := range resp.Resources {
			for _, a := range res.ACLs {
				row := toRow(authz.Binding{ResourceType: authz.ResourceType(res.ResourceType), ResourceName: res.ResourceName,
					PatternType: authz.PatternType(res.ResourcePatternType), Principal: a.Principal, Host: a.Host,
					Operation: authz.Operation(a.Operation), Permission: authz.Permission(a.PermissionType)})
				if !seen[row] {
					seen[row] = true
					rows = append(rows, row)
				}
			}
		}
	}
	return env.writeACLs(rows, "")
}

// ACLDelete deletes the ACLs the options select.
func ACLDelete(ctx context.Context, env *Env, o ACLOptions) error {
	filters, err := o.filters()
	if err != nil {
		return err
	}
	req := kmsg.NewPtrDeleteACLsRequest()
	for _, f := range filters {
		req.Filters = append(req.Filters, kmsg.DeleteACLsRequestFilter{ResourceType: kmsg.ACLResourceType(f.ResourceType), ResourceName: f.ResourceName,
			ResourcePatternType: kmsg.ACLResourcePatternType(f.PatternType), Principal: f.Principal, Host: f.Host,
			Operation: kmsg.ACLOperation(f.Operation), PermissionType: kmsg.ACLPermissionType(f.Permission)})
	}
	_, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return env.wrap("delete ACLs", err)
	}
	var rows []aclRow
	var failed []failure
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			failed = append(failed, failure{"filter", errWithMessage(err, deref(r.ErrorMessage)).Error()})
			continue
		}
		for _, a := range r.MatchingACLs {
			rows = append(rows, toRow(authz.Binding{ResourceType: authz.ResourceType(a.ResourceType), ResourceName: a.ResourceName,
				PatternType: authz.PatternType(a.ResourcePatternType), Principal: a.Principal, Host: a.Host,
				Operation: authz.Operation(a.Operation), Permission: authz.Permission(a.PermissionType)}))
		}
	}
	if err := env.writeACLs(rows, "deleted"); err != nil {
		return err
	}
	return joinFailures("acl", failed)
}

type aclRow struct {
	ResourceType string `json:"resource_type"`
	Resource     string `json:"resource"`
	Pattern      string `json:"pattern"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
	Error        string `json:"error,omitempty"`
}

func toRow(b authz.Binding) aclRow {
	lower := func(s fmt.Stringer) string { return strings.ToLower(strings.ReplaceAll(s.String(), "_", "-")) }
	return aclRow{ResourceType: lower(b.ResourceType), Resource: b.ResourceName, Pattern: lower(b.PatternType), Principal: b.Principal,
		Host: b.Host, Operation: lower(b.Operation), Permission: lower(b.Permission)}
}

func (e *Env) writeACLs(rows []aclRow, done string) error {
	if e.JSON {
		if rows == nil {
			rows = []aclRow{}
		}
		return writeJSON(e.Stdout, rows)
	}
	head := []string{"RESOURCE-TYPE", "RESOURCE", "PATTERN", "PRINCIPAL", "HOST", "OPERATION", "PERMISSION"}
	if done != "" {
		head = append(head, "STATUS")
	}
	t := newTable(head...)
	for _, r := range rows {
		cells := []any{r.ResourceType, r.Resource, r.Pattern, r.Principal, r.Host, r.Operation, r.Permission}
		switch {
		case r.Error != "":
			t.styledRow(red, append(cells, r.Error)...)
		case done != "":
			t.row(append(cells, done)...)
		default:
			t.row(cells...)
		}
	}
	return t.write(e.Stdout, e.Color)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
