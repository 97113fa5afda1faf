package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Type is a config value type. The numbering matches Kafka's ConfigType in
// DescribeConfigs responses.
type Type int8

// Config value types.
const (
	TypeBoolean Type = 1
	TypeString  Type = 2
	TypeInt     Type = 3
	TypeShort   Type = 4
	TypeLong    Type = 5
	TypeDouble  Type = 6
	TypeList    Type = 7
)

// ErrInvalid is wrapped by every validation failure.
var ErrInvalid = errors.New("invalid config")

// ErrUnknown is wrapped when a key is not in the registry.
var ErrUnknown = errors.New("unknown config")

// Def defines one config key.
type Def struct {
	Name    string
	Type    Type
	Default string
	// Synonym is the broker config a topic config falls back to when the
	// topic does not set it ("log.retention.ms" for "retention.ms").
	Synonym string
	// Check validates a parsed value beyond its type; nil accepts any.
	Check     func(v string) error
	Sensitive bool
	Doc       string
}

// Validate checks that v parses as the key's type and passes its check.
func (d *Def) Validate(v string) error {
	var err error
	switch d.Type {
	case TypeBoolean:
		_, err = strconv.ParseBool(v)
	case TypeInt:
		_, err = strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	case TypeShort:
		_, err = strconv.ParseInt(strings.TrimSpace(v), 10, 16)
	case TypeLong:
		_, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	case TypeDouble:
		_, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
	}
	if err != nil {
		return fmt.Errorf("%w: %s=%q is not a valid %s", ErrInvalid, d.Name, v, d.Type)
	}
	if d.Check != nil {
		if err := d.Check(v); err != nil {
			return fmt.Errorf("%w: %s=%q: %v", ErrInvalid, d.Name, v, err)
		}
	}
	return nil
}

func (t Type) String() string {
	switch t {
	case TypeBoolean:
		return "boolean"
	case TypeString:
		return "string"
	case TypeInt:
		return "int"
	case TypeShort:
		return "short"
	case TypeLong:
		return "long"
	case TypeDouble:
		return "double"
	case TypeList:
		return "list"
	}
	return "unknown"
}

// Registry is a set of config definitions.
type Registry struct {
	defs map[string]*Def
}

// NewRegistry builds a registry from definitions.
func NewRegistry(defs []Def) *Registry {
	r := &Registry{defs: make(map[string]*Def, len(defs))}
	for i := range defs {
		r.defs[defs[i].Name] = &defs[i]
	}
	return r
}

// Lookup returns the definition of name.
func (r *Registry) Lookup(name string) (*Def, bool) {
	d, ok := r.defs[name]
	return d, ok
}

// Names returns every key, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.defs))
	for n := range r.defs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Validate checks one key and value.
func (r *Registry) Validate(name, value string) error {
	d, ok := r.defs[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	return d.Validate(value)
}

// Check helpers.

func atLeast(min int64) func(string) error {
	return func(v string) error {
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if n < min {
			return fmt.Errorf("must be at least %d", min)
		}
		return nil
	}
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		for _, x := range vals {
			if v == x {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
	}
}

func listOf(vals ...string) func(string) error {
	one := oneOf(vals...)
	return func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if err := one(strings.TrimSpace(p)); err != nil {
				return err
			}
		}
		return nil
	}
}

func ratio(v string) error {
	f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if f < 0 || f > 1 {
		return errors.New("must be between 0 and 1")
	}
	return nil
}

var maxLong = strconv.FormatInt(math.MaxInt64, 10)

