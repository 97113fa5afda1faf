//go:build !kfake

package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/server"
)

// TestACLCommands: `strata acl create|list|delete` as a super user on the
// internal listener; the ACLs take effect for a SASL user on the other
// listener (a topic it may not Describe is not listed until the ACL
// exists, and is hidden again after the delete).
func TestACLCommands(t *testing.T) {
	cfg, err := config.LoadBroker("", nil, map[string]string{
		"data.dir":                       t.TempDir(),
		"listeners":                      "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
		"listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT",
		"inter.broker.listener.name":     "INTERNAL",
		"listener.name.external.plain.sasl.jaas.config": `org.apache.kafka.common.security.plain.PlainLoginModule required user_bob="bob-pw";`,
		"authorizer.class.name":                         "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":                                   "User:ANONYMOUS",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	addr := func(name string) string { a, _ := srv.ListenerAddr(name); return a.String() }
	internal, external := addr("INTERNAL"), addr("EXTERNAL")
	bob := []string{"--sasl-mechanism", "PLAIN", "--user", "bob", "--password", "bob-pw"}

	mustRun(t, internal, "", "topic", "create", "orders")
	if out := mustRun(t, external, "", append([]string{"topic", "list"}, bob...)...); strings.Contains(out, "orders") {
		t.Fatalf("bob without ACLs sees orders:\n%s", out)
	}
	out := mustRun(t, internal, "", "acl", "create", "--principal", "User:bob", "--operation", "describe", "--operation", "read", "--topic", "orders")
	if strings.Count(out, "created") != 2 {
		t.Fatalf("acl create:\n%s", out)
	}
	mustRun(t, internal, "", "acl", "create", "--principal", "User:bob", "--operation", "read", "--group", "bob-", "--pattern", "prefixed")
	if r := run(t, internal, "", "acl", "create", "--principal", "bob", "--operation", "read", "--topic", "x"); r.err == nil {
		t.Fatal("a principal without a type was accepted")
	}
	if r := run(t, external, "", append([]string{"acl", "create", "--principal", "User:bob", "--operation", "all", "--cluster"}, bob...)...); r.err == nil ||
		!strings.Contains(r.err.Error(), "CLUSTER_AUTHORIZATION_FAILED") {
		t.Fatalf("bob granting himself the cluster: %v", r.err)
	}
	if out := mustRun(t, external, "", append([]string{"topic", "list"}, bob...)...); !strings.Contains(out, "orders") {
		t.Fatalf("bob with Describe does not see orders:\n%s", out)
	}

	var rows []aclRow
	if err := json.Unmarshal([]byte(mustRun(t, internal, "", "acl", "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("acl list: %+v", rows)
	}
	if err := json.Unmarshal([]byte(mustRun(t, internal, "", "acl", "list", "--group", "bob-app", "--pattern", "match", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Resource != "bob-" || rows[0].Pattern != "prefixed" || rows[0].Operation != "read" {
		t.Fatalf("acl list --group bob-app --pattern match: %+v", rows)
	}
	if r := run(t, internal, "", "acl", "delete"); r.err == nil {
		t.Fatal("acl delete without a selection was accepted")
	}
	out = mustRun(t, internal, "", "acl", "delete", "--topic", "orders")
	if strings.Count(out, "deleted") != 2 {
		t.Fatalf("acl delete:\n%s", out)
	}
	if out := mustRun(t, external, "", append([]string{"topic", "list"}, bob...)...); strings.Contains(out, "orders") {
		t.Fatalf("bob still sees orders after the delete:\n%s", out)
	}
	if err := json.Unmarshal([]byte(mustRun(t, internal, "", "acl", "list", "--json")), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("acl list after delete: %+v, %v", rows, err)
	}
}
