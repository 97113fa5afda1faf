package controller

import (
	"fmt"
	"sort"
	"strings"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
)

// MaxTopicNameLength is Kafka's limit.
const MaxTopicNameLength = 249

// ValidateTopicName applies Kafka's topic name rules.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: topic name is empty", ErrInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic name cannot be %q", ErrInvalidTopic, name)
	case len(name) > MaxTopicNameLength:
		return fmt.Errorf("%w: topic name is %d characters, the limit is %d", ErrInvalidTopic, len(name), MaxTopicNameLength)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: topic name %q has character %q; only ASCII letters, digits, '.', '_' and '-' are allowed", ErrInvalidTopic, name, r)
		}
	}
	return nil
}

// collisionName folds '.' into '_', as Kafka does to find topics whose
// metric names would collide.
func collisionName(name string) string { return strings.ReplaceAll(name, ".", "_") }

// CreateTopic is one topic to create.
type CreateTopic struct {
	Name              string
	Partitions        int32 // -1: the broker default
	ReplicationFactor int16 // -1: the broker default
	Assignment        map[int32][]int32
	Configs           map[string]*string
	// Internal lets the broker itself create one of Options.InternalTopics
	// (__consumer_offsets); client requests never set it.
	Internal bool
}

// CreateTopicResult is the outcome for one topic.
type CreateTopicResult struct {
	Name              string
	ID                metadata.UUID
	Partitions        int32
	ReplicationFactor int16
	Err               error
}

// CreateTopics validates and (unless validateOnly) creates topics. Each topic
// succeeds or fails on its own; all successful ones are committed together.
func (c *Controller) CreateTopics(reqs []CreateTopic, validateOnly bool) []CreateTopicResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.images.Image()
	out := make([]CreateTopicResult, len(reqs))
	seen := map[string]int{}
	for _, r := range reqs {
		seen[r.Name]++
	}
	collide := map[string]string{}
	for n := range img.Topics {
		collide[collisionName(n)] = n
	}
	var recs []metadata.Record
	var created []int
	for i, r := range reqs {
		res := &out[i]
		res.Name = r.Name
		if seen[r.Name] > 1 {
			res.Err = fmt.Errorf("%w: topic %q appears more than once in the request", ErrInvalidRequest, r.Name)
			continue
		}
		topicRecs, err := c.planTopic(img, r, res, collide, len(recs))
		if err != nil {
			res.Err = err
			continue
		}
		collide[collisionName(r.Name)] = r.Name
		recs = append(recs, topicRecs...)
		created = append(created, i)
	}
	if err := c.tooManyPartitions("CreateTopics", created, func(i int) int { return int(out[i].Partitions) }); err != nil {
		for _, i := range created {
			out[i].Err = err
		}
		return out
	}
	if validateOnly || len(recs) == 0 {
		return out
	}
	if _, err := c.commit(recs); err != nil {
		for _, i := range created {
			out[i].Err = fmt.Errorf("commit metadata: %w", err)
		}
	}
	return out
}

