package config

import (
	"sort"
	"strings"
)

// kafkaIgnored are Kafka broker keys that have no meaning in Strata: a
// stock server.properties sets them, so they are accepted, and the broker
// names them in one WARN at start. The value says why they do not apply.
var kafkaIgnored = map[string]string{
	"num.network.threads":                              "each connection has its own goroutines",
	"num.io.threads":                                   "requests run on the connection's goroutines",
	"background.threads":                               "background work runs on goroutines of its own",
	"queued.max.requests":                              "requests are not queued between threads",
	"socket.send.buffer.bytes":                         "the kernel's TCP buffer sizes are used",
	"socket.receive.buffer.bytes":                      "the kernel's TCP buffer sizes are used",
	"socket.listen.backlog.size":                       "the kernel's listen backlog is used",
	"num.recovery.threads.per.data.dir":                "recovery runs one partition per goroutine",
	"num.replica.fetchers":                             "one fetcher per leader broker",
	"num.replica.alter.log.dirs.threads":               "one log directory per broker",
	"log.cleaner.threads":                              "one cleaner goroutine",
	"log.cleaner.io.buffer.size":                       "the cleaner sizes its buffers from the segments",
	"log.cleaner.io.buffer.load.factor":                "the cleaner's key map has its own layout",
	"replica.socket.timeout.ms":                        "follower fetches are bounded by replica.fetch.wait.max.ms and their context",
	"replica.socket.receive.buffer.bytes":              "the kernel's TCP buffer sizes are used",
	"replica.fetch.min.bytes":                          "followers fetch with min bytes 1",
	"replica.high.watermark.checkpoint.interval.ms":    "the high watermark is checkpointed every 5 s and at close",
	"controller.socket.timeout.ms":                     "requests to the controller are bounded by their context",
	"metadata.log.dir":                                 "the metadata log lives in data.dir",
	"metadata.log.segment.bytes":                       "the metadata log has its own segment size",
	"metadata.log.max.record.bytes.between.snapshots":  "metadata snapshots are not taken yet",
	"metadata.max.retention.bytes":                     "the metadata log is kept whole",
	"metadata.max.retention.ms":                        "the metadata log is kept whole",
	"inter.broker.protocol.version":                    "brokers of one Strata version speak one protocol",
	"log.message.format.version":                       "batches are always stored as magic v2",
	"unstable.api.versions.enable":                     "unstable APIs are never offered",
	"group.coordinator.rebalance.protocols":            "the classic and consumer protocols are both always on",
	"group.coordinator.new.enable":                     "the group coordinator is Strata's own",
	"share.coordinator.state.topic.replication.factor": "share groups are not supported",
	"share.coordinator.state.topic.min.isr":            "share groups are not supported",
	"remote.log.manager.thread.pool.size":              "tiered storage is not supported",
	"log.flush.scheduler.interval.ms":                  "flushes are scheduled per partition by flush.ms",
	"log.flush.offset.checkpoint.interval.ms":          "recovery points are checkpointed at close and on roll",
	"log.flush.start.offset.checkpoint.interval.ms":    "log start offsets are checkpointed when they move",
	"connections.max.idle.ms":                          "idle connections are not closed",
	"delegation.token.master.key":                      "delegation tokens are not supported",
	"kafka.metrics.reporters":                          "metrics are not exported through JMX reporters",
	"metric.reporters":                                 "metrics are not exported through JMX reporters",
	"auto.include.jmx.reporter":                        "there is no JMX",
	"leader.imbalance.per.broker.percentage":           "any imbalance is corrected at each check",
	"transaction.state.log.min.isr":                    "read by the transaction coordinator when transactions exist",
	"transaction.state.log.num.partitions":             "read by the transaction coordinator when transactions exist",
	"transaction.state.log.segment.bytes":              "read by the transaction coordinator when transactions exist",
	"offsets.topic.compression.codec":                  "group records are written uncompressed",
	"offsets.load.buffer.size":                         "group partitions are loaded batch by batch",
	"offsets.retention.check.interval.ms":              "expired offsets are checked at each group write and load",
	"log.dir.failure.timeout.ms":                       "one log directory per broker",
	"delegation.token.secret.key":                      "delegation tokens are not supported",
	"share.coordinator.state.topic.num.partitions":     "share groups are not supported",
	"zookeeper.session.timeout.ms":                     "there is no ZooKeeper",
	"zookeeper.connection.timeout.ms":                  "there is no ZooKeeper",
}

// kafkaRefused are Kafka keys whose setting would change semantics Strata
// does not have: accepting them silently would mislead. They are refused
// with the value's reason unless set to the value that means "off".
var kafkaRefused = map[string]struct {
	off    string // a value that is accepted (the feature disabled); "" accepts only the empty value
	reason string
}{
	"zookeeper.connect":                   {"", "Strata has no ZooKeeper: its metadata quorum is set with controller.quorum.voters"},
	"zookeeper.metadata.migration.enable": {"false", "there is no ZooKeeper to migrate from"},
	"remote.log.storage.system.enable":    {"false", "tiered storage is not supported"},
}

// Suggest returns the known keys closest to name (edit distance at most a
// third of its length, at most 3), best first, for "did you mean".
func (r *Registry) Suggest(name string) []string {
	limit := len(name) / 3
	if limit > 3 {
		limit = 3
	}
	if limit < 1 {
		limit = 1
	}
	type cand struct {
		key string
		d   int
	}
	var cs []cand
	consider := func(k string) {
		if d := editDistance(name, k); d <= limit {
			cs = append(cs, cand{k, d})
		}
	}
	for _, k := range r.Names() {
		consider(k)
	}
	for k := range kafkaIgnored {
		consider(k)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].d < cs[j].d || cs[i].d == cs[j].d && cs[i].key < cs[j].key })
	var out []string
	for i, c := range cs {
		if i == 3 {
			break
		}
		out = append(out, c.key)
	}
	return out
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// didYouMean formats suggestions for an error message.
func didYouMean(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(s, " or ") + "?)"
}
