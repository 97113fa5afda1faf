package authz

import "testing"

func lit(rt ResourceType, name, principal string, op Operation, perm Permission) Binding {
	return Binding{ResourceType: rt, ResourceName: name, PatternType: PatternLiteral, Principal: principal, Host: Wildcard, Operation: op, Permission: perm}
}

func TestAuthorize(t *testing.T) {
	alice, bob := "User:alice", "User:bob"
	prefixed := func(name, principal string, op Operation, perm Permission) Binding {
		b := lit(ResourceTopic, name, principal, op, perm)
		b.PatternType = PatternPrefixed
		return b
	}
	onHost := func(b Binding, host string) Binding { b.Host = host; return b }
	cases := []struct {
		name      string
		cfg       Config
		acls      []Binding
		principal string
		host      string
		op        Operation
		rt        ResourceType
		res       string
		want      bool
	}{
		{"no acl, default deny", Config{}, nil, alice, "h", OpRead, ResourceTopic, "t", false},
		{"no acl, allow everyone", Config{AllowIfNoACL: true}, nil, alice, "h", OpRead, ResourceTopic, "t", true},
		{"acl for another principal on the resource: no-acl rule does not apply", Config{AllowIfNoACL: true},
			[]Binding{lit(ResourceTopic, "t", bob, OpRead, Allow)}, alice, "h", OpRead, ResourceTopic, "t", false},
		{"acl on another resource: no-acl rule applies", Config{AllowIfNoACL: true},
			[]Binding{lit(ResourceTopic, "u", bob, OpRead, Allow)}, alice, "h", OpRead, ResourceTopic, "t", true},
		{"super user", Config{SuperUsers: []string{alice}},
			[]Binding{lit(ResourceTopic, "t", alice, OpAll, Deny)}, alice, "h", OpWrite, ResourceTopic, "t", true},
		{"literal allow", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpRead, Allow)}, alice, "h", OpRead, ResourceTopic, "t", true},
		{"literal is not a prefix", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpRead, Allow)}, alice, "h", OpRead, ResourceTopic, "tt", false},
		{"wildcard resource", Config{}, []Binding{lit(ResourceTopic, "*", alice, OpRead, Allow)}, alice, "h", OpRead, ResourceTopic, "any", true},
		{"prefixed", Config{}, []Binding{prefixed("fin-", alice, OpWrite, Allow)}, alice, "h", OpWrite, ResourceTopic, "fin-ledger", true},
		{"prefixed does not match shorter", Config{}, []Binding{prefixed("fin-", alice, OpWrite, Allow)}, alice, "h", OpWrite, ResourceTopic, "fin", false},
		{"prefixed * is not a wildcard", Config{}, []Binding{prefixed("*", alice, OpWrite, Allow)}, alice, "h", OpWrite, ResourceTopic, "x", false},
		{"wildcard principal", Config{}, []Binding{lit(ResourceTopic, "t", "User:*", OpRead, Allow)}, bob, "h", OpRead, ResourceTopic, "t", true},
		{"other operation", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpRead, Allow)}, alice, "h", OpWrite, ResourceTopic, "t", false},
		{"read implies describe", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpRead, Allow)}, alice, "h", OpDescribe, ResourceTopic, "t", true},
		{"write implies describe", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpWrite, Allow)}, alice, "h", OpDescribe, ResourceTopic, "t", true},
		{"delete implies describe", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpDelete, Allow)}, alice, "h", OpDescribe, ResourceTopic, "t", true},
		{"alter implies describe", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpAlter, Allow)}, alice, "h", OpDescribe, ResourceTopic, "t", true},
		{"create does not imply describe", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpCreate, Allow)}, alice, "h", OpDescribe, ResourceTopic, "t", false},
		{"describe does not imply read", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpDescribe, Allow)}, alice, "h", OpRead, ResourceTopic, "t", false},
		{"alterconfigs implies describeconfigs", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpAlterConfigs, Allow)}, alice, "h", OpDescribeConfigs, ResourceTopic, "t", true},
		{"all allows everything", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpAll, Allow)}, alice, "h", OpAlterConfigs, ResourceTopic, "t", true},
		{"deny wins over allow", Config{}, []Binding{lit(ResourceTopic, "*", alice, OpRead, Allow), prefixed("t", alice, OpRead, Deny)}, alice, "h", OpRead, ResourceTopic, "t1", false},
		{"deny all wins", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpRead, Allow), lit(ResourceTopic, "t", "User:*", OpAll, Deny)}, alice, "h", OpRead, ResourceTopic, "t", false},
		{"deny read does not deny describe", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpWrite, Allow), lit(ResourceTopic, "t", alice, OpRead, Deny)}, alice, "h", OpDescribe, ResourceTopic, "t", true},
		{"deny for another principal", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpRead, Allow), lit(ResourceTopic, "t", bob, OpRead, Deny)}, alice, "h", OpRead, ResourceTopic, "t", true},
		{"host matches", Config{}, []Binding{onHost(lit(ResourceTopic, "t", alice, OpRead, Allow), "10.0.0.1")}, alice, "10.0.0.1", OpRead, ResourceTopic, "t", true},
		{"host differs", Config{}, []Binding{onHost(lit(ResourceTopic, "t", alice, OpRead, Allow), "10.0.0.1")}, alice, "10.0.0.2", OpRead, ResourceTopic, "t", false},
		{"deny from one host", Config{}, []Binding{lit(ResourceTopic, "t", alice, OpRead, Allow), onHost(lit(ResourceTopic, "t", alice, OpRead, Deny), "10.0.0.2")}, alice, "10.0.0.2", OpRead, ResourceTopic, "t", false},
		{"resource types are separate", Config{}, []Binding{lit(ResourceGroup, "t", alice, OpRead, Allow)}, alice, "h", OpRead, ResourceTopic, "t", false},
		{"cluster", Config{}, []Binding{lit(ResourceCluster, ClusterName, alice, OpClusterAction, Allow)}, alice, "h", OpClusterAction, ResourceCluster, ClusterName, true},
		{"transactional id", Config{}, []Binding{lit(ResourceTransactionalID, "tx", alice, OpWrite, Allow)}, alice, "h", OpDescribe, ResourceTransactionalID, "tx", true},
		{"delegation token", Config{}, []Binding{lit(ResourceDelegationToken, "tok", alice, OpDescribe, Allow)}, alice, "h", OpDescribe, ResourceDelegationToken, "tok", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := New(c.cfg, c.acls)
			if got := a.Authorize(c.principal, c.host, c.op, c.rt, c.res); got != c.want {
				t.Fatalf("Authorize(%s, %s, %s, %s %q) = %v, want %v", c.principal, c.host, c.op, c.rt, c.res, got, c.want)
			}
		})
	}
}

