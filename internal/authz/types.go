package authz

import (
	"fmt"
	"strings"
)

// ResourceType is Kafka's resource type code (AclResourceType).
type ResourceType int8

// Kafka's resource type codes as the ACL APIs carry them.
const (
	ResourceUnknown         ResourceType = 0
	ResourceAny             ResourceType = 1
	ResourceTopic           ResourceType = 2
	ResourceGroup           ResourceType = 3
	ResourceCluster         ResourceType = 4
	ResourceTransactionalID ResourceType = 5
	ResourceDelegationToken ResourceType = 6
	ResourceUser            ResourceType = 7
)

// ClusterName is the one cluster resource's name.
const ClusterName = "kafka-cluster"

// Wildcard matches every resource name in a literal pattern and every
// host and principal name in an entry.
const Wildcard = "*"

// PatternType is Kafka's pattern type code.
type PatternType int8

// Kafka's pattern type codes.
const (
	PatternUnknown  PatternType = 0
	PatternAny      PatternType = 1
	PatternMatch    PatternType = 2
	PatternLiteral  PatternType = 3
	PatternPrefixed PatternType = 4
)

// Operation is Kafka's ACL operation code.
type Operation int8

// Kafka's operation codes.
const (
	OpUnknown         Operation = 0
	OpAny             Operation = 1
	OpAll             Operation = 2
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
	OpCreateTokens    Operation = 13
	OpDescribeTokens  Operation = 14
)

// Permission is Kafka's permission type code.
type Permission int8

// Kafka's permission codes.
const (
	PermissionUnknown Permission = 0
	PermissionAny     Permission = 1
	Deny              Permission = 2
	Allow             Permission = 3
)

// Binding is one ACL: who (principal, host) may or may not (permission)
// do what (operation) on which resources (type, name, pattern).
type Binding struct {
	ResourceType ResourceType `json:"resource_type"`
	ResourceName string       `json:"resource_name"`
	PatternType  PatternType  `json:"pattern_type"`
	Principal    string       `json:"principal"`
	Host         string       `json:"host"`
	Operation    Operation    `json:"operation"`
	Permission   Permission   `json:"permission"`
}

// String formats b for logs and the CLI.
func (b Binding) String() string {
	return fmt.Sprintf("(%s %s %s) %s %s %s from %s", b.ResourceType, b.PatternType, b.ResourceName, b.Principal, b.Permission, b.Operation, b.Host)
}

// Validate reports why b cannot be stored, as Kafka's CreateAcls does
// (INVALID_REQUEST for each): every field concrete, a principal of the
// form Type:Name, a non-empty resource name, the cluster resource named
// kafka-cluster, and an operation that applies to the resource type.
func (b Binding) Validate() error {
	switch {
	case b.ResourceType < ResourceTopic || b.ResourceType > ResourceUser:
		return fmt.Errorf("invalid resource type %d", b.ResourceType)
	case b.PatternType != PatternLiteral && b.PatternType != PatternPrefixed:
		return fmt.Errorf("invalid pattern type %d: literal or prefixed", b.PatternType)
	case b.ResourceName == "":
		return fmt.Errorf("empty resource name")
	case b.ResourceType == ResourceCluster && (b.ResourceName != ClusterName || b.PatternType != PatternLiteral):
		return fmt.Errorf("the cluster resource is the literal %q", ClusterName)
	case b.Operation < OpAll || b.Operation > OpDescribeTokens:
		return fmt.Errorf("invalid operation %d", b.Operation)
	case b.Permission != Allow && b.Permission != Deny:
		return fmt.Errorf("invalid permission %d", b.Permission)
	case b.Host == "":
		return fmt.Errorf("empty host (use %q for any)", Wildcard)
	}
	if i := strings.IndexByte(b.Principal, ':'); i <= 0 || i == len(b.Principal)-1 {
		return fmt.Errorf("principal %q is not of the form Type:Name", b.Principal)
	}
	if b.Operation != OpAll && !validOp(b.ResourceType, b.Operation) {
		return fmt.Errorf("operation %s does not apply to resource type %s", b.Operation, b.ResourceType)
	}
	return nil
}

