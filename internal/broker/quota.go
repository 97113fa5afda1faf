package broker

// Client quotas (internal/quota; "Client quotas" in docs/design-notes.md):
// every request is checked here after authorization and before it is
// served or relayed. Produce counts its bytes against producer_byte_rate
// on arrival; Fetch counts its response against consumer_byte_rate when
// it is answered (fetch.go); handler time counts against
// request_percentage; CreateTopics, CreatePartitions and DeleteTopics
// spend controller_mutation_rate. A client over a quota is answered at
// once with throttle_time_ms and its connection is muted for that long
// (KIP-219). With no quota of a type set, its check is one atomic load.

import (
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/quota"
)

// quotaOptions reads the quota windows from the broker's settings.
func quotaOptions(static *config.Broker, now func() time.Time) quota.Options {
	o := quota.Options{Now: now}
	if static != nil {
		o.Window = quota.Window{Samples: int(static.Int64("quota.window.num")), Size: time.Duration(static.Int64("quota.window.size.seconds")) * time.Second}
		o.ControllerWindow = quota.Window{Samples: int(static.Int64("controller.quota.window.num")),
			Size: time.Duration(static.Int64("controller.quota.window.size.seconds")) * time.Second}
	}
	return o
}

// refreshQuotas hands the current image's quotas to the manager when the
// image has changed since the last request.
func (b *Broker) refreshQuotas() {
	img := b.image()
	if img == nil || b.quotaImg.Load() == img {
		return
	}
	if prev := b.quotaImg.Swap(img); prev == nil || !sameQuotas(prev, img) {
		b.quotas.Set(img.ClientQuotas)
	}
}

// sameQuotas reports whether two images hold the same quotas (most image
// changes are not quota changes; the manager keeps its measurements
// either way, but need not be told).
func sameQuotas(a, b *metadata.Image) bool {
	if len(a.ClientQuotas) != len(b.ClientQuotas) {
		return false
	}
	if len(a.ClientQuotas) == 0 {
		return true
	}
	for e, va := range a.ClientQuotas {
		vb, ok := b.ClientQuotas[e]
		if !ok || len(va) != len(vb) {
			return false
		}
		for k, v := range va {
			if w, ok := vb[k]; !ok || w != v {
				return false
			}
		}
	}
	return true
}

// quotaExempt are the requests no client quota applies to: the
// handshake before authentication, the inter-broker APIs and replica
// fetches (Kafka exempts cluster actions).
func quotaExempt(r *request, h handler) bool {
	if h.interBroker || r.key == apiKeyApiVersions || r.key == 17 || r.key == 36 {
		return true
	}
	if f, ok := r.body.(*kmsg.FetchRequest); ok {
		return f.ReplicaID >= 0 || r.version >= 15 && f.ReplicaState.ID >= 0
	}
	return false
}

// relayedByBroker reports whether an admin request (one relayed to the
// active controller) was relayed by a broker (Options.Forward), which has
// already applied its client's quotas: the client id brokers use, from a
// super user when authorization is on. Without authorization the client
// id is trusted, as for internal topic creation: a client claiming it
// escapes the quotas of admin requests only.
func (b *Broker) relayedByBroker(r *request) bool {
	if r.clientID != InterBrokerClientID {
		return false
	}
	if a := b.authorizer(); a != nil {
		return a.IsSuperUser(r.conn.Principal().String())
	}
	return true
}

// quotaUser is the user a request's quotas are looked up by: its
// principal's name (ANONYMOUS when unauthenticated), as Kafka's.
func quotaUser(r *request) string { return r.conn.Principal().Name }

// quotaBefore applies the quotas known before the request is served:
// request_percentage (from the handler time already used), the produce
// byte rate and the controller mutation rate. It returns whether the
// handler time of this request is to be recorded.
func (b *Broker) quotaBefore(r *request, h handler) (timed bool) {
	b.refreshQuotas()
	m := b.quotas
	if quotaExempt(r, h) || h.toController && b.relayedByBroker(r) {
		return false
	}
	var throttle time.Duration
	if m.Active(quota.Request) {
		timed = true
		if t := m.RequestThrottle(quotaUser(r), r.clientID); t > 0 {
			b.observeThrottle(quota.Request, t)
			throttle = t
		}
	}
	switch r.key {
	case 0:
		if m.Active(quota.Produce) {
			if t := m.Record(quota.Produce, quotaUser(r), r.clientID, float64(len(r.raw.Data))); t > 0 {
				b.observeThrottle(quota.Produce, t)
				throttle = max(throttle, t)
			}
		}
	case 19, 20, 37:
		if m.Active(quota.ControllerMutation) {
			if t := b.mutationQuota(r); t > 0 {
				b.observeThrottle(quota.ControllerMutation, t)
				throttle = max(throttle, t)
			}
		}
	}
	if throttle > 0 {
		throttleResponse(r, throttle)
	}
	return timed
}

