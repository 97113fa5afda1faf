package authz

import (
	"fmt"
	"strings"
)

// Config is the authorizer's static configuration.
type Config struct {
	// SuperUsers are principals ("User:alice") allowed everything
	// (super.users, separated by ';').
	SuperUsers []string
	// AllowIfNoACL allows an operation on a resource no ACL matches at
	// all (allow.everyone.if.no.acl.found).
	AllowIfNoACL bool
}

// ParseSuperUsers splits super.users ("User:alice;User:bob"), refusing an
// entry that is not Type:Name.
func ParseSuperUsers(s string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(s, ";") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if i := strings.IndexByte(u, ':'); i <= 0 || i == len(u)-1 {
			return nil, fmt.Errorf("super.users entry %q is not of the form User:name", u)
		}
		out = append(out, u)
	}
	return out, nil
}

// Authorizer decides requests against one set of ACLs. It is immutable:
// a new metadata image gets a new Authorizer (New is cheap).
type Authorizer struct {
	cfg    Config
	super  map[string]bool
	byType map[ResourceType][]Binding
}

// New builds an authorizer over acls.
func New(cfg Config, acls []Binding) *Authorizer {
	a := &Authorizer{cfg: cfg, super: map[string]bool{}, byType: map[ResourceType][]Binding{}}
	for _, u := range cfg.SuperUsers {
		a.super[u] = true
	}
	for _, b := range acls {
		a.byType[b.ResourceType] = append(a.byType[b.ResourceType], b)
	}
	return a
}

// IsSuperUser reports whether principal is a super user.
func (a *Authorizer) IsSuperUser(principal string) bool { return a.super[principal] }

// patternMatches reports whether a binding's resource pattern covers
// the resource called name.
func patternMatches(b Binding, name string) bool {
	switch b.PatternType {
	case PatternLiteral:
		return b.ResourceName == name || b.ResourceName == Wildcard
	case PatternPrefixed:
		return strings.HasPrefix(name, b.ResourceName)
	}
	return false
}

// principalMatches: the entry's principal, or its type's wildcard
// ("User:*").
func principalMatches(aclPrincipal, principal string) bool {
	if aclPrincipal == principal {
		return true
	}
	i := strings.IndexByte(principal, ':')
	return i > 0 && aclPrincipal == principal[:i]+":"+Wildcard
}

// implies reports whether an ALLOW of granted covers op: ALL covers
// everything; Read, Write, Delete and Alter imply Describe; AlterConfigs
// implies DescribeConfigs (Kafka's AclEntry rules).
func implies(granted, op Operation) bool {
	if granted == op || granted == OpAll {
		return true
	}
	switch op {
	case OpDescribe:
		return granted == OpRead || granted == OpWrite || granted == OpDelete || granted == OpAlter
	case OpDescribeConfigs:
		return granted == OpAlterConfigs
	}
	return false
}

// Authorize decides whether principal, connected from host, may do op on
// the resource (rt, name). A super user may do anything. Otherwise a DENY
// entry that matches (its operation op or ALL) wins over any ALLOW; an
// ALLOW matches through the implications; and when no ACL at all covers
// the resource, AllowIfNoACL decides.
func (a *Authorizer) Authorize(principal, host string, op Operation, rt ResourceType, name string) bool {
	if a.super[principal] {
		return true
	}
	found, allowed := false, false
	for _, b := range a.byType[rt] {
		if !patternMatches(b, name) {
			continue
		}
		found = true
		if !principalMatches(b.Principal, principal) || (b.Host != Wildcard && b.Host != host) {
			continue
		}
		switch b.Permission {
		case Deny:
			if b.Operation == op || b.Operation == OpAll {
				return false
			}
		case Allow:
			if implies(b.Operation, op) {
				allowed = true
			}
		}
	}
	if !found {
		return a.cfg.AllowIfNoACL
	}
	return allowed
}

