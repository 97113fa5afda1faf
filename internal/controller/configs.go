package controller

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
)

// Config operations, numbered as IncrementalAlterConfigs numbers them.
const (
	OpSet      int8 = 0
	OpDelete   int8 = 1
	OpAppend   int8 = 2
	OpSubtract int8 = 3
)

// ConfigOp is one change to one key.
type ConfigOp struct {
	Name  string
	Op    int8
	Value *string
}

// AlterConfigResource is the set of changes to one resource. With Replace
// (the legacy AlterConfigs), the ops are SETs that replace every existing
// override of the resource.
type AlterConfigResource struct {
	Type    int8
	Name    string
	Ops     []ConfigOp
	Replace bool
}

// AlterConfigs applies config changes; each resource succeeds or fails on its
// own.
func (c *Controller) AlterConfigs(reqs []AlterConfigResource, validateOnly bool) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.images.Image()
	out := make([]error, len(reqs))
	var recs []metadata.Record
	var changed []int
	for i, r := range reqs {
		rs, err := c.planConfig(img, r)
		if err != nil {
			out[i] = err
			continue
		}
		recs = append(recs, rs...)
		changed = append(changed, i)
	}
	if validateOnly || len(recs) == 0 {
		return out
	}
	if _, err := c.commit(recs); err != nil {
		for _, i := range changed {
			out[i] = fmt.Errorf("commit metadata: %w", err)
		}
	}
	return out
}

func (c *Controller) planConfig(img *metadata.Image, r AlterConfigResource) ([]metadata.Record, error) {
	var reg *config.Registry
	var defaultOf func(string) string
	switch r.Type {
	case metadata.ResourceTopic:
		if _, ok := img.Topics[r.Name]; !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, r.Name)
		}
		reg = config.NewRegistry(config.TopicDefs())
		defaultOf = func(k string) string {
			d, _ := reg.Lookup(k)
			return config.ResolveTopic(d, config.Layers{
				DynamicBroker:  img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker, Name: strconv.Itoa(int(c.opts.NodeID))}],
				DynamicDefault: img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker}],
				Static:         c.opts.Static,
			}).Value
		}
	case metadata.ResourceBroker:
		if r.Name != "" && r.Name != strconv.Itoa(int(c.opts.NodeID)) {
			if _, err := strconv.Atoi(r.Name); err != nil {
				return nil, fmt.Errorf("%w: broker resource name %q is not a node id", ErrInvalidRequest, r.Name)
			}
			if _, ok := img.Brokers[mustAtoi32(r.Name)]; !ok {
				return nil, fmt.Errorf("%w: unknown broker %s", ErrInvalidRequest, r.Name)
			}
		}
		reg = config.NewRegistry(config.BrokerDefs())
		defaultOf = func(k string) string {
			if c.opts.Static == nil {
				d, _ := reg.Lookup(k)
				return d.Default
			}
			return c.opts.Static.String(k)
		}
	default:
		return nil, fmt.Errorf("%w: config resource type %d is not supported", ErrInvalidRequest, r.Type)
	}
	current := img.Configs[metadata.ConfigResource{Type: r.Type, Name: r.Name}]
	next := map[string]*string{}
	if !r.Replace {
		for k, v := range current {
			next[k] = &v
		}
	}
	seen := map[string]bool{}
	for _, op := range r.Ops {
		if seen[op.Name] {
			return nil, fmt.Errorf("%w: config %q appears more than once", ErrInvalidRequest, op.Name)
		}
		seen[op.Name] = true
		d, ok := reg.Lookup(op.Name)
		if !ok {
			return nil, fmt.Errorf("%w: unknown config %q", ErrInvalidConfig, op.Name)
		}
		if r.Type == metadata.ResourceBroker && !config.IsDynamicBrokerKey(op.Name) {
			return nil, fmt.Errorf("%w: broker config %q cannot be changed at run time; set it in the config file and restart", ErrInvalidConfig, op.Name)
		}
		switch op.Op {
		case OpSet:
			if op.Value == nil {
				return nil, fmt.Errorf("%w: config %q: SET needs a value", ErrInvalidConfig, op.Name)
			}
			next[op.Name] = op.Value
		case OpDelete:
			delete(next, op.Name)
		case OpAppend, OpSubtract:
			if d.Type != config.TypeList {
				return nil, fmt.Errorf("%w: config %q is not a list; APPEND and SUBTRACT apply only to lists", ErrInvalidConfig, op.Name)
			}
			if op.Value == nil {
				return nil, fmt.Errorf("%w: config %q: %s needs a value", ErrInvalidConfig, op.Name, map[int8]string{OpAppend: "APPEND", OpSubtract: "SUBTRACT"}[op.Op])
			}
			base := defaultOf(op.Name)
			if v, ok := next[op.Name]; ok {
				base = *v
			}
			items := splitList(base)
			for _, x := range splitList(*op.Value) {
				if op.Op == OpAppend && !slices.Contains(items, x) {
					items = append(items, x)
				} else if op.Op == OpSubtract {
					items = slices.DeleteFunc(items, func(s string) bool { return s == x })
				}
			}
			v := strings.Join(items, ",")
			next[op.Name] = &v
		default:
			return nil, fmt.Errorf("%w: unknown config operation %d", ErrInvalidRequest, op.Op)
		}
		if v := next[op.Name]; v != nil {
			if err := d.Validate(*v); err != nil {
				return nil, err
			}
		}
	}
	var recs []metadata.Record
	for _, k := range sortedKeys(next) {
		if old, ok := current[k]; !ok || old != *next[k] {
			recs = append(recs, &metadata.ConfigRecord{ResourceType: r.Type, ResourceName: r.Name, Name: k, Value: next[k]})
		}
	}
	for _, k := range sortedKeys(current) {
		if _, ok := next[k]; !ok {
			recs = append(recs, &metadata.ConfigRecord{ResourceType: r.Type, ResourceName: r.Name, Name: k})
		}
	}
	return recs, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func mustAtoi32(s string) int32 {
	n, _ := strconv.Atoi(s)
	return int32(n)
}
