package config

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Source says where an effective value came from. The numbering matches
// Kafka's ConfigSource in DescribeConfigs responses.
type Source int8

// Config sources.
const (
	SourceTopic                Source = 1
	SourceDynamicBroker        Source = 2
	SourceDynamicDefaultBroker Source = 3
	SourceStaticBroker         Source = 4
	SourceDefault              Source = 5
)

// Fsync policies (log.fsync).
const (
	FsyncAlways   = "always"   // fsync before acknowledging, with group commit
	FsyncInterval = "interval" // acknowledge from the page cache; flush.messages / flush.ms
)

// brokerOnlyDefs are broker settings that are not topic-config synonyms.
// Dynamic marks the ones AlterConfigs may change at run time.
func brokerOnlyDefs() []Def {
	return []Def{
		{Name: "node.id", Type: TypeInt, Default: "1", Check: atLeast(1), Doc: "this node's id (1 or more: the metadata quorum's Raft reserves 0)"},
		{Name: "listen", Type: TypeString, Default: "localhost:9092", Doc: "host:port the Kafka listener binds"},
		{Name: "http.listen", Type: TypeString, Default: "localhost:9644", Doc: "host:port of the HTTP listener: /metrics (Prometheus), /healthz, /readyz, /debug/pprof; empty: off"},
		{Name: "advertised.address", Type: TypeString, Default: "", Doc: "host:port clients are told to connect to; defaults to listen"},
		{Name: "data.dir", Type: TypeString, Default: "./data", Doc: "directory holding every partition log"},
		{Name: "num.partitions", Type: TypeInt, Default: "1", Check: atLeast(1), Doc: "partitions of auto-created topics and of CreateTopics with -1"},
		{Name: "default.replication.factor", Type: TypeShort, Default: "1", Check: atLeast(1)},
		{Name: "auto.create.topics.enable", Type: TypeBoolean, Default: "true"},
		{Name: "socket.request.max.bytes", Type: TypeInt, Default: "104857600", Check: atLeast(1024), Doc: "largest request accepted; larger frames close the connection"},
		{Name: "log.fsync", Type: TypeString, Default: FsyncInterval, Check: oneOf(FsyncAlways, FsyncInterval), Doc: "always: fsync before acks (group commit); interval: page cache plus flush.messages/flush.ms"},
		{Name: "log.cold.read.bytes", Type: TypeLong, Default: "67108864", Check: atLeast(0), Doc: "a fetch starting more than this many bytes below its partition's log end is cold: the pages of the log it has passed are dropped from the page cache (posix_fadvise DONTNEED), so that a reader catching up does not evict the tail; 0: never"},
		{Name: "log.journal.enable", Type: TypeBoolean, Default: "true", Doc: "small batches of produce requests to several partitions go to one shared journal file per data dir, one write per request, and reach their partitions' segment files later in larger writes (after log.journal.write.ms, at 16 KiB, or when read); a restart after a crash replays the journal. Cuts the cost of many partitions written with small batches. A request to one partition, batches of 8 KiB or more, and every batch of a partition with followers go to their segments directly. With log.fsync=always the journal is fsynced once per write (shared by the requests waiting) instead of each partition's segment, requests to one partition included, and a journal file is removed only after a syncfs"},
		{Name: "log.journal.write.ms", Type: TypeLong, Default: "1000", Check: atLeast(1), Doc: "with log.journal.enable: how long a partition's journaled batches may wait before they are written to its segment file"},
		{Name: "log.journal.memory.bytes", Type: TypeLong, Default: "268435456", Check: atLeast(1 << 20), Doc: "with log.journal.enable: memory of the journal's buffer, which the partitions' journaled tails point into until they are written to their segments; while it is taken, a partition without a tail writes its batches to its segment directly"},
		{Name: "log.fd.cache.size", Type: TypeInt, Default: "-1", Check: atLeast(-1), Doc: "segment files the broker keeps open at most, beyond those in use at the moment (an append, a flush, a fetch being sent): the least recently used are closed and opened again when next needed, so that descriptors stay bounded however many partitions and segments there are; -1: three quarters of the open-file limit (RLIMIT_NOFILE), leaving at least 1,024 descriptors for the rest; 0: no bound (every segment file stays open)"},
		{Name: "log.retention.check.interval.ms", Type: TypeLong, Default: "300000", Check: atLeast(1)},
		{Name: "log.retention.hours", Type: TypeInt, Default: "168", Check: atLeast(-1)},
		{Name: "log.retention.minutes", Type: TypeInt, Default: "", Check: atLeast(-1)},
		{Name: "producer.id.expiration.ms", Type: TypeInt, Default: "86400000", Check: atLeast(1)},
		{Name: "delete.topic.enable", Type: TypeBoolean, Default: "true"},
		{Name: "auto.leader.rebalance.enable", Type: TypeBoolean, Default: "true", Doc: "the active controller moves leadership back to preferred replicas that are in sync"},
		{Name: "leader.imbalance.check.interval.seconds", Type: TypeLong, Default: "300", Check: atLeast(1), Doc: "how often the active controller looks for leadership to move back to preferred replicas"},
		{Name: "offsets.topic.num.partitions", Type: TypeInt, Default: "50", Check: atLeast(1)},
		{Name: "offsets.topic.replication.factor", Type: TypeShort, Default: "3", Check: atLeast(1), Doc: "replicas of __consumer_offsets partitions (Kafka's key; not used yet: the topic takes default.replication.factor)"},
		{Name: "transaction.state.log.replication.factor", Type: TypeShort, Default: "3", Check: atLeast(1), Doc: "replicas of __transaction_state partitions, capped at the cluster's size"},
		{Name: "transaction.state.log.num.partitions", Type: TypeInt, Default: "50", Check: atLeast(1), Doc: "partitions of __transaction_state"},
		{Name: "transaction.state.log.min.isr", Type: TypeInt, Default: "2", Check: atLeast(1), Doc: "min.insync.replicas of __transaction_state, capped at its replication factor"},
		{Name: "transaction.state.log.segment.bytes", Type: TypeInt, Default: "104857600", Check: atLeast(14), Doc: "segment size of __transaction_state partitions"},
		{Name: "transaction.max.timeout.ms", Type: TypeInt, Default: "900000", Check: atLeast(1), Doc: "largest transaction.timeout.ms a producer may ask for (INVALID_TRANSACTION_TIMEOUT above)"},
		{Name: "transactional.id.expiration.ms", Type: TypeInt, Default: "604800000", Check: atLeast(1), Doc: "a transactional id idle this long (no transaction) is expired"},
		{Name: "transaction.version", Type: TypeShort, Default: "2", Check: oneOf("0", "1", "2"), Doc: "the transaction.version feature level (KIP-890) a new cluster's metadata log is formatted with, finalized cluster-wide and advertised in ApiVersions: 2 gives clients transaction version 2 (a new producer epoch for every transaction, partitions added by the produce itself); 0 or 1 keeps them on version 1. Read only when the cluster is formatted (a cluster formatted before has no level, 0); after that the level changes with UpdateFeatures (kafka-features.sh upgrade --feature transaction.version=2)"},
		{Name: "transaction.partition.verification.enable", Type: TypeBoolean, Default: "true", Doc: "partition leaders ask the transaction coordinator that a transactional batch's partition is in its transaction before it starts one there (KIP-890 part 1)"},
		{Name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", Type: TypeInt, Default: "10000", Check: atLeast(1), Doc: "how often the transaction coordinator aborts timed-out transactions and expires idle ids"},
		{Name: "offsets.topic.segment.bytes", Type: TypeInt, Default: "104857600", Check: atLeast(14), Doc: "segment size of __consumer_offsets partitions; the active segment is never compacted"},
		{Name: "offsets.commit.timeout.ms", Type: TypeInt, Default: "5000", Check: atLeast(1), Doc: "how long a group write waits for the __consumer_offsets ISR"},
		{Name: "offsets.retention.minutes", Type: TypeInt, Default: "10080", Check: atLeast(1), Doc: "committed offsets of an empty group expire this long after it emptied"},
		{Name: "offset.metadata.max.bytes", Type: TypeInt, Default: "4096", Check: atLeast(0)},
		{Name: "group.initial.rebalance.delay.ms", Type: TypeInt, Default: "3000", Check: atLeast(0), Doc: "how long a new group waits for more members before its first rebalance"},
		{Name: "group.min.session.timeout.ms", Type: TypeInt, Default: "6000", Check: atLeast(1)},
		{Name: "group.max.session.timeout.ms", Type: TypeInt, Default: "1800000", Check: atLeast(1)},
		{Name: "group.max.size", Type: TypeInt, Default: "2147483647", Check: atLeast(1)},
		{Name: "group.consumer.heartbeat.interval.ms", Type: TypeInt, Default: "5000", Check: atLeast(1), Doc: "heartbeat interval told to KIP-848 consumer group members"},
		{Name: "group.consumer.session.timeout.ms", Type: TypeInt, Default: "45000", Check: atLeast(1), Doc: "session timeout of KIP-848 consumer group members"},
		{Name: "log.cleaner.enable", Type: TypeBoolean, Default: "true", Doc: "run the log cleaner on topics with cleanup.policy=compact"},
		{Name: "log.cleaner.backoff.ms", Type: TypeLong, Default: "15000", Check: atLeast(0), Doc: "how long the cleaner sleeps when no log is eligible"},
		{Name: "log.cleaner.io.max.bytes.per.second", Type: TypeDouble, Default: "1.7976931348623157E308", Doc: "read plus write I/O the cleaner may use"},
		{Name: "log.cleaner.dedupe.buffer.size", Type: TypeLong, Default: "134217728", Check: atLeast(1 << 20), Doc: "memory for the cleaner's key map; a pass maps (size/24)*0.9 keys, as Kafka counts them"},
		{Name: "process.roles", Type: TypeList, Default: "broker,controller", Doc: "roles of this node: broker, controller, or broker,controller (combined); a controller must be one of controller.quorum.voters, a broker-only node must not"},
		{Name: "controller.quorum.voters", Type: TypeList, Default: "", Check: votersList, Doc: "voters of the metadata quorum as id@host:port of their controller listeners; empty: this node alone (Kafka's controller.quorum.bootstrap.servers with one entry, on a controller, means node.id@that entry: the stock server.properties' standalone quorum)"},
		{Name: "controller.listen", Type: TypeString, Default: "", Doc: "host:port the controller (Raft) listener binds; defaults to this node's address in controller.quorum.voters"},
		{Name: "cluster.id", Type: TypeString, Default: "", Check: CheckClusterID, Doc: "cluster id, a UUID in URL-safe base64 (22 characters, as kafka-storage.sh random-uuid prints); empty: random for a single node, derived from the voters for a quorum"},
		{Name: "broker.rack", Type: TypeString, Default: "", Doc: "rack of this broker, for rack-aware placement"},
		{Name: "broker.heartbeat.interval.ms", Type: TypeInt, Default: "2000", Check: atLeast(1), Doc: "how often the broker heartbeats to the active controller"},
		{Name: "broker.session.timeout.ms", Type: TypeInt, Default: "9000", Check: atLeast(1), Doc: "the active controller fences a broker after this long without heartbeats"},
		{Name: "controller.max.records.per.batch", Type: TypeInt, Default: "10000", Check: atLeast(1), Doc: "the most partitions one CreateTopics or CreatePartitions request may create, over all its topics (Kafka's bound on the records of one metadata batch); a request for more fails with POLICY_VIOLATION and creates nothing: create them in several requests"},
		{Name: "controller.quorum.tick.ms", Type: TypeInt, Default: "100", Check: atLeast(1), Doc: "the Raft clock tick; leaders heartbeat every tick"},
		{Name: "controller.quorum.election.timeout.ms", Type: TypeInt, Default: "1000", Check: atLeast(2), Doc: "followers start an election after this long without a leader (at least 2 ticks)"},
		{Name: "shutdown.timeout.ms", Type: TypeLong, Default: "30000", Check: atLeast(0)},
		{Name: "replica.lag.time.max.ms", Type: TypeLong, Default: "30000", Check: atLeast(1), Doc: "a follower that has not caught up with the leader for this long leaves the ISR"},
		{Name: "replica.fetch.wait.max.ms", Type: TypeInt, Default: "500", Check: atLeast(0), Doc: "how long a follower's fetch waits at the leader for new data"},
		{Name: "replica.fetch.max.bytes", Type: TypeInt, Default: "1048576", Check: atLeast(1), Doc: "bytes a follower asks for per partition in one fetch (the first batch always comes whole)"},
		{Name: "replica.fetch.response.max.bytes", Type: TypeInt, Default: "10485760", Check: atLeast(1), Doc: "bytes a follower asks for in one fetch, all partitions together"},
		{Name: "max.incremental.fetch.session.cache.slots", Type: TypeInt, Default: "1000", Check: atLeast(0), Doc: "incremental fetch sessions (KIP-227) the broker keeps at most; 0 disables them"},
		{Name: "replica.fetch.backoff.ms", Type: TypeInt, Default: "1000", Check: atLeast(0), Doc: "how long a follower waits after a failed fetch before the next"},
		{Name: "leader.replication.throttled.rate", Type: TypeLong, Default: maxLong, Check: atLeast(0), Doc: "bytes/s this broker sends to followers of the replicas in leader.replication.throttled.replicas that are not in the ISR (KIP-73; dynamic)"},
		{Name: "follower.replication.throttled.rate", Type: TypeLong, Default: maxLong, Check: atLeast(0), Doc: "bytes/s this broker fetches as a follower for the replicas in follower.replication.throttled.replicas while they are behind the leader's high watermark (KIP-73; dynamic)"},
		{Name: "replication.quota.window.num", Type: TypeInt, Default: "11", Check: atLeast(1), Doc: "samples the replication throttles measure their rate over"},
		{Name: "replication.quota.window.size.seconds", Type: TypeInt, Default: "1", Check: atLeast(1), Doc: "length of each sample of the replication throttles"},
		{Name: "quota.window.num", Type: TypeInt, Default: "11", Check: atLeast(1), Doc: "samples client quotas (byte rates, request percentage) measure their rate over"},
		{Name: "quota.window.size.seconds", Type: TypeInt, Default: "1", Check: atLeast(1), Doc: "length of each sample of the client quotas"},
		{Name: "controller.quota.window.num", Type: TypeInt, Default: "11", Check: atLeast(1), Doc: "samples of the controller mutation quota (its token bucket holds num-1 windows of mutations)"},
		{Name: "controller.quota.window.size.seconds", Type: TypeInt, Default: "1", Check: atLeast(1), Doc: "length of each sample of the controller mutation quota"},
	}
}

// BrokerDefs returns every broker key: the broker-only ones and the
// broker-level synonyms of topic configs (cluster-wide defaults, which are
// dynamic).
func BrokerDefs() []Def {
	defs := append(append(brokerOnlyDefs(), securityDefs()...), connectionDefs()...)
	seen := map[string]bool{}
	for _, d := range defs {
		seen[d.Name] = true
	}
	for _, t := range TopicDefs() {
		if t.Synonym == "" || seen[t.Synonym] {
			continue
		}
		seen[t.Synonym] = true
		t.Name = t.Synonym
		t.Synonym = ""
		defs = append(defs, t)
	}
	return defs
}

// dynamicBrokerOnly are the broker-only keys AlterConfigs may change at run
// time (per broker or as the cluster default).
var dynamicBrokerOnly = map[string]bool{
	"leader.replication.throttled.rate":   true,
	"follower.replication.throttled.rate": true,
}

// IsDynamicBrokerKey reports whether key may be changed at run time through
// AlterConfigs on a broker resource: the topic-config synonyms and the
// replication throttle rates may.
func IsDynamicBrokerKey(key string) bool {
	if key == "" {
		return false
	}
	if dynamicBrokerOnly[key] {
		return true
	}
	for _, t := range TopicDefs() {
		if t.Synonym == key {
			return true
		}
	}
	return false
}

// Broker is the static broker configuration.
type Broker struct {
	reg     *Registry
	set     map[string]string // explicitly set (file, env, flags)
	ignored map[string]bool   // Kafka keys set that mean nothing here
	// envWarnings are STRATA_* variables that name no setting.
	envWarnings []string
	// bootstrap is Kafka's controller.quorum.bootstrap.servers, read once
	// every key is in (resolveBootstrap).
	bootstrap string
}

// envAliases maps the documented short environment names to keys; every key
// is also reachable as STRATA_<KEY with dots as underscores, upper case>.
var envAliases = map[string]string{
	"STRATA_AUTO_CREATE_TOPICS": "auto.create.topics.enable",
	"STRATA_MAX_REQUEST_SIZE":   "socket.request.max.bytes",
	"STRATA_FSYNC":              "log.fsync",
}

// EnvName is the environment variable for key.
func EnvName(key string) string {
	return "STRATA_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// LoadBroker builds the static configuration from defaults, then the
// properties file (if path is not empty), then the environment (entries as
// os.Environ returns them), then overrides (flags). Every value is
// validated, and every problem is reported at once, each naming its origin
// (with "did you mean" for near misses). Kafka keys that mean nothing here
// are accepted and listed by Warnings.
func LoadBroker(path string, environ []string, overrides map[string]string) (*Broker, error) {
	b := &Broker{reg: NewRegistry(BrokerDefs()), set: map[string]string{}}
	var problems []error
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		props, err := ParseProperties(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
		keys := make([]string, 0, len(props))
		for k := range props {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := b.put(k, props[k]); err != nil {
				problems = append(problems, fmt.Errorf("config file %s: %w", path, err))
			}
		}
	}
	byEnv := map[string]string{}
	for _, k := range b.reg.Names() {
		byEnv[EnvName(k)] = k
	}
	for a, k := range envAliases {
		byEnv[a] = k
	}
	var envNames []string
	for name := range byEnv {
		envNames = append(envNames, name)
	}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "STRATA_") {
			continue
		}
		k, known := byEnv[name]
		if !known {
			if clientEnv[name] {
				continue // the CLI's (STRATA_BROKERS)
			}
			// The environment is shared with other tools (test
			// harnesses set STRATA_BIN): reported, not refused.
			b.envWarnings = append(b.envWarnings, fmt.Sprintf("environment %s: no broker setting has this name%s", name, didYouMean(closest(name, envNames))))
			continue
		}
		if err := b.put(k, val); err != nil {
			problems = append(problems, fmt.Errorf("environment %s: %w", name, err))
		}
	}
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := b.put(k, overrides[k]); err != nil {
			problems = append(problems, fmt.Errorf("flag: %w", err))
		}
	}
	if b.bootstrap != "" {
		if err := b.resolveBootstrap(); err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) == 1 {
		return nil, problems[0]
	}
	if len(problems) > 1 {
		return nil, Problems(problems)
	}
	// Kafka's precedence: log.retention.ms over minutes over hours.
	if _, ok := b.set["log.retention.ms"]; !ok {
		if m, ok := b.set["log.retention.minutes"]; ok {
			n, _ := strconv.ParseInt(m, 10, 64)
			b.set["log.retention.ms"] = strconv.FormatInt(retentionMul(n, 60000), 10)
		} else if h, ok := b.set["log.retention.hours"]; ok {
			n, _ := strconv.ParseInt(h, 10, 64)
			b.set["log.retention.ms"] = strconv.FormatInt(retentionMul(n, 3600000), 10)
		}
	}
	return b, nil
}