// planTopic validates one topic and returns its records. spread varies the
// first broker of the round-robin placement between topics created in the
// same request, so their leaders spread too.
func (c *Controller) planTopic(img *metadata.Image, r CreateTopic, res *CreateTopicResult, collide map[string]string, spread int) ([]metadata.Record, error) {
	if err := ValidateTopicName(r.Name); err != nil {
		return nil, err
	}
	if c.opts.InternalTopics[r.Name] && !r.Internal {
		return nil, fmt.Errorf("%w: %q is an internal topic", ErrInvalidTopic, r.Name)
	}
	if _, ok := img.Topics[r.Name]; ok {
		return nil, fmt.Errorf("%w: topic %q already exists", ErrTopicExists, r.Name)
	}
	if other, ok := collide[collisionName(r.Name)]; ok {
		return nil, fmt.Errorf("%w: topic %q collides with existing topic %q ('.' and '_' are equivalent in metric names)", ErrInvalidTopic, r.Name, other)
	}
	if err := validateTopicConfigs(r.Configs); err != nil {
		return nil, err
	}
	brokers := placementBrokers(img)
	var assignment [][]int32
	if len(r.Assignment) > 0 {
		if r.Partitions != -1 || r.ReplicationFactor != -1 {
			return nil, fmt.Errorf("%w: give either a replica assignment or partition count and replication factor, not both", ErrInvalidRequest)
		}
		var err error
		assignment, err = checkAssignment(r.Assignment, 0, img)
		if err != nil {
			return nil, err
		}
	} else {
		parts := r.Partitions
		if parts == -1 {
			parts = c.opts.DefaultPartitions
		}
		rf := r.ReplicationFactor
		if rf == -1 {
			rf = c.opts.DefaultReplicationFactor
		}
		if parts <= 0 {
			return nil, fmt.Errorf("%w: partition count must be positive, got %d", ErrInvalidPartitions, parts)
		}
		if parts > MaxPartitionsPerTopic {
			return nil, fmt.Errorf("%w: %d partitions exceeds the limit of %d per topic", ErrPolicyViolation, parts, MaxPartitionsPerTopic)
		}
		if rf <= 0 {
			return nil, fmt.Errorf("%w: replication factor must be positive, got %d", ErrInvalidReplicationFactor, rf)
		}
		if int(rf) > len(brokers) {
			return nil, tooFewBrokers(img, int(rf), len(brokers))
		}
		assignment = place(brokers, 0, parts, rf, int(img.Offset+1)+spread)
	}
	id := metadata.NewUUID()
	res.ID = id
	res.Partitions = int32(len(assignment))
	res.ReplicationFactor = int16(len(assignment[0]))
	recs := []metadata.Record{&metadata.TopicRecord{Name: r.Name, ID: id}}
	for p, replicas := range assignment {
		recs = append(recs, newPartition(img, id, int32(p), replicas))
	}
	for _, k := range sortedKeys(r.Configs) {
		if v := r.Configs[k]; v != nil {
			recs = append(recs, &metadata.ConfigRecord{ResourceType: metadata.ResourceTopic, ResourceName: r.Name, Name: k, Value: v})
		}
	}
	return recs, nil
}

func validateTopicConfigs(cfgs map[string]*string) error {
	reg := config.NewRegistry(config.TopicDefs())
	for _, k := range sortedKeys(cfgs) {
		v := cfgs[k]
		if v == nil {
			if _, ok := reg.Lookup(k); !ok {
				return fmt.Errorf("%w: unknown topic config %q", ErrInvalidConfig, k)
			}
			continue
		}
		if err := reg.Validate(k, *v); err != nil {
			return err
		}
	}
	return nil
}

// checkAssignment validates explicit assignments for partitions
// first..first+len-1 and returns them in partition order.
func checkAssignment(a map[int32][]int32, first int32, img *metadata.Image) ([][]int32, error) {
	out := make([][]int32, len(a))
	for p, replicas := range a {
		idx := p - first
		if idx < 0 || int(idx) >= len(a) {
			return nil, fmt.Errorf("%w: partitions must be numbered %d..%d without gaps, got %d", ErrInvalidReplicaAssignment, first, first+int32(len(a))-1, p)
		}
		if len(replicas) == 0 {
			return nil, fmt.Errorf("%w: partition %d has no replicas", ErrInvalidReplicaAssignment, p)
		}
		seen := map[int32]bool{}
		for _, b := range replicas {
			if seen[b] {
				return nil, fmt.Errorf("%w: partition %d lists broker %d twice", ErrInvalidReplicaAssignment, p, b)
			}
			seen[b] = true
			if _, ok := img.Brokers[b]; !ok {
				return nil, fmt.Errorf("%w: partition %d is assigned to unknown broker %d", ErrInvalidReplicaAssignment, p, b)
			}
		}
		if firstUsable(img, replicas) < 0 {
			return nil, fmt.Errorf("%w: every broker assigned to partition %d is fenced, shutting down, or has every log directory offline", ErrInvalidReplicaAssignment, p)
		}
		out[idx] = replicas
	}
	for i := range out {
		if len(out[i]) != len(out[0]) {
			return nil, fmt.Errorf("%w: every partition must have the same number of replicas", ErrInvalidReplicaAssignment)
		}
	}
	return out, nil
}

