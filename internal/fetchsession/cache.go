package fetchsession

import (
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Session epochs with a meaning of their own (Kafka's FetchMetadata).
const (
	// InitialEpoch asks for a full fetch that opens a session.
	InitialEpoch int32 = 0
	// FinalEpoch asks for a full fetch without a session (closing the one
	// named, if any).
	FinalEpoch int32 = -1
)

// DefaultEvictAfter is Kafka's min.incremental.fetch.session.eviction.ms:
// a session unused this long may be evicted by any new one, and one
// younger than this is protected from eviction by sessions of its class.
const DefaultEvictAfter = 2 * time.Minute

// Errors a fetch request can get for its session; the broker answers
// them as the Fetch response's top-level error.
var (
	// ErrSessionNotFound is FETCH_SESSION_ID_NOT_FOUND.
	ErrSessionNotFound = errors.New("fetch session id not found")
	// ErrInvalidEpoch is INVALID_FETCH_SESSION_EPOCH.
	ErrInvalidEpoch = errors.New("invalid fetch session epoch")
	// ErrTopicIDMismatch is FETCH_SESSION_TOPIC_ID_ERROR: the session
	// was opened with topic ids (v13+) and the request names topics, or
	// the reverse.
	ErrTopicIDMismatch = errors.New("fetch session topic id usage changed")
)

// NextEpoch is the epoch after prev: the one the fetcher sends next.
func NextEpoch(prev int32) int32 {
	switch {
	case prev < 0:
		return FinalEpoch
	case prev == math.MaxInt32:
		return 1
	default:
		return prev + 1
	}
}

// Key names a partition in a session: by topic id when the session uses
// them (Fetch v13+), by topic name otherwise.
type Key struct {
	TopicID   [16]byte
	Topic     string
	Partition int32
}

// Params are what the fetcher asks of one partition.
type Params struct {
	FetchOffset        int64
	LogStartOffset     int64 // the fetching follower's, -1 for consumers
	MaxBytes           int32
	CurrentLeaderEpoch int32
	LastFetchedEpoch   int32
}

// Partition is one partition to read with its parameters.
type Partition struct {
	Key
	Params
}

// Result is what the broker's read of a partition found: what decides
// whether an incremental response must carry it.
type Result struct {
	HighWatermark  int64
	LogStartOffset int64
	// LastStableOffset moves read_committed fetchers (Kafka sends the
	// partition when it changes).
	LastStableOffset int64
	HasRecords       bool
	Error            bool // any partition error
	Diverging        bool // a diverging epoch for a follower
}

// Config sizes the cache.
type Config struct {
	// Slots is max.incremental.fetch.session.cache.slots: the most
	// sessions held at once (0 disables sessions).
	Slots int
	// EvictAfter defaults to DefaultEvictAfter.
	EvictAfter time.Duration
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// NewID draws a session id candidate (a random positive int32 by
	// default); ids in use and 0 are drawn again.
	NewID func() int32
}

// Cache holds the broker's fetch sessions. It is safe for concurrent use.
type Cache struct {
	slots      int
	evictAfter time.Duration
	now        func() time.Time
	newID      func() int32

	mu         sync.Mutex
	sessions   map[int32]*session
	partitions int // cached partitions over all sessions (as last touched)
	evictions  int64
	// Requests served by kind: full (epoch 0), incremental; [1] counts
	// the privileged (followers') ones alone.
	fulls, incrementals [2]int64
}

// NewCache returns an empty cache.
func NewCache(cfg Config) *Cache {
	c := &Cache{slots: max(cfg.Slots, 0), evictAfter: cfg.EvictAfter, now: cfg.Now, newID: cfg.NewID,
		sessions: map[int32]*session{}}
	if c.evictAfter <= 0 {
		c.evictAfter = DefaultEvictAfter
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.newID == nil {
		c.newID = func() int32 { return rand.Int32N(math.MaxInt32-1) + 1 }
	}
	return c
}

// Stats describes the cache (Kafka's NumIncrementalFetchSessions,
// NumIncrementalFetchPartitionsCached and the eviction count), and how
// many fetches it has taken as full (epoch 0) and incremental.
type Stats struct {
	Sessions, Partitions int
	Evictions            int64
	Full, Incremental    int64
	// FollowerFull and FollowerIncremental count the followers' fetches
	// alone, and PrivilegedSessions are their sessions.
	FollowerFull, FollowerIncremental int64
	PrivilegedSessions                int
}

// Stats returns the cache's counts.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Stats{Sessions: len(c.sessions), Partitions: c.partitions, Evictions: c.evictions, Full: c.fulls[0], Incremental: c.incrementals[0],
		FollowerFull: c.fulls[1], FollowerIncremental: c.incrementals[1]}
	for _, s := range c.sessions {
		if s.privileged {
			st.PrivilegedSessions++
		}
	}
	return st
}

// session is one incremental fetch session; the cache's mutex guards it.
type session struct {
	id         int32
	privileged bool // opened by a follower
	topicIDs   bool
	created    time.Time
	lastUsed   time.Time
	epoch      int32 // the epoch the next request must carry
	parts      []*cached
	index      map[Key]*cached
	// cachedSize is the size when last touched; evictableByPrivileged
	// and evictableByAll are what Kafka's touch decides, then too.
	cachedSize            int
	evictableByPrivileged bool
	evictableByAll        bool
}

// cached is a partition of a session: the fetcher's last parameters and
// what the last response told it.
type cached struct {
	Partition
	highWatermark    int64
	logStartOffset   int64
	lastStableOffset int64
}

// less orders sessions for eviction as Kafka's EvictableKey: unprivileged
// first, then smaller, then by id.
func evictableLess(priv1 bool, size1 int, id1 int32, priv2 bool, size2 int, id2 int32) bool {
	if priv1 != priv2 {
		return !priv1
	}
	if size1 != size2 {
		return size1 < size2
	}
	return id1 < id2
}

// touchLocked marks s used now and re-files it for eviction.
func (c *Cache) touchLocked(s *session, now time.Time) {
	s.lastUsed = now
	c.partitions += len(s.parts) - s.cachedSize
	s.cachedSize = len(s.parts)
	old := now.Sub(s.created) > c.evictAfter
	s.evictableByPrivileged = !s.privileged || old
	s.evictableByAll = old
}

func (c *Cache) removeLocked(s *session) {
	if c.sessions[s.id] != s {
		return
	}
	delete(c.sessions, s.id)
	c.partitions -= s.cachedSize
}

// tryEvictLocked makes room for a session of size partitions, as Kafka's
// FetchSessionCache.tryEvict: a session idle longer than evictAfter goes
// first; else the least valuable evictable one, if the new one is worth
// more.
func (c *Cache) tryEvictLocked(privileged bool, size int, now time.Time) bool {
	var lru, victim *session
	for _, s := range c.sessions {
		if lru == nil || s.lastUsed.Before(lru.lastUsed) || (s.lastUsed.Equal(lru.lastUsed) && s.id < lru.id) {
			lru = s
		}
		if (privileged && s.evictableByPrivileged) || (!privileged && s.evictableByAll) {
			if victim == nil || evictableLess(s.privileged, s.cachedSize, s.id, victim.privileged, victim.cachedSize, victim.id) {
				victim = s
			}
		}
	}
	if lru == nil {
		return false
	}
	if now.Sub(lru.lastUsed) > c.evictAfter {
		c.removeLocked(lru)
		c.evictions++
		return true
	}
	// The new session's key has id 0, below every real id: it must be
	// strictly more valuable than the victim.
	if victim == nil || evictableLess(privileged, size, 0, victim.privileged, victim.cachedSize, victim.id) {
		return false
	}
	c.removeLocked(victim)
	c.evictions++
	return true
}

// createLocked opens a session for parts if there is room (evicting if
// Kafka would), and returns its id, or 0.
func (c *Cache) createLocked(privileged, topicIDs bool, parts []*cached) int32 {
	now := c.now()
	if len(c.sessions) >= c.slots && !c.tryEvictLocked(privileged, len(parts), now) {
		return 0
	}
	id := c.newID()
	for id <= 0 || c.sessions[id] != nil {
		id = c.newID()
	}
	s := &session{id: id, privileged: privileged, topicIDs: topicIDs, created: now,
		epoch: NextEpoch(InitialEpoch), parts: parts, index: make(map[Key]*cached, len(parts))}
	for _, p := range parts {
		s.index[p.Key] = p
	}
	c.sessions[id] = s
	c.touchLocked(s, now)
	return id
}

// countLocked counts a full or incremental fetch.
func (c *Cache) countLocked(counts *[2]int64, privileged bool) {
	counts[0]++
	if privileged {
		counts[1]++
	}
}
