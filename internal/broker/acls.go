package broker

// DescribeAcls (v0-3), CreateAcls (v0-3) and DeleteAcls (v0-3): ACLs are
// metadata records (metadata/acl.go) written by the active controller;
// Create and Delete are relayed there like every metadata change,
// Describe answers from this broker's image. Who may call them is in the
// checks table (Describe needs Describe on the cluster, the others
// Alter).

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/controller"
)

// aclPattern is the request's pattern type: version 0 has none and means
// literal.
func aclPattern(version int16, p kmsg.ACLResourcePatternType) authz.PatternType {
	if version == 0 {
		return authz.PatternLiteral
	}
	return authz.PatternType(p)
}

func (b *Broker) handleDescribeAcls(_ context.Context, r *request) {
	req := r.body.(*kmsg.DescribeACLsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	f := authz.Filter{ResourceType: authz.ResourceType(req.ResourceType), ResourceName: req.ResourceName,
		PatternType: aclPattern(r.version, req.ResourcePatternType), Principal: req.Principal, Host: req.Host,
		Operation: authz.Operation(req.Operation), Permission: authz.Permission(req.PermissionType)}
	if r.version == 0 && req.ResourceName == nil {
		f.PatternType = authz.PatternAny
	}
	if err := f.Validate(); err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, strp(err.Error())
		r.respond(resp)
		return
	}
	type key struct {
		rt   authz.ResourceType
		name string
		pt   authz.PatternType
	}
	byRes := map[key][]kmsg.DescribeACLsResponseResourceACL{}
	var order []key
	for _, a := range b.image().ACLList() {
		if !f.Matches(a) {
			continue
		}
		k := key{a.ResourceType, a.ResourceName, a.PatternType}
		if _, ok := byRes[k]; !ok {
			order = append(order, k)
		}
		byRes[k] = append(byRes[k], kmsg.DescribeACLsResponseResourceACL{Principal: a.Principal, Host: a.Host,
			Operation: kmsg.ACLOperation(a.Operation), PermissionType: kmsg.ACLPermissionType(a.Permission)})
	}
	sort.Slice(order, func(i, j int) bool {
		a, c := order[i], order[j]
		if a.rt != c.rt {
			return a.rt < c.rt
		}
		if a.name != c.name {
			return a.name < c.name
		}
		return a.pt < c.pt
	})
	for _, k := range order {
		resp.Resources = append(resp.Resources, kmsg.DescribeACLsResponseResource{ResourceType: kmsg.ACLResourceType(k.rt),
			ResourceName: k.name, ResourcePatternType: kmsg.ACLResourcePatternType(k.pt), ACLs: byRes[k]})
	}
	r.respond(resp)
}

func (b *Broker) handleCreateAcls(_ context.Context, r *request) {
	req := r.body.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	bindings := make([]authz.Binding, 0, len(req.Creations))
	for _, c := range req.Creations {
		bindings = append(bindings, authz.Binding{ResourceType: authz.ResourceType(c.ResourceType), ResourceName: c.ResourceName,
			PatternType: aclPattern(r.version, c.ResourcePatternType), Principal: c.Principal, Host: c.Host,
			Operation: authz.Operation(c.Operation), Permission: authz.Permission(c.PermissionType)})
	}
	var errs []error
	if !b.opts.Controller.IsActive() {
		errs = make([]error, len(bindings))
		for i := range errs {
			errs[i] = controller.ErrNotController
		}
	} else {
		errs = b.opts.Controller.CreateAcls(bindings)
	}
	for i, err := range errs {
		res := kmsg.NewCreateACLsResponseResult()
		if err != nil {
			res.ErrorCode, res.ErrorMessage = errorCode(err), strp(err.Error())
			b.log.Info("ACL creation refused", "acl", bindings[i].String(), "err", err)
		} else {
			b.log.Info("ACL created", "acl", bindings[i].String(), "by", r.conn.Principal().String())
		}
		resp.Results = append(resp.Results, res)
	}
	r.respond(resp)
}

func (b *Broker) handleDeleteAcls(_ context.Context, r *request) {
	req := r.body.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	filters := make([]authz.Filter, 0, len(req.Filters))
	for _, f := range req.Filters {
		filters = append(filters, authz.Filter{ResourceType: authz.ResourceType(f.ResourceType), ResourceName: f.ResourceName,
			PatternType: aclPattern(r.version, f.ResourcePatternType), Principal: f.Principal, Host: f.Host,
			Operation: authz.Operation(f.Operation), Permission: authz.Permission(f.PermissionType)})
	}
	var results []controller.DeleteAclsResult
	if !b.opts.Controller.IsActive() {
		results = make([]controller.DeleteAclsResult, len(filters))
		for i := range results {
			results[i].Err = controller.ErrNotController
		}
	} else {
		results = b.opts.Controller.DeleteAcls(filters)
	}
	for _, res := range results {
		out := kmsg.NewDeleteACLsResponseResult()
		if res.Err != nil {
			out.ErrorCode, out.ErrorMessage = errorCode(res.Err), strp(res.Err.Error())
		}
		for _, a := range res.Deleted {
			out.MatchingACLs = append(out.MatchingACLs, kmsg.DeleteACLsResponseResultMatchingACL{ResourceType: kmsg.ACLResourceType(a.ResourceType),
				ResourceName: a.ResourceName, ResourcePatternType: kmsg.ACLResourcePatternType(a.PatternType), Principal: a.Principal,
				Host: a.Host, Operation: kmsg.ACLOperation(a.Operation), PermissionType: kmsg.ACLPermissionType(a.Permission)})
			b.log.Info("ACL deleted", "acl", a.String(), "by", r.conn.Principal().String())
		}
		resp.Results = append(resp.Results, out)
	}
	r.respond(resp)
}