// place spreads partitions first..first+count-1 over brokers round robin,
// starting at an offset so that leaders of different topics spread too.
func place(brokers []int32, first, count int32, rf int16, start int) [][]int32 {
	out := make([][]int32, count)
	n := len(brokers)
	for i := range count {
		p := int(first + i)
		replicas := make([]int32, rf)
		for r := range int(rf) {
			replicas[r] = brokers[(start+p+r)%n]
		}
		out[i] = replicas
	}
	return out
}

func sortedBrokers(img *metadata.Image) []int32 {
	out := make([]int32, 0, len(img.Brokers))
	for id := range img.Brokers {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DeleteTopic names a topic by name or, when Name is empty, by id.
type DeleteTopic struct {
	Name string
	ID   metadata.UUID
}

// DeleteTopicResult is the outcome for one topic.
type DeleteTopicResult struct {
	Name string
	ID   metadata.UUID
	Err  error
}

// DeleteTopics removes topics.
func (c *Controller) DeleteTopics(reqs []DeleteTopic) []DeleteTopicResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.images.Image()
	out := make([]DeleteTopicResult, len(reqs))
	var recs []metadata.Record
	var deleted []int
	seen := map[metadata.UUID]bool{}
	dup := map[DeleteTopic]int{}
	for _, r := range reqs {
		dup[r]++
	}
	for i, r := range reqs {
		res := &out[i]
		res.Name, res.ID = r.Name, r.ID
		if dup[r] > 1 {
			res.Err = fmt.Errorf("%w: topic %s appears more than once in the request", ErrInvalidRequest, r.Name+r.ID.String())
			continue
		}
		var t *metadata.Topic
		if r.Name != "" {
			t = img.Topics[r.Name]
			if t == nil {
				res.Err = fmt.Errorf("%w: %q", ErrUnknownTopic, r.Name)
				continue
			}
		} else {
			t = img.TopicsByID[r.ID]
			if t == nil {
				res.Err = fmt.Errorf("%w: %s", ErrUnknownTopicID, r.ID)
				continue
			}
		}
		res.Name, res.ID = t.Name, t.ID
		if !c.opts.DeleteTopicEnable {
			res.Err = ErrDeletionDisabled
			continue
		}
		if c.opts.InternalTopics[t.Name] {
			res.Err = fmt.Errorf("%w: %q is an internal topic and cannot be deleted", ErrInvalidTopic, t.Name)
			continue
		}
		if seen[t.ID] {
			continue
		}
		seen[t.ID] = true
		recs = append(recs, &metadata.RemoveTopicRecord{ID: t.ID})
		deleted = append(deleted, i)
	}
	if len(recs) == 0 {
		return out
	}
	if _, err := c.commit(recs); err != nil {
		for _, i := range deleted {
			out[i].Err = fmt.Errorf("commit metadata: %w", err)
		}
	}
	return out
}

// CreatePartitions is a request to grow a topic to Count partitions.
type CreatePartitions struct {
	Topic      string
	Count      int32
	Assignment [][]int32 // for the new partitions only; nil to place automatically
}

// CreatePartitionsAll grows topics; each succeeds or fails on its own.
func (c *Controller) CreatePartitionsAll(reqs []CreatePartitions, validateOnly bool) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.images.Image()
	out := make([]error, len(reqs))
	seen := map[string]int{}
	for _, r := range reqs {
		seen[r.Topic]++
	}
	var recs []metadata.Record
	var grown []int
	for i, r := range reqs {
		if seen[r.Topic] > 1 {
			out[i] = fmt.Errorf("%w: topic %q appears more than once in the request", ErrInvalidRequest, r.Topic)
			continue
		}
		t := img.Topics[r.Topic]
		if t == nil {
			out[i] = fmt.Errorf("%w: %q", ErrUnknownTopic, r.Topic)
			continue
		}
		if c.opts.InternalTopics[r.Topic] {
			out[i] = fmt.Errorf("%w: %q is an internal topic", ErrInvalidTopic, r.Topic)
			continue
		}
		cur := int32(len(t.Partitions))
		if r.Count <= cur {
			out[i] = fmt.Errorf("%w: topic %q has %d partitions; the new count must be larger, got %d", ErrInvalidPartitions, r.Topic, cur, r.Count)
			continue
		}
		if r.Count > MaxPartitionsPerTopic {
			out[i] = fmt.Errorf("%w: %d partitions exceeds the limit of %d per topic", ErrPolicyViolation, r.Count, MaxPartitionsPerTopic)
			continue
		}
		add := r.Count - cur
		var assignment [][]int32
		if r.Assignment != nil {
			if int32(len(r.Assignment)) != add {
				out[i] = fmt.Errorf("%w: %d assignments given for %d new partitions", ErrInvalidReplicaAssignment, len(r.Assignment), add)
				continue
			}
			m := map[int32][]int32{}
			for j, a := range r.Assignment {
				m[cur+int32(j)] = a
			}
			var err error
			if assignment, err = checkAssignment(m, cur, img); err != nil {
				out[i] = err
				continue
			}
			if len(assignment[0]) != len(t.Partitions[0].Replicas) {
				out[i] = fmt.Errorf("%w: new partitions must have %d replicas like the existing ones", ErrInvalidReplicaAssignment, len(t.Partitions[0].Replicas))
				continue
			}
		} else {
			brokers, rf := placementBrokers(img), len(t.Partitions[0].Replicas)
			if rf > len(brokers) {
				out[i] = tooFewBrokers(img, rf, len(brokers))
				continue
			}
			assignment = place(brokers, cur, add, int16(rf), int(img.Offset+1))
		}
		for j, replicas := range assignment {
			recs = append(recs, newPartition(img, t.ID, cur+int32(j), replicas))
		}
		grown = append(grown, i)
	}
	if err := c.tooManyPartitions("CreatePartitions", grown, func(i int) int { return int(reqs[i].Count - int32(len(img.Topics[reqs[i].Topic].Partitions))) }); err != nil {
		for _, i := range grown {
			out[i] = err
		}
		return out
	}
	if validateOnly || len(recs) == 0 {
		return out
	}
	if _, err := c.commit(recs); err != nil {
		for _, i := range grown {
			out[i] = fmt.Errorf("commit metadata: %w", err)
		}
	}
	return out
}

