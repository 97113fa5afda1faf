package broker

// Authorization: the broker's side of the ACL authorizer (internal/authz).
// Every request passes authorize after its body is decoded and before it
// is served or relayed to the controller; the per-API rules are the table
// in acl_checks.go. See "Security: authorization" in docs/design-notes.md.

import (
	"fmt"
	"net"
	"runtime/debug"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/network"
)

// AuthzOptions configure ACL authorization.
type AuthzOptions struct {
	// Enabled is set when authorizer.class.name names Kafka's standard
	// authorizer; otherwise every request is allowed.
	Enabled bool
	// Config holds super.users (with the inter-broker principal added by
	// the server) and allow.everyone.if.no.acl.found.
	Config authz.Config
}

// imageAuthorizer is the authorizer built from one metadata image.
type imageAuthorizer struct {
	img *metadata.Image
	a   *authz.Authorizer
}

// authorizer returns the authorizer over the current image's ACLs, nil
// when authorization is off.
func (b *Broker) authorizer() *authz.Authorizer {
	if !b.opts.Authz.Enabled {
		return nil
	}
	img := b.image()
	if c := b.authz.Load(); c != nil && c.img == img {
		return c.a
	}
	a := authz.New(b.opts.Authz.Config, img.ACLList())
	b.authz.Store(&imageAuthorizer{img: img, a: a})
	return a
}

// authCtx is one request's authorization context.
type authCtx struct {
	b         *Broker
	a         *authz.Authorizer // nil: everything is allowed
	principal string
	host      string
	api       string
}

func (b *Broker) authContext(r *request) *authCtx {
	host := ""
	if r.conn.RemoteAddr != nil {
		host = r.conn.RemoteAddr.String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return &authCtx{b: b, a: b.authorizer(), principal: r.conn.Principal().String(), host: host, api: kmsg.NameForKey(r.key)}
}

// can reports whether the request's principal may do op on (rt, name),
// and logs a denial as Kafka's authorizer logger does.
func (c *authCtx) can(op authz.Operation, rt authz.ResourceType, name string) bool {
	if c.a == nil {
		return true
	}
	if c.a.Authorize(c.principal, c.host, op, rt, name) {
		return true
	}
	c.b.log.Info("authorization denied", "principal", c.principal, "host", c.host, "api", c.api, "operation", op.String(), "resource", rt.String()+":"+name)
	return false
}

// canQuiet is can without the log line, for filtering (Metadata of all
// topics, ListGroups) where a denial is not a failure.
func (c *authCtx) canQuiet(op authz.Operation, rt authz.ResourceType, name string) bool {
	return c.a == nil || c.a.Authorize(c.principal, c.host, op, rt, name)
}

// ops is the authorized-operations bit field of a resource.
func (c *authCtx) ops(rt authz.ResourceType, name string) int32 {
	if c.a == nil {
		return authz.SupportedOperations(rt)
	}
	return c.a.AuthorizedOperations(c.principal, c.host, rt, name)
}

// topicName resolves a topic named by id (newer versions of Produce,
// Fetch, Metadata and DeleteTopics), "" for an unknown id (the handler
// answers UNKNOWN_TOPIC_ID, which reveals nothing).
func (c *authCtx) topicName(name string, id [16]byte) string {
	if name != "" || id == [16]byte{} {
		return name
	}
	if t := c.b.image().TopicsByID[metadata.UUID(id)]; t != nil {
		return t.Name
	}
	return ""
}

// authorize runs the request's row of the checks table. It returns false
// when the request was answered (denied as a whole) or the connection
// closed; otherwise the request proceeds, possibly with entries taken out
// and r.patch set to answer for them.
func (b *Broker) authorize(r *request) (ok bool) {
	rule, found := aclRules[r.key]
	if !found {
		if b.opts.Authz.Enabled {
			r.resp.CloseConn(fmt.Errorf("%s has no authorization rule: refused", kmsg.NameForKey(r.key)))
			return false
		}
		return true
	}
	if rule.check == nil || (!b.opts.Authz.Enabled && !rule.ops) {
		return true
	}
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("authorization panic", "api", kmsg.NameForKey(r.key), "version", r.version, "panic", p, "stack", string(debug.Stack()))
			r.resp.CloseConn(fmt.Errorf("internal error authorizing %s", kmsg.NameForKey(r.key)))
			ok = false
		}
	}()
	return rule.check(b.authContext(r), r)
}

// patchFetch applies the request's patch to a Fetch response that
// fetch.go encodes itself (kwire, around file regions) rather than through
// respond, giving the entries the patch added no records.
func (r *request) patchFetch(resp *kmsg.FetchResponse, records [][][]network.Chunk) [][][]network.Chunk {
	if r.patch == nil {
		return records
	}
	r.patch(resp)
	for i := len(records); i < len(resp.Topics); i++ {
		records = append(records, make([][]network.Chunk, len(resp.Topics[i].Partitions)))
	}
	return records
}

// addPatch chains f after the request's current patch.
func (r *request) addPatch(f func(kmsg.Response)) {
	prev := r.patch
	r.patch = func(resp kmsg.Response) {
		if prev != nil {
			prev(resp)
		}
		f(resp)
	}
}