// Problems are every problem found in the broker settings at once.
type Problems []error

func (p Problems) Error() string {
	parts := make([]string, len(p))
	for i, e := range p {
		parts[i] = e.Error()
	}
	return fmt.Sprintf("%d problems with the broker settings: %s", len(p), strings.Join(parts, "; "))
}

// Unwrap lets errors.Is see each problem.
func (p Problems) Unwrap() []error { return p }

// clientEnv are STRATA_* variables that belong to the command-line client
// (its connection and security flags) or to the test harness (STRATA_BIN,
// the binary the process-level suites run).
var clientEnv = map[string]bool{
	"STRATA_BROKERS": true,
	"STRATA_TLS":     true, "STRATA_TLS_CA": true, "STRATA_TLS_CERT": true, "STRATA_TLS_KEY": true,
	"STRATA_SASL_MECHANISM": true, "STRATA_USER": true, "STRATA_PASSWORD": true, "STRATA_NEW_PASSWORD": true,
	"STRATA_BIN": true,
}

// Warnings lists the Kafka keys that were set and mean nothing in Strata,
// with the reason, sorted: the broker logs them once at start.
func (b *Broker) Warnings() []string {
	out := make([]string, 0, len(b.ignored))
	for k := range b.ignored {
		out = append(out, fmt.Sprintf("%s (%s)", k, kafkaIgnored[k]))
	}
	sort.Strings(out)
	return out
}

