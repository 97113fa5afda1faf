//go:build !kfake

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/server"
)

type quotaRow struct {
	User     *string            `json:"user"`
	ClientID *string            `json:"client_id"`
	Default  []string           `json:"default"`
	Entity   string             `json:"entity"`
	Quotas   map[string]float64 `json:"quotas"`
}

func listQuotas(t *testing.T, addr string, args ...string) []quotaRow {
	t.Helper()
	var rows []quotaRow
	out := mustRun(t, addr, "", append([]string{"quota", "list", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("quota list --json: %v\n%s", err, out)
	}
	return rows
}

// TestQuotaCommands: `strata quota set|list|delete` against a broker:
// users, client ids, defaults, dry runs, the broker's refusals.
func TestQuotaCommands(t *testing.T) {
	addr := startBroker(t)
	out := mustRun(t, addr, "", "quota", "set", "--user", "alice", "--producer-byte-rate", "1048576")
	if !strings.Contains(out, "user=alice") || !strings.Contains(out, "producer_byte_rate") || !strings.Contains(out, "1048576") || !strings.Contains(out, "set") {
		t.Fatalf("quota set:\n%s", out)
	}
	mustRun(t, addr, "", "quota", "set", "--user", "alice", "--default", "client-id", "--request-percentage", "50.5")
	mustRun(t, addr, "", "quota", "set", "--default", "client-id", "--consumer-byte-rate", "2048", "--dry-run")
	if rows := listQuotas(t, addr); len(rows) != 2 {
		t.Fatalf("a dry run stored a quota: %+v", rows)
	}
	mustRun(t, addr, "", "quota", "set", "--default", "client-id", "--consumer-byte-rate", "2048", "--controller-mutation-rate", "5")

	rows := listQuotas(t, addr)
	if len(rows) != 3 {
		t.Fatalf("quota list: %+v", rows)
	}
	byEntity := map[string]quotaRow{}
	for _, r := range rows {
		byEntity[r.Entity] = r
	}
	if r := byEntity["user=alice"]; r.User == nil || *r.User != "alice" || r.Quotas["producer_byte_rate"] != 1048576 {
		t.Fatalf("alice: %+v", r)
	}
	if r := byEntity["user=alice,client-id=<default>"]; r.Quotas["request_percentage"] != 50.5 || len(r.Default) != 1 || r.Default[0] != "client-id" {
		t.Fatalf("alice's default client: %+v", r)
	}
	if r := byEntity["client-id=<default>"]; r.Quotas["consumer_byte_rate"] != 2048 || r.Quotas["controller_mutation_rate"] != 5 {
		t.Fatalf("default client: %+v", r)
	}
	// Filters: a user's entities, strictly its own, any client id.
	if rows := listQuotas(t, addr, "--user", "alice"); len(rows) != 2 {
		t.Fatalf("--user alice: %+v", rows)
	}
	if rows := listQuotas(t, addr, "--user", "alice", "--strict"); len(rows) != 1 || rows[0].Entity != "user=alice" {
		t.Fatalf("--user alice --strict: %+v", rows)
	}
	if rows := listQuotas(t, addr, "--any-client-id"); len(rows) != 2 {
		t.Fatalf("--any-client-id: %+v", rows)
	}
	table := mustRun(t, addr, "", "quota", "list")
	if !strings.Contains(table, "ENTITY") || !strings.Contains(table, "client-id=<default>") || !strings.Contains(table, "controller_mutation_rate") {
		t.Fatalf("quota list table:\n%s", table)
	}

	// The broker's refusals and the command's own.
	if r := run(t, addr, "", "quota", "set", "--user", "bob", "--producer-byte-rate", "1.5"); r.err == nil || !strings.Contains(r.err.Error(), "INVALID_REQUEST") {
		t.Fatalf("a fractional byte rate: %v", r.err)
	}
	if r := run(t, addr, "", "quota", "set", "--producer-byte-rate", "1"); r.err == nil || !strings.Contains(r.err.Error(), "name the entity") {
		t.Fatalf("no entity: %v", r.err)
	}
	if r := run(t, addr, "", "quota", "set", "--user", "bob"); r.err == nil || !strings.Contains(r.err.Error(), "at least one") {
		t.Fatalf("no key: %v", r.err)
	}
	if r := run(t, addr, "", "quota", "set", "--user", "bob", "--default", "user", "--producer-byte-rate", "1"); r.err == nil {
		t.Fatal("--user and --default user together were accepted")
	}
	if r := run(t, addr, "", "quota", "delete", "--user", "alice", "--key", "nope"); r.err == nil || !strings.Contains(r.err.Error(), "INVALID_REQUEST") {
		t.Fatalf("deleting an unknown key: %v", r.err)
	}

	// Delete one key, then every key of an entity.
	mustRun(t, addr, "", "quota", "delete", "--user", "alice", "--key", "producer_byte_rate")
	out = mustRun(t, addr, "", "quota", "delete", "--default", "client-id")
	if !strings.Contains(out, "consumer_byte_rate") || !strings.Contains(out, "controller_mutation_rate") || strings.Contains(out, "producer_byte_rate") {
		t.Fatalf("delete of every key deleted others than the entity's:\n%s", out)
	}
	if r := run(t, addr, "", "quota", "delete", "--default", "client-id"); r.err == nil || !strings.Contains(r.err.Error(), "no quota") {
		t.Fatalf("deleting an entity without quotas: %v", r.err)
	}
	rows = listQuotas(t, addr)
	if len(rows) != 1 || rows[0].Entity != "user=alice,client-id=<default>" {
		t.Fatalf("after deletes: %+v", rows)
	}
}

// TestQuotaCommandsOverSASL: on quota commands --user names the quota's
// entity, and the command's own SASL user comes from STRATA_USER (or a
// profile).
func TestQuotaCommandsOverSASL(t *testing.T) {
	cfg, err := config.LoadBroker("", nil, map[string]string{
		"data.dir":                       t.TempDir(),
		"listeners":                      "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
		"listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT",
		"inter.broker.listener.name":     "INTERNAL",
		"listener.name.external.plain.sasl.jaas.config": `org.apache.kafka.common.security.plain.PlainLoginModule required user_bob="bob-pw";`,
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
	a, _ := srv.ListenerAddr("EXTERNAL")
	env := map[string]string{"STRATA_BROKERS": a.String(), "STRATA_SASL_MECHANISM": "PLAIN", "STRATA_USER": "bob", "STRATA_PASSWORD": "bob-pw"}
	var out, errOut bytes.Buffer
	root := &cobra.Command{Use: "strata", SilenceUsage: true, SilenceErrors: true}
	addCommands(root, &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}, func(k string) string { return env[k] })
	root.SetArgs([]string{"quota", "set", "--user", "alice", "--client-id", "app", "--producer-byte-rate", "1024", "--json"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("quota set over SASL as bob: %v\n%s", err, errOut.String())
	}
	var res struct {
		Entity string `json:"entity"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Entity != "user=alice,client-id=app" || res.Status != "set" {
		t.Fatalf("quota set: %v %s", err, out.String())
	}
}
