package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestDefValidate(t *testing.T) {
	topic := NewRegistry(TopicDefs())
	broker := NewRegistry(BrokerDefs())
	tests := []struct {
		reg     *Registry
		key     string
		value   string
		wantErr error // nil: valid
	}{
		// boolean
		{topic, "preallocate", "true", nil},
		{topic, "preallocate", "FALSE", nil},
		{topic, "preallocate", "1", nil},
		{topic, "preallocate", "yes", ErrInvalid},
		{topic, "preallocate", "", ErrInvalid},
		// int (32 bits)
		{topic, "max.message.bytes", "2147483647", nil},
		{topic, "max.message.bytes", " 100 ", nil},
		{topic, "max.message.bytes", "2147483648", ErrInvalid},
		{topic, "max.message.bytes", "1.5", ErrInvalid},
		{topic, "max.message.bytes", "-1", ErrInvalid}, // atLeast(0)
		{topic, "segment.bytes", "13", ErrInvalid},     // atLeast(14)
		{topic, "segment.bytes", "14", nil},
		// short
		{broker, "default.replication.factor", "32767", nil},
		{broker, "default.replication.factor", "32768", ErrInvalid},
		{broker, "default.replication.factor", "0", ErrInvalid},
		// long
		{topic, "retention.ms", "9223372036854775807", nil},
		{topic, "retention.ms", "9223372036854775808", ErrInvalid},
		{topic, "retention.ms", "-1", nil},
		{topic, "retention.ms", "-2", ErrInvalid},
		{topic, "retention.bytes", "-5", nil}, // no check
		// double
		{topic, "min.cleanable.dirty.ratio", "0.5", nil},
		{topic, "min.cleanable.dirty.ratio", "1", nil},
		{topic, "min.cleanable.dirty.ratio", "1.01", ErrInvalid},
		{topic, "min.cleanable.dirty.ratio", "-0.1", ErrInvalid},
		{topic, "min.cleanable.dirty.ratio", "half", ErrInvalid},
		// string with oneOf
		{topic, "compression.type", "zstd", nil},
		{topic, "compression.type", "brotli", ErrInvalid},
		{topic, "message.timestamp.type", "LogAppendTime", nil},
		{topic, "message.timestamp.type", "logappendtime", ErrInvalid},
		{broker, "log.fsync", "always", nil},
		{broker, "log.fsync", "never", ErrInvalid},
		{broker, "listen", "anything goes", nil},
		// list with listOf
		{topic, "cleanup.policy", "compact", nil},
		{topic, "cleanup.policy", "compact,delete", nil},
		{topic, "cleanup.policy", "delete, compact", nil},
		{topic, "cleanup.policy", "compact,shred", ErrInvalid},
		{topic, "cleanup.policy", "", ErrInvalid},
		// unknown
		{topic, "log.retention.ms", "1", ErrUnknown}, // broker name, not a topic key
		{broker, "retention.ms", "1", ErrUnknown},    // topic name, not a broker key
		{broker, "log.retention.ms", "1", nil},
	}
	for _, tc := range tests {
		err := tc.reg.Validate(tc.key, tc.value)
		if tc.wantErr == nil && err != nil {
			t.Errorf("Validate(%s=%q): %v", tc.key, tc.value, err)
		}
		if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("Validate(%s=%q) = %v, want %v", tc.key, tc.value, err, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Validate(%s=%q) error %q does not name the key", tc.key, tc.value, err)
		}
	}
}

func TestTypeString(t *testing.T) {
	for ty, want := range map[Type]string{
		TypeBoolean: "boolean", TypeString: "string", TypeInt: "int", TypeShort: "short",
		TypeLong: "long", TypeDouble: "double", TypeList: "list", Type(99): "unknown",
	} {
		if got := ty.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", ty, got, want)
		}
	}
}

func TestDefaultsAreValid(t *testing.T) {
	for _, defs := range [][]Def{TopicDefs(), BrokerDefs()} {
		for _, d := range defs {
			if d.Default == "" {
				continue // unset by default (log.retention.minutes, advertised.address)
			}
			if err := d.Validate(d.Default); err != nil {
				t.Errorf("default of %s: %v", d.Name, err)
			}
		}
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry(BrokerDefs())
	names := r.Names()
	if !slices.IsSorted(names) {
		t.Fatal("Names not sorted")
	}
	if len(names) != len(BrokerDefs()) {
		t.Fatalf("%d names for %d defs: duplicate broker keys", len(names), len(BrokerDefs()))
	}
	// Every topic config but the throttled-replica lists (which have none
	// in Kafka) has a broker synonym that is a broker key.
	for _, d := range TopicDefs() {
		if d.Synonym == "" {
			if d.Name != "leader.replication.throttled.replicas" && d.Name != "follower.replication.throttled.replicas" {
				t.Errorf("%s has no synonym", d.Name)
			}
			continue
		}
		bd, ok := r.Lookup(d.Synonym)
		if !ok {
			t.Errorf("synonym %s of %s is not a broker key", d.Synonym, d.Name)
			continue
		}
		if bd.Type != d.Type || bd.Default != d.Default || bd.Synonym != "" {
			t.Errorf("broker key %s differs from topic key %s: %+v", d.Synonym, d.Name, bd)
		}
		if !IsDynamicBrokerKey(d.Synonym) {
			t.Errorf("IsDynamicBrokerKey(%s) = false", d.Synonym)
		}
	}
	for _, k := range []string{"leader.replication.throttled.rate", "follower.replication.throttled.rate"} {
		if !IsDynamicBrokerKey(k) {
			t.Errorf("IsDynamicBrokerKey(%s) = false", k)
		}
	}
	for _, k := range []string{"node.id", "listen", "data.dir", "log.fsync", "retention.ms", "nope", "", "replication.quota.window.num", "leader.replication.throttled.replicas"} {
		if IsDynamicBrokerKey(k) {
			t.Errorf("IsDynamicBrokerKey(%s) = true", k)
		}
	}
	if _, ok := r.Lookup("nope"); ok {
		t.Error("Lookup(nope) found something")
	}
}
