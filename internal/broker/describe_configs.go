package broker

// DescribeConfigs, v0..4, for topics and this broker (an empty broker name
// is the cluster-wide dynamic defaults). Values resolve through the layers
// Kafka uses: topic override, dynamic broker, dynamic cluster default,
// static broker config, built-in default; synonyms (v1+) list every layer
// that sets the key, and v3+ adds types and documentation.

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
)

func (b *Broker) handleDescribeConfigs(_ context.Context, r *request) {
	req := r.body.(*kmsg.DescribeConfigsRequest)
	img := b.image()
	resp := kmsg.NewPtrDescribeConfigsResponse()
	for _, res := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		var entries []kmsg.DescribeConfigsResponseResourceConfig
		var err error
		switch res.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if img.Topics[res.ResourceName] == nil {
				err = fmt.Errorf("%w: topic %q does not exist", kerr.UnknownTopicOrPartition, res.ResourceName)
				break
			}
			entries = b.describeTopicConfigs(img, img.TopicConfig(res.ResourceName), res.ConfigNames, req.IncludeSynonyms, req.IncludeDocumentation)
		case kmsg.ConfigResourceTypeBroker:
			if res.ResourceName != "" && res.ResourceName != strconv.Itoa(int(b.opts.NodeID)) {
				err = fmt.Errorf("%w: this is broker %d; ask broker %s directly", kerr.InvalidRequest, b.opts.NodeID, res.ResourceName)
				break
			}
			entries = b.describeBrokerConfigs(img, res.ResourceName == "", res.ConfigNames, req.IncludeSynonyms, req.IncludeDocumentation)
		default:
			err = fmt.Errorf("%w: config resource type %d is not supported", kerr.InvalidRequest, res.ResourceType)
		}
		rr.ErrorCode = errorCode(err)
		rr.ErrorMessage = errorMessage(err)
		if r.version == 0 {
			for i := range entries {
				entries[i].ConfigSynonyms = nil
			}
		}
		rr.Configs = entries
		resp.Resources = append(resp.Resources, rr)
	}
	r.respond(resp)
}

func (b *Broker) brokerLayers(img *metadata.Image, topic map[string]string) config.Layers {
	return config.Layers{
		Topic:          topic,
		DynamicBroker:  img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker, Name: strconv.Itoa(int(b.opts.NodeID))}],
		DynamicDefault: img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker}],
		Static:         b.opts.Static,
	}
}

// synonyms lists every layer that sets key, most specific first.
func synonyms(topicKey, brokerKey, def string, l config.Layers) []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	var out []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	add := func(name, v string, src config.Source) {
		v2 := v
		out = append(out, kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{Name: name, Value: &v2, Source: kmsg.ConfigSource(src)})
	}
	if v, ok := l.Topic[topicKey]; ok && topicKey != "" {
		add(topicKey, v, config.SourceTopic)
	}
	if brokerKey == "" {
		// A topic config without a broker synonym (the throttled-replica
		// lists): only the topic's value and the default.
		add(topicKey, def, config.SourceDefault)
		return out
	}
	if v, ok := l.DynamicBroker[brokerKey]; ok {
		add(brokerKey, v, config.SourceDynamicBroker)
	}
	if v, ok := l.DynamicDefault[brokerKey]; ok {
		add(brokerKey, v, config.SourceDynamicDefaultBroker)
	}
	if l.Static != nil {
		if v, src := l.Static.Get(brokerKey); src == config.SourceStaticBroker {
			add(brokerKey, v, src)
		}
	}
	add(brokerKey, def, config.SourceDefault)
	return out
}

// describeTopicConfigs describes every topic config (or those in names)
// given the topic's overrides.
func (b *Broker) describeTopicConfigs(img *metadata.Image, overrides map[string]string, names []string, withSynonyms, withDocs bool) []kmsg.DescribeConfigsResponseResourceConfig {
	l := b.brokerLayers(img, overrides)
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, d := range config.TopicDefs() {
		if names != nil && !slices.Contains(names, d.Name) {
			continue
		}
		res := config.ResolveTopic(&d, l)
		e := configEntry(d, res, withDocs)
		if withSynonyms {
			e.ConfigSynonyms = synonyms(d.Name, d.Synonym, d.Default, l)
		}
		out = append(out, e)
	}
	return out
}

func (b *Broker) describeBrokerConfigs(img *metadata.Image, clusterDefault bool, names []string, withSynonyms, withDocs bool) []kmsg.DescribeConfigsResponseResourceConfig {
	l := b.brokerLayers(img, nil)
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, d := range config.BrokerDefs() {
		if names != nil && !slices.Contains(names, d.Name) {
			continue
		}
		if clusterDefault {
			// The cluster-wide resource shows only what is set there.
			v, ok := l.DynamicDefault[d.Name]
			if !ok {
				continue
			}
			out = append(out, configEntry(d, config.Resolved{Value: v, Source: config.SourceDynamicDefaultBroker}, withDocs))
			continue
		}
		res := config.ResolveBroker(d.Name, d.Default, l)
		e := configEntry(d, res, withDocs)
		e.ReadOnly = !config.IsDynamicBrokerKey(d.Name)
		if withSynonyms {
			e.ConfigSynonyms = synonyms("", d.Name, d.Default, l)
		}
		out = append(out, e)
	}
	return out
}

func configEntry(d config.Def, res config.Resolved, withDocs bool) kmsg.DescribeConfigsResponseResourceConfig {
	e := kmsg.NewDescribeConfigsResponseResourceConfig()
	e.Name = d.Name
	v := res.Value
	e.Value = &v
	e.Source = kmsg.ConfigSource(res.Source)
	e.IsDefault = res.Source == config.SourceDefault
	e.IsSensitive = d.Sensitive
	if e.IsSensitive {
		e.Value = nil
	}
	e.ConfigType = kmsg.ConfigType(d.Type)
	if withDocs && d.Doc != "" {
		doc := d.Doc
		e.Documentation = &doc
	}
	return e
}
