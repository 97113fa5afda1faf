// Package fetchsession is the broker's cache of incremental fetch sessions
// (KIP-227), with Kafka's semantics: a full fetch (session epoch 0) may
// open a session whose id the response carries; the fetcher's next
// requests (epochs 1, 2, ...) name only the partitions whose fetch
// parameters changed and the ones to forget, the broker reads every
// partition of the session, and the response leaves out the partitions
// with nothing new (no records, same high watermark and log start, no
// error). A full fetch naming a session closes it; epoch -1 is a
// sessionless full fetch. The cache holds at most
// max.incremental.fetch.session.cache.slots sessions and evicts as Kafka's
// FetchSessionCache does: first a session idle for two minutes, else the
// smallest evictable one if the new session is worth more (followers'
// sessions are privileged; a session is evictable by anyone only once it is
// two minutes old, and a consumer's by a follower at once).
//
// It depends on nothing else in Strata: the broker maps Fetch requests to
// Request and partition reads to Result.
package fetchsession
