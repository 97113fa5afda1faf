package controller

import (
	"errors"
	"testing"

	"github.com/stratalog/strata/internal/authz"
)

func TestCreateAndDeleteAcls(t *testing.T) {
	dir := t.TempDir()
	l, c := openTest(t, dir)
	_ = l
	if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
		t.Fatal(err)
	}
	read := authz.Binding{ResourceType: authz.ResourceTopic, ResourceName: "t", PatternType: authz.PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: authz.OpRead, Permission: authz.Allow}
	group := authz.Binding{ResourceType: authz.ResourceGroup, ResourceName: "g-", PatternType: authz.PatternPrefixed,
		Principal: "User:alice", Host: "*", Operation: authz.OpRead, Permission: authz.Allow}
	bad := read
	bad.Principal = "alice"
	errs := c.CreateAcls([]authz.Binding{read, group, bad, read})
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrInvalidACL) || errs[3] != nil {
		t.Fatalf("CreateAcls: %v", errs)
	}
	if n := len(c.Image().ACLs); n != 2 {
		t.Fatalf("%d ACLs stored, want 2 (an invalid one refused, a duplicate stored once)", n)
	}
	// Creating an existing binding again changes nothing.
	if errs := c.CreateAcls([]authz.Binding{read}); errs[0] != nil || len(c.Image().ACLs) != 2 {
		t.Fatalf("re-create: %v, %d ACLs", errs, len(c.Image().ACLs))
	}
	name := "g-1"
	res := c.DeleteAcls([]authz.Filter{
		{ResourceType: authz.ResourceGroup, ResourceName: &name, PatternType: authz.PatternMatch, Operation: authz.OpAny, Permission: authz.PermissionAny},
		{ResourceType: authz.ResourceAny, PatternType: authz.PatternAny, Operation: authz.OpRead, Permission: authz.PermissionAny},
		{ResourceType: 99, PatternType: authz.PatternAny, Operation: authz.OpAny, Permission: authz.PermissionAny},
	})
	if res[0].Err != nil || len(res[0].Deleted) != 1 || res[0].Deleted[0] != group {
		t.Fatalf("filter 0: %+v", res[0])
	}
	if res[1].Err != nil || len(res[1].Deleted) != 2 {
		t.Fatalf("filter 1: %+v", res[1])
	}
	if !errors.Is(res[2].Err, ErrInvalidACL) {
		t.Fatalf("filter 2: %+v", res[2])
	}
	if n := len(c.Image().ACLs); n != 0 {
		t.Fatalf("%d ACLs left", n)
	}
}