// EnvWarnings lists the STRATA_* environment variables that name no broker
// setting, with the nearest names: the broker logs them at start.
func (b *Broker) EnvWarnings() []string { return b.envWarnings }

// closest returns the names nearest to name by edit distance (at most 3).
func closest(name string, names []string) []string {
	best, bestD := []string(nil), 4
	for _, n := range names {
		d := editDistance(name, n)
		switch {
		case d < bestD:
			best, bestD = []string{n}, d
		case d == bestD:
			best = append(best, n)
		}
	}
	sort.Strings(best)
	if len(best) > 3 {
		best = best[:3]
	}
	return best
}

func retentionMul(n, unit int64) int64 {
	if n < 0 {
		return -1
	}
	return n * unit
}

// resolveBootstrap reads Kafka's controller.quorum.bootstrap.servers
// (KIP-853: the controllers through which a node finds a dynamic quorum).
// Strata's quorum is static, so only the reading of Kafka's stock
// server.properties is taken: one entry on a controller, formatted there
// with `kafka-storage.sh format --standalone`, makes this node the quorum's
// only voter, controller.quorum.voters=<node.id>@<entry>. Voters set
// explicitly win (as in Kafka, where a static voter set is used when given).
// Anything else is refused.
func (b *Broker) resolveBootstrap() error {
	if strings.TrimSpace(b.String("controller.quorum.voters")) != "" {
		return nil
	}
	var entries []string
	for _, e := range strings.Split(b.bootstrap, ",") {
		if e = strings.TrimSpace(e); e != "" {
			entries = append(entries, e)
		}
	}
	controller := false
	for _, r := range strings.Split(b.String("process.roles"), ",") {
		controller = controller || strings.TrimSpace(r) == "controller"
	}
	if len(entries) != 1 || !controller {
		return fmt.Errorf("%w: controller.quorum.bootstrap.servers=%q: the quorum is static: one entry on a controller is read as Kafka's standalone quorum (this node its only voter); otherwise list every voter as id@host:port in controller.quorum.voters", ErrInvalid, b.bootstrap)
	}
	v := fmt.Sprintf("%d@%s", b.NodeID(), entries[0])
	if err := b.reg.Validate("controller.quorum.voters", v); err != nil {
		return fmt.Errorf("controller.quorum.bootstrap.servers=%q: %w", b.bootstrap, err)
	}
	b.set["controller.quorum.voters"] = v
	return nil
}