// TopicDefs are the topic-level configs Strata understands, with Kafka's
// defaults and broker synonyms.
func TopicDefs() []Def {
	return []Def{
		{Name: "cleanup.policy", Type: TypeList, Default: "delete", Synonym: "log.cleanup.policy", Check: listOf("delete", "compact"), Doc: "delete old segments, compact by key, or both"},
		{Name: "compression.type", Type: TypeString, Default: "producer", Synonym: "compression.type", Check: oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"), Doc: "codec batches are stored with; producer keeps what the producer sent"},
		{Name: "delete.retention.ms", Type: TypeLong, Default: "86400000", Synonym: "log.cleaner.delete.retention.ms", Check: atLeast(0)},
		{Name: "file.delete.delay.ms", Type: TypeLong, Default: "60000", Synonym: "log.segment.delete.delay.ms", Check: atLeast(0)},
		{Name: "flush.messages", Type: TypeLong, Default: maxLong, Synonym: "log.flush.interval.messages", Check: atLeast(1)},
		{Name: "flush.ms", Type: TypeLong, Default: maxLong, Synonym: "log.flush.interval.ms", Check: atLeast(0)},
		{Name: "follower.replication.throttled.replicas", Type: TypeList, Default: "", Check: throttledReplicaList, Doc: "replicas (partition:broker, or * for all) whose followers fetch within follower.replication.throttled.rate while out of sync"},
		{Name: "index.interval.bytes", Type: TypeInt, Default: "4096", Synonym: "log.index.interval.bytes", Check: atLeast(0)},
		{Name: "leader.replication.throttled.replicas", Type: TypeList, Default: "", Check: throttledReplicaList, Doc: "replicas (partition:broker, or * for all) whose leader serves out-of-sync followers within leader.replication.throttled.rate"},
		{Name: "max.compaction.lag.ms", Type: TypeLong, Default: maxLong, Synonym: "log.cleaner.max.compaction.lag.ms", Check: atLeast(1)},
		{Name: "max.message.bytes", Type: TypeInt, Default: "1048588", Synonym: "message.max.bytes", Check: atLeast(0)},
		{Name: "message.downconversion.enable", Type: TypeBoolean, Default: "true", Synonym: "log.message.downconversion.enable"},
		{Name: "message.timestamp.after.max.ms", Type: TypeLong, Default: maxLong, Synonym: "log.message.timestamp.after.max.ms", Check: atLeast(0)},
		{Name: "message.timestamp.before.max.ms", Type: TypeLong, Default: maxLong, Synonym: "log.message.timestamp.before.max.ms", Check: atLeast(0)},
		{Name: "message.timestamp.difference.max.ms", Type: TypeLong, Default: maxLong, Synonym: "log.message.timestamp.difference.max.ms", Check: atLeast(0)},
		{Name: "message.timestamp.type", Type: TypeString, Default: "CreateTime", Synonym: "log.message.timestamp.type", Check: oneOf("CreateTime", "LogAppendTime")},
		{Name: "min.cleanable.dirty.ratio", Type: TypeDouble, Default: "0.5", Synonym: "log.cleaner.min.cleanable.ratio", Check: ratio},
		{Name: "min.compaction.lag.ms", Type: TypeLong, Default: "0", Synonym: "log.cleaner.min.compaction.lag.ms", Check: atLeast(0)},
		{Name: "min.insync.replicas", Type: TypeInt, Default: "1", Synonym: "min.insync.replicas", Check: atLeast(1)},
		{Name: "preallocate", Type: TypeBoolean, Default: "false", Synonym: "log.preallocate"},
		{Name: "retention.bytes", Type: TypeLong, Default: "-1", Synonym: "log.retention.bytes"},
		{Name: "retention.ms", Type: TypeLong, Default: "604800000", Synonym: "log.retention.ms", Check: atLeast(-1)},
		{Name: "segment.bytes", Type: TypeInt, Default: "1073741824", Synonym: "log.segment.bytes", Check: atLeast(14)},
		{Name: "segment.index.bytes", Type: TypeInt, Default: "10485760", Synonym: "log.index.size.max.bytes", Check: atLeast(8)},
		{Name: "segment.jitter.ms", Type: TypeLong, Default: "0", Synonym: "log.roll.jitter.ms", Check: atLeast(0)},
		{Name: "segment.ms", Type: TypeLong, Default: "604800000", Synonym: "log.roll.ms", Check: atLeast(1)},
		{Name: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false", Synonym: "unclean.leader.election.enable"},
	}
}

// votersList checks the shape of controller.quorum.voters: id@host:port,...
func votersList(v string) error {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(p), "@")
		if _, err := strconv.ParseUint(id, 10, 31); !ok || err != nil || !strings.Contains(addr, ":") {
			return fmt.Errorf("%q is not id@host:port", strings.TrimSpace(p))
		}
	}
	return nil
}

// CheckClusterID checks a cluster id: Kafka's format, a UUID in URL-safe
// base64 without padding, 22 characters, as kafka-storage.sh random-uuid
// prints (Kafka's Uuid.fromString). Empty is valid: the node derives one
// (a quorum) or draws one (a single node).
func CheckClusterID(id string) error {
	if id == "" {
		return nil
	}
	if b, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(id) != 22 || len(b) != 16 {
		return fmt.Errorf("not a valid cluster id: want a UUID in URL-safe base64, 22 characters such as %q (kafka-storage.sh random-uuid prints one), or leave it unset",
			"MkU3OEVBNTcwNTJENDM2Qk")
	}
	return nil
}
