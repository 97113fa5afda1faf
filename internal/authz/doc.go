// Package authz is Strata's ACL authorizer, with the semantics of Kafka's
// StandardAuthorizer: ACL bindings (a resource pattern and an access
// control entry), literal and prefixed patterns and the wildcard "*",
// allow and deny (deny wins), operations with their implications,
// hosts, super users and allow.everyone.if.no.acl.found. It is pure: the
// ACLs come from the metadata image, the principal and host from the
// caller, and it keeps no state of its own.
package authz