func (b *Broker) put(k, v string) error {
	v = strings.TrimSpace(v)
	if k == "controller.quorum.bootstrap.servers" && v != "" {
		b.bootstrap = v
		return nil
	}
	if k == "log.dirs" || k == "log.dir" {
		if strings.Contains(v, ",") {
			return fmt.Errorf("%w: %s=%q: several log directories are not supported; give one directory", ErrInvalid, k, v)
		}
		k = "data.dir"
	}
	if strings.HasPrefix(k, listenerPrefix) {
		if err := b.validateListenerKey(k, v); err != nil {
			return err
		}
		b.set[k] = v
		return nil
	}
	if _, ok := b.reg.Lookup(k); !ok {
		if r, refused := kafkaRefused[k]; refused {
			if v == r.off {
				return nil
			}
			return fmt.Errorf("%w: %s=%q: %s", ErrInvalid, k, v, r.reason)
		}
		if _, ok := kafkaIgnored[k]; ok {
			if b.ignored == nil {
				b.ignored = map[string]bool{}
			}
			b.ignored[k] = true
			return nil
		}
		return fmt.Errorf("%w: %q%s", ErrUnknown, k, didYouMean(b.reg.Suggest(k)))
	}
	if err := b.reg.Validate(k, v); err != nil {
		return err
	}
	b.set[k] = v
	return nil
}