// validOp lists the operations each resource type has (Kafka's
// AclEntry.supportedOperations).
func validOp(t ResourceType, op Operation) bool {
	var ops []Operation
	switch t {
	case ResourceTopic:
		ops = []Operation{OpRead, OpWrite, OpCreate, OpDescribe, OpDelete, OpAlter, OpDescribeConfigs, OpAlterConfigs}
	case ResourceGroup:
		ops = []Operation{OpRead, OpDescribe, OpDelete, OpDescribeConfigs, OpAlterConfigs}
	case ResourceCluster:
		ops = []Operation{OpCreate, OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite, OpAlter, OpDescribe}
	case ResourceTransactionalID:
		ops = []Operation{OpDescribe, OpWrite}
	case ResourceDelegationToken:
		ops = []Operation{OpDescribe}
	case ResourceUser:
		ops = []Operation{OpCreateTokens, OpDescribeTokens}
	}
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

var resourceNames = map[ResourceType]string{ResourceUnknown: "UNKNOWN", ResourceAny: "ANY", ResourceTopic: "TOPIC", ResourceGroup: "GROUP",
	ResourceCluster: "CLUSTER", ResourceTransactionalID: "TRANSACTIONAL_ID", ResourceDelegationToken: "DELEGATION_TOKEN", ResourceUser: "USER"}

var patternNames = map[PatternType]string{PatternUnknown: "UNKNOWN", PatternAny: "ANY", PatternMatch: "MATCH", PatternLiteral: "LITERAL", PatternPrefixed: "PREFIXED"}

var opNames = map[Operation]string{OpUnknown: "UNKNOWN", OpAny: "ANY", OpAll: "ALL", OpRead: "READ", OpWrite: "WRITE", OpCreate: "CREATE",
	OpDelete: "DELETE", OpAlter: "ALTER", OpDescribe: "DESCRIBE", OpClusterAction: "CLUSTER_ACTION", OpDescribeConfigs: "DESCRIBE_CONFIGS",
	OpAlterConfigs: "ALTER_CONFIGS", OpIdempotentWrite: "IDEMPOTENT_WRITE", OpCreateTokens: "CREATE_TOKENS", OpDescribeTokens: "DESCRIBE_TOKENS"}

var permNames = map[Permission]string{PermissionUnknown: "UNKNOWN", PermissionAny: "ANY", Deny: "DENY", Allow: "ALLOW"}

func (t ResourceType) String() string { return nameOf(resourceNames, t) }
func (p PatternType) String() string  { return nameOf(patternNames, p) }
func (o Operation) String() string    { return nameOf(opNames, o) }
func (p Permission) String() string   { return nameOf(permNames, p) }

func nameOf[K ~int8](m map[K]string, k K) string {
	if s, ok := m[k]; ok {
		return s
	}
	return fmt.Sprintf("%d", k)
}

// parse finds the code whose name is s, case-insensitively, with '-' or
// '_' between words (the CLI's flags).
func parse[K ~int8](m map[K]string, what, s string) (K, error) {
	norm := strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	for k, n := range m {
		if n == norm || strings.ReplaceAll(n, "_", "") == norm {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q", what, s)
}

// ParseResourceType, ParsePatternType, ParseOperation and ParsePermission
// read a name ("topic", "transactional-id", "describe-configs", "allow").
func ParseResourceType(s string) (ResourceType, error) {
	return parse(resourceNames, "resource type", s)
}
func ParsePatternType(s string) (PatternType, error) { return parse(patternNames, "pattern type", s) }
func ParseOperation(s string) (Operation, error)     { return parse(opNames, "operation", s) }
func ParsePermission(s string) (Permission, error)   { return parse(permNames, "permission", s) }