// quotaAfter records the handler time of a request quotaBefore timed.
func (b *Broker) quotaAfter(r *request, start time.Time) {
	b.quotas.RecordRequestTime(quotaUser(r), r.clientID, b.opts.Now().Sub(start))
}

func (b *Broker) observeThrottle(t quota.Type, d time.Duration) {
	if b.opts.OnThrottle != nil {
		b.opts.OnThrottle(t, d)
	}
}

// throttleMillis is d as a throttle_time_ms field.
func throttleMillis(d time.Duration) int32 {
	return int32(min(d.Milliseconds(), math.MaxInt32))
}

// throttleResponse mutes the connection for d and puts d in the
// response's throttle time (unless a longer one is there already).
func throttleResponse(r *request, d time.Duration) {
	r.throttle = max(r.throttle, d)
	r.conn.Mute(d)
	ms := throttleMillis(d)
	r.addPatch(func(resp kmsg.Response) {
		if tr, ok := resp.(kmsg.ThrottleResponse); ok {
			if cur, _ := tr.Throttle(); cur < ms {
				if st, ok := resp.(kmsg.SetThrottleResponse); ok {
					st.SetThrottle(ms)
				}
			}
		}
	})
}

// mutationQuota spends the request's partition creations and deletions
// from the controller mutation quota (KIP-599): for the versions that
// know THROTTLING_QUOTA_EXCEEDED (CreateTopics v6+, DeleteTopics v5+,
// CreatePartitions v3+) a topic arriving while the quota is exhausted is
// taken out of the request and answered with it; older versions are
// served whole and only throttled. validate_only spends nothing. It
// returns the throttle time.
//
// Kafka enforces this quota on the active controller, with the principal
// and client id the forwarding broker passes along; Strata's brokers
// relay admin requests as themselves, so each broker enforces it for the
// requests it receives.
func (b *Broker) mutationQuota(r *request) time.Duration {
	img := b.image()
	switch req := r.body.(type) {
	case *kmsg.CreateTopicsRequest:
		if req.ValidateOnly {
			return 0
		}
		q := b.quotas.Mutation(quotaUser(r), r.clientID, r.version >= 6)
		if q == nil {
			return 0
		}
		kept, refused := split(req.Topics, func(t kmsg.CreateTopicsRequestTopic) bool {
			n := float64(t.NumPartitions)
			if len(t.ReplicaAssignment) > 0 {
				n = float64(len(t.ReplicaAssignment))
			} else if n < 0 && b.opts.Static != nil {
				n = float64(b.opts.Static.Int64("num.partitions"))
			}
			return q.Record(max(n, 0)) == nil
		})
		if len(refused) > 0 {
			req.Topics = kept
			b.log.Info("controller mutation quota exceeded", "api", "CreateTopics", "user", quotaUser(r), "client", r.clientID, "refused", len(refused))
			r.addPatch(func(resp kmsg.Response) {
				cr := resp.(*kmsg.CreateTopicsResponse)
				for _, t := range refused {
					ct := kmsg.NewCreateTopicsResponseTopic()
					ct.Topic, ct.ErrorCode = t.Topic, kerr.ThrottlingQuotaExceeded.Code
					ct.ErrorMessage = strp(kerr.ThrottlingQuotaExceeded.Description)
					ct.NumPartitions, ct.ReplicationFactor = -1, -1
					cr.Topics = append(cr.Topics, ct)
				}
			})
		}
		return q.Throttle()
	case *kmsg.CreatePartitionsRequest:
		if req.ValidateOnly {
			return 0
		}
		q := b.quotas.Mutation(quotaUser(r), r.clientID, r.version >= 3)
		if q == nil {
			return 0
		}
		kept, refused := split(req.Topics, func(t kmsg.CreatePartitionsRequestTopic) bool {
			n := 0
			if tp := img.Topics[t.Topic]; tp != nil {
				n = int(t.Count) - len(tp.Partitions)
			}
			return q.Record(float64(max(n, 0))) == nil
		})
		if len(refused) > 0 {
			req.Topics = kept
			b.log.Info("controller mutation quota exceeded", "api", "CreatePartitions", "user", quotaUser(r), "client", r.clientID, "refused", len(refused))
			r.addPatch(func(resp kmsg.Response) {
				cr := resp.(*kmsg.CreatePartitionsResponse)
				for _, t := range refused {
					cr.Topics = append(cr.Topics, kmsg.CreatePartitionsResponseTopic{Topic: t.Topic, ErrorCode: kerr.ThrottlingQuotaExceeded.Code,
						ErrorMessage: strp(kerr.ThrottlingQuotaExceeded.Description)})
				}
			})
		}
		return q.Throttle()
	case *kmsg.DeleteTopicsRequest:
		q := b.quotas.Mutation(quotaUser(r), r.clientID, r.version >= 5)
		if q == nil {
			return 0
		}
		parts := func(name string, id [16]byte) float64 {
			t := img.Topics[name]
			if t == nil && id != [16]byte{} {
				t = img.TopicsByID[metadata.UUID(id)]
			}
			if t == nil {
				return 0
			}
			return float64(len(t.Partitions))
		}
		if r.version >= 6 {
			kept, refused := split(req.Topics, func(t kmsg.DeleteTopicsRequestTopic) bool {
				name := ""
				if t.Topic != nil {
					name = *t.Topic
				}
				return q.Record(parts(name, t.TopicID)) == nil
			})
			if len(refused) > 0 {
				req.Topics = kept
				r.addPatch(func(resp kmsg.Response) {
					dr := resp.(*kmsg.DeleteTopicsResponse)
					for _, t := range refused {
						dr.Topics = append(dr.Topics, kmsg.DeleteTopicsResponseTopic{Topic: t.Topic, TopicID: t.TopicID,
							ErrorCode: kerr.ThrottlingQuotaExceeded.Code, ErrorMessage: strp(kerr.ThrottlingQuotaExceeded.Description)})
					}
				})
			}
		} else {
			kept, refused := split(req.TopicNames, func(n string) bool { return q.Record(parts(n, [16]byte{})) == nil })
			if len(refused) > 0 {
				req.TopicNames = kept
				r.addPatch(func(resp kmsg.Response) {
					dr := resp.(*kmsg.DeleteTopicsResponse)
					for _, n := range refused {
						dr.Topics = append(dr.Topics, kmsg.DeleteTopicsResponseTopic{Topic: kmsg.StringPtr(n),
							ErrorCode: kerr.ThrottlingQuotaExceeded.Code, ErrorMessage: strp(kerr.ThrottlingQuotaExceeded.Description)})
					}
				})
			}
		}
		return q.Throttle()
	}
	return 0
}