// Registry returns the broker key registry.
func (b *Broker) Registry() *Registry { return b.reg }

// Get returns the effective static value of key and whether it was set
// explicitly (SourceStaticBroker) or is the default.
func (b *Broker) Get(key string) (string, Source) {
	if v, ok := b.set[key]; ok {
		return v, SourceStaticBroker
	}
	if d, ok := b.reg.Lookup(key); ok {
		return d.Default, SourceDefault
	}
	return "", SourceDefault
}

// String returns a string setting.
func (b *Broker) String(key string) string { v, _ := b.Get(key); return v }

// Int64 returns an integer setting.
func (b *Broker) Int64(key string) int64 {
	n, _ := strconv.ParseInt(b.String(key), 10, 64)
	return n
}

// Float64 returns a floating-point setting.
func (b *Broker) Float64(key string) float64 {
	f, _ := strconv.ParseFloat(b.String(key), 64)
	return f
}

// Bool returns a boolean setting.
func (b *Broker) Bool(key string) bool {
	v, _ := strconv.ParseBool(b.String(key))
	return v
}

// NodeID is node.id.
func (b *Broker) NodeID() int32 { return int32(b.Int64("node.id")) }

// Listen is the listener address.
func (b *Broker) Listen() string { return b.String("listen") }

// Advertised is the address given to clients.
func (b *Broker) Advertised() string {
	if a := b.String("advertised.address"); a != "" {
		return a
	}
	return b.Listen()
}

// DataDir is the data directory.
func (b *Broker) DataDir() string { return b.String("data.dir") }

// FsyncAlways reports whether log.fsync=always.
func (b *Broker) FsyncAlways() bool { return b.String("log.fsync") == FsyncAlways }

// ParseProperties reads a Java-style properties file: key=value or key:value
// lines, # and ! comments, blank lines. Line continuations are supported.
func ParseProperties(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	lineNo := 0
	var pending string
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line = pending + line
			pending = ""
		}
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		if err := putProperty(out, line, lineNo); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// A continuation on the last line ends the value there.
	if pending != "" {
		if err := putProperty(out, pending, lineNo); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func putProperty(out map[string]string, line string, lineNo int) error {
	i := strings.IndexAny(line, "=:")
	if i <= 0 {
		return fmt.Errorf("line %d: expected key=value, got %q", lineNo, line)
	}
	out[strings.TrimSpace(line[:i])] = strings.TrimSpace(line[i+1:])
	return nil
}
