package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// TestClusterACLs: three nodes with the standard authorizer whose brokers
// reach each other on a SASL_PLAINTEXT listener as User:broker, which is
// no entry of super.users: registrations, heartbeats, replica fetches and
// relayed admin requests pass because the inter-broker SASL user is a
// super user implicitly. The administrator (super.users) creates an
// rf=3 topic and, through a broker that is not the active controller, an
// ACL; carol is refused before it on every broker and reads after it,
// and may still not write.
func TestClusterACLs(t *testing.T) {
	_, clients := startListenerCluster(t, 3,
		"--set", "listener.security.protocol.map=BROKER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
		"--set", "sasl.mechanism.inter.broker.protocol=PLAIN",
		"--set", `listener.name.broker.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="broker-secret" user_broker="broker-secret";`,
		"--set", `listener.name.client.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" user_carol="carol-secret";`,
		"--set", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"--set", "super.users=User:admin",
	)
	newClient := func(user, pass string, opts ...kgo.Opt) *kgo.Client {
		return seededClient(t, clients, append([]kgo.Opt{kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism())}, opts...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	admin := newClient("admin", "admin-secret")
	adm := kadm.NewClient(admin)
	waitFor(t, "three brokers in the metadata", 60*time.Second, func() bool {
		m, err := adm.Metadata(ctx)
		return err == nil && len(m.Brokers) == 3
	})
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("3")}, "shared"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	// acks=all with min.insync.replicas=3: the followers' fetches (as
	// User:broker) must be allowed.
	prod := newClient("admin", "admin-secret", kgo.RequiredAcks(kgo.AllISRAcks()))
	waitFor(t, "an acks=all write to the rf=3 topic", 30*time.Second, func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		return prod.ProduceSync(pctx, &kgo.Record{Topic: "shared", Value: []byte("for carol")}).FirstErr() == nil
	})

	carol := newClient("carol", "carol-secret")
	metadataOn := func(id int32) int16 {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("shared")}}
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		resp, err := req.RequestWith(rctx, carol.Broker(int(id)))
		if err != nil || len(resp.Topics) != 1 {
			return -1
		}
		return resp.Topics[0].ErrorCode
	}
	waitFor(t, "carol's client to know the brokers", 30*time.Second, func() bool {
		m, err := kadm.NewClient(carol).BrokerMetadata(ctx)
		return err == nil && len(m.Brokers) == 3
	})
	for id := int32(1); id <= 3; id++ {
		if code := metadataOn(id); code != kerr.TopicAuthorizationFailed.Code {
			t.Fatalf("node %d before the ACL: %v, want TOPIC_AUTHORIZATION_FAILED", id, kerr.ErrorForCode(code))
		}
	}
	m, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	relay := int32(1)
	if relay == m.Controller {
		relay = 2
	}
	create := kmsg.NewPtrCreateACLsRequest()
	create.Creations = []kmsg.CreateACLsRequestCreation{{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "shared",
		ResourcePatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:carol", Host: "*",
		Operation: kmsg.ACLOperationRead, PermissionType: kmsg.ACLPermissionTypeAllow}}
	resp, err := create.RequestWith(ctx, admin.Broker(int(relay)))
	if err != nil || len(resp.Results) != 1 || resp.Results[0].ErrorCode != 0 {
		t.Fatalf("CreateAcls through node %d (controller %d): %+v, %v", relay, m.Controller, resp, err)
	}
	for id := int32(1); id <= 3; id++ {
		waitFor(t, fmt.Sprintf("the ACL on node %d", id), 20*time.Second, func() bool { return metadataOn(id) == 0 })
	}
	cons := newClient("carol", "carol-secret", kgo.ConsumeTopics("shared"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got string
	for got == "" {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("carol's fetch after the grant: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = string(r.Value) })
	}
	if got != "for carol" {
		t.Fatalf("consumed %q", got)
	}
	// Carol may read, not write: an idempotent producer is refused its
	// producer id (no IDEMPOTENT_WRITE on the cluster, no WRITE on any
	// topic: CLUSTER_AUTHORIZATION_FAILED, as Kafka), a plain one each
	// write.
	if err := carol.ProduceSync(ctx, &kgo.Record{Topic: "shared", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("carol's idempotent produce: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
	plainProd := newClient("carol", "carol-secret", kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()))
	if err := plainProd.ProduceSync(ctx, &kgo.Record{Topic: "shared", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("carol's produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}
