package quota

import (
	"fmt"
	"sort"
	"strings"
)

// Entity types of DescribeClientQuotas and AlterClientQuotas.
const (
	TypeUser     = "user"
	TypeClientID = "client-id"
	// TypeIP is Kafka's connection-rate entity (KIP-612); Strata's
	// connection limits are broker settings (network/connlimit.go), so
	// quotas on it are refused.
	TypeIP = "ip"
)

// Quota keys.
const (
	ProducerByteRate       = "producer_byte_rate"
	ConsumerByteRate       = "consumer_byte_rate"
	RequestPercentage      = "request_percentage"
	ControllerMutationRate = "controller_mutation_rate"
)

// Keys are the quota keys of user and client-id entities, as Kafka's
// QuotaConfigs.
var Keys = []string{ConsumerByteRate, ControllerMutationRate, ProducerByteRate, RequestPercentage}

// KeyIsLong reports whether a key takes whole numbers (Kafka's LONG
// quota configs); the others are doubles.
func KeyIsLong(key string) bool { return key == ProducerByteRate || key == ConsumerByteRate }

// ValidKey reports whether key is a quota key of user and client-id
// entities.
func ValidKey(key string) bool {
	for _, k := range Keys {
		if k == key {
			return true
		}
	}
	return false
}

// Component is one part of an entity: a user or a client id.
type Component struct {
	Set     bool   // the entity has this part
	Default bool   // the part is <default> (Name is then empty)
	Name    string // the user or client id
}

// Named returns a component for name.
func Named(name string) Component { return Component{Set: true, Name: name} }

// Default is the <default> component.
var Default = Component{Set: true, Default: true}

// String is the part as kafka-configs prints it: the name, or <default>.
func (c Component) String() string {
	if c.Default {
		return "<default>"
	}
	return c.Name
}

// NamePtr is the component's name as the protocol carries it: nil for
// <default>.
func (c Component) NamePtr() *string {
	if c.Default {
		return nil
	}
	n := c.Name
	return &n
}

// Entity is what a quota applies to: a user, a client id, or a user and a
// client id; either part may be <default>.
type Entity struct {
	User     Component
	ClientID Component
}

// String formats the entity as Kafka's ClientQuotaEntity: user=alice,
// client-id=<default>.
func (e Entity) String() string {
	var parts []string
	if e.User.Set {
		parts = append(parts, TypeUser+"="+e.User.String())
	}
	if e.ClientID.Set {
		parts = append(parts, TypeClientID+"="+e.ClientID.String())
	}
	return strings.Join(parts, ",")
}

// EntityPart is one (type, name) pair of an entity as the protocol and
// the metadata records carry it; a nil name is <default>.
type EntityPart struct {
	Type string  `json:"type"`
	Name *string `json:"name"`
}

// Parts is the entity as (type, name) pairs, user first.
func (e Entity) Parts() []EntityPart {
	var out []EntityPart
	if e.User.Set {
		out = append(out, EntityPart{Type: TypeUser, Name: e.User.NamePtr()})
	}
	if e.ClientID.Set {
		out = append(out, EntityPart{Type: TypeClientID, Name: e.ClientID.NamePtr()})
	}
	return out
}

// ErrInvalid is the error of an entity, key or value Kafka answers with
// INVALID_REQUEST.
type ErrInvalid struct{ Msg string }

func (e ErrInvalid) Error() string { return e.Msg }

func invalid(format string, args ...any) error { return ErrInvalid{fmt.Sprintf(format, args...)} }

// EntityFromParts validates (type, name) pairs as Kafka's
// ClientQuotaControlManager: user and client-id at most once each, no
// empty names, at least one part; ip entities are refused (see TypeIP).
func EntityFromParts(parts []EntityPart) (Entity, error) {
	var e Entity
	if len(parts) == 0 {
		return e, invalid("Invalid empty client quota entity")
	}
	for _, p := range parts {
		var c *Component
		switch p.Type {
		case TypeUser:
			c = &e.User
		case TypeClientID:
			c = &e.ClientID
		case TypeIP:
			return e, invalid("ip quotas are not supported: set max.connections.per.ip, max.connections.per.ip.overrides and max.connection.creation.rate instead")
		default:
			return e, invalid("Unhandled client quota entity type: %s", p.Type)
		}
		if c.Set {
			return e, invalid("Invalid empty client quota entity, duplicate entity entry %s", p.Type)
		}
		if p.Name == nil {
			*c = Default
			continue
		}
		if *p.Name == "" {
			return e, invalid("Empty %s not supported", p.Type)
		}
		*c = Named(*p.Name)
	}
	return e, nil
}

// ValidateValue checks a quota key and value as Kafka's
// ClientQuotaControlManager: a known key, a whole number for the byte
// rates. Kafka accepts any other double; Strata also requires a positive
// value (a departure: a quota of 0 or less makes Kafka's throttle time
// a division by zero).
func ValidateValue(key string, value float64) error {
	if !ValidKey(key) {
		return invalid("Invalid configuration key %s", key)
	}
	if KeyIsLong(key) {
		const eps = 1e-6
		if l := float64(int64(value + eps)); l-value > eps || value-l > eps {
			return invalid("Configuration %s must be a Long value", key)
		}
	}
	if !(value > 0) {
		return invalid("Configuration %s must be positive, got %v", key, value)
	}
	return nil
}

// Candidates are the entities whose quota applies to a request of user
// and clientID, most specific first: Kafka's precedence (KIP-55).
//
//	/users/<user>/clients/<client-id>
//	/users/<user>/clients/<default>
//	/users/<user>
//	/users/<default>/clients/<client-id>
//	/users/<default>/clients/<default>
//	/users/<default>
//	/clients/<client-id>
//	/clients/<default>
func Candidates(user, clientID string) [8]Entity {
	u, c := Named(user), Named(clientID)
	return [8]Entity{
		{User: u, ClientID: c},
		{User: u, ClientID: Default},
		{User: u},
		{User: Default, ClientID: c},
		{User: Default, ClientID: Default},
		{User: Default},
		{ClientID: c},
		{ClientID: Default},
	}
}

// SortEntities orders entities for display: users before client-only
// entities, names before <default>, then by name.
func SortEntities(es []Entity) {
	key := func(c Component) string {
		switch {
		case !c.Set:
			return "2"
		case c.Default:
			return "1"
		}
		return "0" + c.Name
	}
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if ka, kb := key(a.User), key(b.User); ka != kb {
			return ka < kb
		}
		return key(a.ClientID) < key(b.ClientID)
	})
}
