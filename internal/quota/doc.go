// Package quota is Kafka's client quotas (KIP-13, KIP-55, KIP-124,
// KIP-599): quota entities (user, client-id, both, with <default>s) and
// the precedence that picks the quota of a request, the rate windows that
// measure a client (Kafka's Rate over a SampledStat, and the TokenBucket
// of controller mutations), and the throttle times they give.
//
// The quotas themselves are metadata records (metadata.ClientQuotaRecord);
// a Manager is fed the image's quotas and answers the broker's questions
// ("how long must this client wait?") without allocating when no quota
// applies. Time comes from an injected clock.
//
// It imports only the standard library.
package quota
