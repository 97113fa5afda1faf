package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// finalizedTV asks the node's ApiVersions (v3+, as clients do) for the
// transaction.version it supports (max) and the cluster finalized (-1 when
// not finalized).
func finalizedTV(ctx context.Context, t *testing.T, n *testNode) (supported, finalized int16) {
	t.Helper()
	cl := n.client()
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "strata-test", "1.0"
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	supported, finalized = -1, -1
	for _, f := range resp.SupportedFeatures {
		if f.Name == "transaction.version" {
			supported = f.MaxVersion
		}
	}
	if resp.FinalizedFeaturesEpoch < 0 {
		t.Fatalf("finalized features epoch %d", resp.FinalizedFeaturesEpoch)
	}
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" {
			finalized = f.MaxVersionLevel
		}
	}
	return supported, finalized
}

// producerEpochs is the epoch DescribeProducers reports for each producer
// of topic's partition 0 (the epoch of its last batch or marker there).
func producerEpochs(ctx context.Context, t *testing.T, n *testNode, topic string) map[int64]int16 {
	t.Helper()
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, n.client())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]int16{}
	for _, p := range resp.Topics[0].Partitions {
		for _, ap := range p.ActiveProducers {
			out[ap.ProducerID] = int16(ap.ProducerEpoch)
		}
	}
	return out
}

// TestTxnVersion2 (KIP-890 part 2): a new cluster finalizes
// transaction.version 2, so franz-go runs its transactions with version 2:
// EndTxn v5 bumps the producer's epoch at every commit and abort (the
// markers carry the bumped epoch: a partition's producer epoch is the
// number of transactions ended), Produce v12 adds the partitions without
// AddPartitionsToTxn, and read_committed readers see exactly the committed
// records. With transaction.version=1 the epoch stays where InitProducerId
// put it.
func TestTxnVersion2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		over      map[string]string
		finalized int16
		epoch     func(ended int) int16
	}{
		{"default", nil, 2, func(ended int) int16 { return int16(ended) }},
		{"tv1", map[string]string{"transaction.version": "1"}, 1, func(int) int16 { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := startNode(t, "", tc.over)
			ctx := ctxT(t)
			if sup, fin := finalizedTV(ctx, t, n); sup != 2 || fin != tc.finalized {
				t.Fatalf("transaction.version supported %d finalized %d, want 2 and %d", sup, fin, tc.finalized)
			}
			const topic = "tv2out"
			if _, err := n.admin().CreateTopic(ctx, 2, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			p := n.client(kgo.TransactionalID("tv2-"+tc.name), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
			var want []string
			const txns = 5
			for k := range txns {
				commit := k%2 == 0
				if err := p.BeginTransaction(); err != nil {
					t.Fatal(err)
				}
				for i := range 6 {
					v := fmt.Sprintf("%d-%d", k, i)
					if err := p.ProduceSync(ctx, kgo.StringRecord(v)).FirstErr(); err != nil {
						t.Fatalf("produce: %v", err)
					}
					if commit {
						want = append(want, v)
					}
				}
				if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
					t.Fatalf("end transaction %d (commit %v): %v", k, commit, err)
				}
			}
			got := consumeTopic(t, n, topic, true, len(want))
			sort.Strings(got)
			sort.Strings(want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("read_committed %v, want %v", got, want)
			}
			// The markers of the last transaction reach partition 0 once
			// its records are readable there; its producer epoch is then
			// that of the last marker.
			epochs := producerEpochs(ctx, t, n, topic)
			if len(epochs) != 1 {
				t.Fatalf("producers on %s-0: %v", topic, epochs)
			}
			for pid, e := range epochs {
				if e != tc.epoch(txns) {
					t.Fatalf("producer %d at epoch %d after %d transactions, want %d", pid, e, txns, tc.epoch(txns))
				}
			}
		})
	}
}

// TestUpdateFeaturesTransactionVersion: a cluster formatted with
// transaction.version=1 is upgraded to 2 with UpdateFeatures (what
// kafka-features.sh upgrade sends): ApiVersions then finalizes 2 and a new
// franz-go producer runs transaction version 2. A downgrade not asked for
// as one, an unknown feature and a level out of range are
// INVALID_UPDATE_VERSION and change nothing; a safe downgrade goes back
// to 1.
func TestUpdateFeaturesTransactionVersion(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", map[string]string{"transaction.version": "1"})
	ctx := ctxT(t)
	adm := n.admin()
	if _, fin := finalizedTV(ctx, t, n); fin != 1 {
		t.Fatalf("finalized transaction.version %d, want 1", fin)
	}
	update := func(u kadm.FeatureUpdate, validateOnly bool) error {
		t.Helper()
		res, err := adm.UpdateFeatures(ctx, validateOnly, u)
		if err != nil {
			t.Fatal(err)
		}
		return res.Error()
	}
	for _, bad := range []kadm.FeatureUpdate{
		{Feature: "transaction.version", MaxVersionLevel: 3, UpgradeType: 1},
		{Feature: "no.such.feature", MaxVersionLevel: 1, UpgradeType: 1},
		{Feature: "transaction.version", MaxVersionLevel: 0, UpgradeType: 1}, // a downgrade as an upgrade
	} {
		if err := update(bad, false); !errors.Is(err, kerr.InvalidUpdateVersion) {
			t.Fatalf("%+v: %v, want INVALID_UPDATE_VERSION", bad, err)
		}
	}
	if err := update(kadm.FeatureUpdate{Feature: "transaction.version", MaxVersionLevel: 2, UpgradeType: 1}, true); err != nil {
		t.Fatalf("validate-only upgrade: %v", err)
	}
	if _, fin := finalizedTV(ctx, t, n); fin != 1 {
		t.Fatalf("after refused and validate-only updates: finalized %d, want 1", fin)
	}
	if err := update(kadm.FeatureUpdate{Feature: "transaction.version", MaxVersionLevel: 2, UpgradeType: 1}, false); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if _, fin := finalizedTV(ctx, t, n); fin != 2 {
		t.Fatalf("after the upgrade: finalized %d, want 2", fin)
	}
	// A new producer now bumps its epoch at every commit.
	const topic = "upgraded"
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	p := n.client(kgo.TransactionalID("upgraded-producer"), kgo.DefaultProduceTopic(topic))
	for k := range 3 {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.ProduceSync(ctx, kgo.StringRecord(fmt.Sprint(k))).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	consumeTopic(t, n, topic, true, 3)
	for pid, e := range producerEpochs(ctx, t, n, topic) {
		if e != 3 {
			t.Fatalf("producer %d at epoch %d after 3 transactions on an upgraded cluster, want 3", pid, e)
		}
	}
	if err := update(kadm.FeatureUpdate{Feature: "transaction.version", MaxVersionLevel: 1, UpgradeType: 2}, false); err != nil {
		t.Fatalf("safe downgrade: %v", err)
	}
	if _, fin := finalizedTV(ctx, t, n); fin != 1 {
		t.Fatalf("after the downgrade: finalized %d, want 1", fin)
	}
}
