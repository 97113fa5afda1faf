package fetchsession

// Kind is what a fetch request is to the cache.
type Kind int

const (
	// Sessionless is a full fetch without a session: epoch -1, a request
	// older than v7, or an incremental fetch that forgot its last
	// partition (which closes the session).
	Sessionless Kind = iota
	// Full is a full fetch that may open a session (epoch 0).
	Full
	// Incremental reads the partitions of an existing session.
	Incremental
)

func (k Kind) String() string {
	switch k {
	case Full:
		return "full"
	case Incremental:
		return "incremental"
	default:
		return "sessionless"
	}
}

// Request is a fetch request's session fields and partitions.
type Request struct {
	SessionID int32
	Epoch     int32
	// TopicIDs is set for Fetch v13+, which names topics by id.
	TopicIDs bool
	// Privileged is set for a follower's fetch.
	Privileged bool
	// Partitions are the request's partitions in order (for an
	// incremental fetch: the added and changed ones).
	Partitions []Partition
	// Forgotten are the partitions an incremental fetch drops.
	Forgotten []Key
}

// Context is one fetch request's view of its session: the partitions to
// read, and (Finish) which of them the response carries.
type Context struct {
	cache   *Cache
	kind    Kind
	req     Request
	session *session // Incremental
	parts   []Partition
	// Closed is the id of a session this request closed (0 if none).
	Closed int32
}

// NewContext checks r against the cache and returns what to read, or
// ErrSessionNotFound, ErrInvalidEpoch or ErrTopicIDMismatch, which the
// whole request is answered with. An incremental fetch's session takes
// the request's changes and moves to its next epoch here.
func (c *Cache) NewContext(r Request) (*Context, error) {
	x := &Context{cache: c, req: r}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Epoch == InitialEpoch || r.Epoch == FinalEpoch {
		// Any session a full fetch names is closed.
		if s := c.sessions[r.SessionID]; r.SessionID != 0 && s != nil {
			c.removeLocked(s)
			x.Closed = s.id
		}
		x.kind = Full
		if r.Epoch == FinalEpoch {
			x.kind = Sessionless
		} else {
			c.countLocked(&c.fulls, r.Privileged)
		}
		x.parts = r.Partitions
		return x, nil
	}
	s := c.sessions[r.SessionID]
	switch {
	case s == nil:
		return nil, ErrSessionNotFound
	case s.epoch != r.Epoch:
		return nil, ErrInvalidEpoch
	case s.topicIDs != r.TopicIDs:
		return nil, ErrTopicIDMismatch
	}
	for _, p := range r.Partitions {
		if cp := s.index[p.Key]; cp != nil {
			cp.Params = p.Params
			continue
		}
		cp := &cached{Partition: p, highWatermark: -1, logStartOffset: -1, lastStableOffset: -1}
		s.parts = append(s.parts, cp)
		s.index[p.Key] = cp
	}
	if len(r.Forgotten) > 0 {
		for _, k := range r.Forgotten {
			delete(s.index, k)
		}
		kept := s.parts[:0]
		for _, cp := range s.parts {
			if s.index[cp.Key] == cp {
				kept = append(kept, cp)
			}
		}
		clear(s.parts[len(kept):])
		s.parts = kept
	}
	if len(s.parts) == 0 {
		// Nothing left to fetch: the session closes and the (empty)
		// fetch is answered without one.
		c.removeLocked(s)
		x.kind, x.parts, x.Closed = Sessionless, r.Partitions, s.id
		return x, nil
	}
	c.touchLocked(s, c.now())
	s.epoch = NextEpoch(s.epoch)
	c.countLocked(&c.incrementals, r.Privileged)
	x.kind, x.session = Incremental, s
	x.parts = make([]Partition, len(s.parts))
	for i, cp := range s.parts {
		x.parts[i] = cp.Partition
	}
	return x, nil
}

// Kind reports what the request is.
func (x *Context) Kind() Kind { return x.kind }

// Partitions are the partitions to read, in the order the response lists
// them: the request's for a full fetch, the session's for an incremental
// one.
func (x *Context) Partitions() []Partition { return x.parts }

// Finish takes what the reads found (one Result per Partitions entry)
// and returns the session id for the response and which partitions it
// carries. A full fetch opens its session here if the cache has (or can
// make) room: the id is 0 otherwise, and the fetcher keeps sending full
// fetches. An incremental response carries a partition only with records,
// an error, a diverging epoch, or a high watermark or log start offset
// other than the session last told; those with records move to the end
// of the session, so that the next fetches serve the others first.
func (x *Context) Finish(results []Result) (sessionID int32, include []bool) {
	include = make([]bool, len(x.parts))
	switch x.kind {
	case Sessionless:
		for i := range include {
			include[i] = true
		}
		return 0, include
	case Full:
		for i := range include {
			include[i] = true
		}
		parts := make([]*cached, 0, len(x.parts))
		seen := make(map[Key]*cached, len(x.parts))
		for i, p := range x.parts {
			cp := &cached{Partition: p}
			cp.observe(results[i])
			if prev := seen[p.Key]; prev != nil {
				*prev = *cp // a partition named twice: the last one counts
				continue
			}
			seen[p.Key] = cp
			parts = append(parts, cp)
		}
		x.cache.mu.Lock()
		defer x.cache.mu.Unlock()
		return x.cache.createLocked(x.req.Privileged, x.req.TopicIDs, parts), include
	}
	x.cache.mu.Lock()
	defer x.cache.mu.Unlock()
	s := x.session
	var moved []*cached
	for i, p := range x.parts {
		cp := s.index[p.Key]
		if cp == nil {
			include[i] = true // forgotten meanwhile: say what was read
			continue
		}
		include[i] = cp.observe(results[i])
		if results[i].HasRecords {
			moved = append(moved, cp)
		}
	}
	if len(moved) > 0 {
		last := make(map[*cached]bool, len(moved))
		for _, cp := range moved {
			last[cp] = true
		}
		kept := make([]*cached, 0, len(s.parts))
		for _, cp := range s.parts {
			if !last[cp] {
				kept = append(kept, cp)
			}
		}
		s.parts = append(kept, moved...)
	}
	return s.id, include
}

// observe records what a response tells the fetcher of the partition and
// reports whether an incremental response must carry it (Kafka's
// CachedPartition.maybeUpdateResponseData).
func (cp *cached) observe(r Result) bool {
	must := r.HasRecords || r.Diverging
	if cp.highWatermark != r.HighWatermark {
		must = true
		cp.highWatermark = r.HighWatermark
	}
	if cp.logStartOffset != r.LogStartOffset {
		must = true
		cp.logStartOffset = r.LogStartOffset
	}
	if cp.lastStableOffset != r.LastStableOffset {
		must = true
		cp.lastStableOffset = r.LastStableOffset
	}
	if r.Error {
		// An error clears what the fetcher knows: once it goes away,
		// the partition is sent again.
		cp.highWatermark = -1
		must = true
	}
	return must
}