func TestAuthorizedOperations(t *testing.T) {
	a := New(Config{}, []Binding{lit(ResourceTopic, "t", "User:alice", OpRead, Allow)})
	got := a.AuthorizedOperations("User:alice", "h", ResourceTopic, "t")
	want := int32(1<<OpRead | 1<<OpDescribe)
	if got != want {
		t.Fatalf("AuthorizedOperations = %b, want %b", got, want)
	}
}

func TestFilter(t *testing.T) {
	s := func(v string) *string { return &v }
	b := Binding{ResourceType: ResourceTopic, ResourceName: "fin-", PatternType: PatternPrefixed, Principal: "User:alice", Host: "*", Operation: OpRead, Permission: Allow}
	cases := []struct {
		name string
		f    Filter
		want bool
	}{
		{"any", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, true},
		{"type", Filter{ResourceType: ResourceGroup, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, false},
		{"match by resource", Filter{ResourceType: ResourceTopic, ResourceName: s("fin-ledger"), PatternType: PatternMatch, Operation: OpAny, Permission: PermissionAny}, true},
		{"match other resource", Filter{ResourceType: ResourceTopic, ResourceName: s("ops"), PatternType: PatternMatch, Operation: OpAny, Permission: PermissionAny}, false},
		{"literal filter on prefixed binding", Filter{ResourceType: ResourceTopic, ResourceName: s("fin-"), PatternType: PatternLiteral, Operation: OpAny, Permission: PermissionAny}, false},
		{"prefixed exact", Filter{ResourceType: ResourceTopic, ResourceName: s("fin-"), PatternType: PatternPrefixed, Operation: OpAny, Permission: PermissionAny}, true},
		{"any pattern by name", Filter{ResourceType: ResourceAny, ResourceName: s("fin-"), PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, true},
		{"principal", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Principal: s("User:bob"), Operation: OpAny, Permission: PermissionAny}, false},
		{"host", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Host: s("*"), Operation: OpAny, Permission: PermissionAny}, true},
		{"operation", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpWrite, Permission: PermissionAny}, false},
		{"permission", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: Deny}, false},
	}
	for _, c := range cases {
		if got := c.f.Matches(b); got != c.want {
			t.Errorf("%s: Matches = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := lit(ResourceTopic, "t", "User:alice", OpRead, Allow)
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Binding{
		{ResourceType: ResourceAny, ResourceName: "t", PatternType: PatternLiteral, Principal: "User:a", Host: "*", Operation: OpRead, Permission: Allow},
		{ResourceType: ResourceTopic, ResourceName: "t", PatternType: PatternMatch, Principal: "User:a", Host: "*", Operation: OpRead, Permission: Allow},
		{ResourceType: ResourceTopic, ResourceName: "t", PatternType: PatternLiteral, Principal: "alice", Host: "*", Operation: OpRead, Permission: Allow},
		{ResourceType: ResourceTopic, ResourceName: "t", PatternType: PatternLiteral, Principal: "User:a", Host: "*", Operation: OpAny, Permission: Allow},
		{ResourceType: ResourceTopic, ResourceName: "t", PatternType: PatternLiteral, Principal: "User:a", Host: "*", Operation: OpClusterAction, Permission: Allow},
		{ResourceType: ResourceCluster, ResourceName: "c", PatternType: PatternLiteral, Principal: "User:a", Host: "*", Operation: OpAlter, Permission: Allow},
		{ResourceType: ResourceTopic, ResourceName: "", PatternType: PatternLiteral, Principal: "User:a", Host: "*", Operation: OpRead, Permission: Allow},
	}
	for _, b := range bad {
		if err := b.Validate(); err == nil {
			t.Errorf("Validate(%s) = nil, want an error", b)
		}
	}
	if _, err := ParseSuperUsers("User:alice; User:bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSuperUsers("alice"); err == nil {
		t.Fatal("ParseSuperUsers(alice) = nil error")
	}
	if op, err := ParseOperation("describe-configs"); err != nil || op != OpDescribeConfigs {
		t.Fatalf("ParseOperation = %v, %v", op, err)
	}
	if rt, err := ParseResourceType("transactional-id"); err != nil || rt != ResourceTransactionalID {
		t.Fatalf("ParseResourceType = %v, %v", rt, err)
	}
}
