package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// TestACLDeniedReadThenGranted: with the standard authorizer, franz-go
// over SASL_SSL (PLAIN user carol) reading a topic she has no ACL for gets
// TOPIC_AUTHORIZATION_FAILED; once an administrator (the PLAINTEXT
// listener's User:ANONYMOUS, a super user as the inter-broker principal
// must be) creates Read for her with CreateAcls, she reads the record.
func TestACLDeniedReadThenGranted(t *testing.T) {
	pki := newTestPKI(t)
	internal, external := saslBroker(t, pki, map[string]string{
		"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":           "User:ANONYMOUS",
	})
	ctx := ctxT(t)
	admin := newPlainClient(t, internal)
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "secret"); err != nil {
		t.Fatal(err)
	}
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("classified")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	consume := func() (string, error) {
		cl := newSASLClient(t, pki, external, plain.Auth{User: "carol", Pass: "carol-secret"}.AsMechanism(),
			kgo.ConsumeTopics("secret"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		for {
			fs := cl.PollFetches(pctx)
			var got string
			fs.EachRecord(func(r *kgo.Record) { got = string(r.Value) })
			if got != "" {
				return got, nil
			}
			for _, e := range fs.Errors() {
				if errors.Is(e.Err, kerr.TopicAuthorizationFailed) || pctx.Err() != nil {
					return "", e.Err
				}
			}
			if pctx.Err() != nil {
				return "", pctx.Err()
			}
		}
	}
	if got, err := consume(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("carol without ACLs: %q, %v; want TOPIC_AUTHORIZATION_FAILED", got, err)
	}
	// Carol cannot grant herself anything.
	carolAdm := kadm.NewClient(newSASLClient(t, pki, external, plain.Auth{User: "carol", Pass: "carol-secret"}.AsMechanism()))
	self := kadm.NewACLs().Allow("User:carol").Topics("secret").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	if res, err := carolAdm.CreateACLs(ctx, self); err != nil || len(res) != 1 || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("carol's own CreateAcls: %+v, %v; want CLUSTER_AUTHORIZATION_FAILED", res, err)
	}

	res, err := adm.CreateACLs(ctx, self)
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("CreateAcls: %+v, %v", res, err)
	}
	desc, err := adm.DescribeACLs(ctx, kadm.NewACLs().Topics("secret").ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny).Allow().AllowHosts())
	if err != nil || len(desc) != 1 || len(desc[0].Described) != 1 || desc[0].Described[0].Principal != "User:carol" {
		t.Fatalf("DescribeAcls: %+v, %v", desc, err)
	}
	if got, err := consume(); err != nil || got != "classified" {
		t.Fatalf("carol after the grant: %q, %v", got, err)
	}
}