// fetchQuotaMaxBytes bounds a consumer fetch by what its quota allows in
// one measurement window, as Kafka's getMaxValueInQuotaWindow does, so a
// single response cannot throttle its client for longer than that.
func (b *Broker) fetchQuotaMaxBytes(r *request, maxBytes int32) int32 {
	q, _, ok := b.quotas.Lookup(quota.Fetch, quotaUser(r), r.clientID)
	if !ok {
		return maxBytes
	}
	w := b.quotas.Window()
	limit := q * float64(w.Samples-1) * w.Size.Seconds()
	if limit < float64(maxBytes) {
		return int32(max(limit, 1))
	}
	return maxBytes
}

// fetchQuota counts a consumer fetch's response against its
// consumer_byte_rate. Within the quota, and without a request quota
// throttle, it returns nil and the response goes out as encoded.
// Otherwise, as Kafka does, the bytes are taken back out of the rate and
// the fetch is answered without records: the returned response, carrying
// the session id and the throttle time (the longer of the byte rate's and
// the request quota's); the connection is muted for as long.
func (b *Broker) fetchQuota(r *request, resp *kmsg.FetchResponse, chunks []network.Chunk) *kmsg.FetchResponse {
	var t time.Duration
	if b.quotas.Active(quota.Fetch) {
		var size int64
		for _, c := range chunks {
			size += c.Size()
		}
		user := quotaUser(r)
		t = b.quotas.Record(quota.Fetch, user, r.clientID, float64(size))
		if t > 0 || r.throttle > 0 {
			// Answered without records: they do not count.
			b.quotas.Unrecord(quota.Fetch, user, r.clientID, float64(size))
		}
		if t > 0 {
			b.observeThrottle(quota.Fetch, t)
			r.conn.Mute(t)
		}
	}
	if t <= 0 && r.throttle <= 0 {
		return nil
	}
	out := kmsg.NewPtrFetchResponse()
	out.SessionID = resp.SessionID
	out.ThrottleMillis = max(resp.ThrottleMillis, throttleMillis(t))
	return out
}