// tooManyPartitions fails a request whose topics (the indexes in ok, each
// creating count(i) partitions) would create more partitions than one
// request may, as Kafka's validateTotalNumberOfPartitions does: the
// whole request, with POLICY_VIOLATION.
func (c *Controller) tooManyPartitions(api string, ok []int, count func(int) int) error {
	limit := c.opts.MaxPartitionsPerRequest
	if limit <= 0 {
		limit = DefaultMaxPartitionsPerRequest
	}
	total := 0
	for _, i := range ok {
		total += count(i)
	}
	if total <= limit {
		return nil
	}
	c.opts.Logger.Info(api+" refused: too many partitions in one request", "partitions", total, "topics", len(ok), "controller.max.records.per.batch", limit)
	return fmt.Errorf("%w: Excessively large number of partitions per request: %d new partitions over %d topics, more than controller.max.records.per.batch (%d); create them in several requests", ErrPolicyViolation, total, len(ok), limit)
}

// newPartition is a new partition's record: its unfenced replicas are the
// ISR (as Kafka: a fenced broker is not in sync with anything) and the
// first of them leads.
func newPartition(img *metadata.Image, topic metadata.UUID, p int32, replicas []int32) *metadata.PartitionRecord {
	dirs := directoriesFor(img, replicas, nil)
	part := &metadata.Partition{Replicas: replicas, Directories: dirs}
	isr := make([]int32, 0, len(replicas))
	for _, r := range replicas {
		if replicaLive(img, part, r) {
			isr = append(isr, r)
		}
	}
	return &metadata.PartitionRecord{TopicID: topic, Partition: p, Replicas: replicas, ISR: isr, Leader: firstIn(replicas, isr), Directories: dirs}
}