// AuthorizedOperations is the bit field Metadata, DescribeCluster and
// DescribeGroups return: bit op is set for each operation of the resource
// type the principal may do.
func (a *Authorizer) AuthorizedOperations(principal, host string, rt ResourceType, name string) int32 {
	var bits int32
	for op := OpRead; op <= OpDescribeTokens; op++ {
		if validOp(rt, op) && a.Authorize(principal, host, op, rt, name) {
			bits |= 1 << op
		}
	}
	return bits
}

// Filter selects bindings for DescribeAcls and DeleteAcls. A nil string
// and the ANY codes match everything.
type Filter struct {
	ResourceType ResourceType
	ResourceName *string
	PatternType  PatternType
	Principal    *string
	Host         *string
	Operation    Operation
	Permission   Permission
}

// Validate refuses a filter with an unknown code (INVALID_REQUEST).
func (f Filter) Validate() error {
	switch {
	case f.ResourceType < ResourceAny || f.ResourceType > ResourceUser:
		return fmt.Errorf("invalid resource type %d", f.ResourceType)
	case f.PatternType < PatternAny || f.PatternType > PatternPrefixed:
		return fmt.Errorf("invalid pattern type %d", f.PatternType)
	case f.Operation < OpAny || f.Operation > OpDescribeTokens:
		return fmt.Errorf("invalid operation %d", f.Operation)
	case f.Permission < PermissionAny || f.Permission > Allow:
		return fmt.Errorf("invalid permission %d", f.Permission)
	}
	return nil
}

// Matches reports whether b is selected by f. Pattern type MATCH selects
// the bindings that apply to the named resource: the literal name, the
// literal wildcard, and every prefix of the name.
func (f Filter) Matches(b Binding) bool {
	if f.ResourceType != ResourceAny && f.ResourceType != b.ResourceType {
		return false
	}
	switch f.PatternType {
	case PatternAny:
		if f.ResourceName != nil && *f.ResourceName != b.ResourceName {
			return false
		}
	case PatternMatch:
		if f.ResourceName != nil && !patternMatches(b, *f.ResourceName) {
			return false
		}
	default:
		if f.PatternType != b.PatternType || f.ResourceName != nil && *f.ResourceName != b.ResourceName {
			return false
		}
	}
	return (f.Principal == nil || *f.Principal == b.Principal) &&
		(f.Host == nil || *f.Host == b.Host) &&
		(f.Operation == OpAny || f.Operation == b.Operation) &&
		(f.Permission == PermissionAny || f.Permission == b.Permission)
}

// SupportedOperations is the bit field of every operation of a resource
// type: the authorized operations when no authorizer is configured.
func SupportedOperations(rt ResourceType) int32 {
	var bits int32
	for op := OpRead; op <= OpDescribeTokens; op++ {
		if validOp(rt, op) {
			bits |= 1 << op
		}
	}
	return bits
}

// AuthorizeAny reports whether principal may do op on some resource of
// type rt (Kafka's authorizeByResourceType, which InitProducerId uses for
// an idempotent producer allowed to write to any topic): a super user, an
// ALLOW for the principal and host that is not cancelled by a DENY of
// the same pattern or of the literal wildcard, or no ACL of the type at
// all when AllowIfNoACL.
func (a *Authorizer) AuthorizeAny(principal, host string, op Operation, rt ResourceType) bool {
	if a.super[principal] {
		return true
	}
	acls := a.byType[rt]
	if len(acls) == 0 {
		return a.cfg.AllowIfNoACL
	}
	applies := func(b Binding) bool {
		return principalMatches(b.Principal, principal) && (b.Host == Wildcard || b.Host == host)
	}
	denied := func(pattern Binding) bool {
		for _, d := range acls {
			if d.Permission != Deny || !applies(d) || (d.Operation != op && d.Operation != OpAll) {
				continue
			}
			if d.PatternType == PatternLiteral && d.ResourceName == Wildcard ||
				d.PatternType == PatternPrefixed && strings.HasPrefix(pattern.ResourceName, d.ResourceName) ||
				d.PatternType == pattern.PatternType && d.ResourceName == pattern.ResourceName {
				return true
			}
		}
		return false
	}
	for _, b := range acls {
		if b.Permission == Allow && applies(b) && implies(b.Operation, op) && !denied(b) {
			return true
		}
	}
	return false
}
