//go:build !kfake

package cli

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/server"
)

// startBroker starts an in-process single-node Strata broker.
func startBroker(t *testing.T) string {
	t.Helper()
	cfg, err := config.LoadBroker("", nil, map[string]string{"listen": "127.0.0.1:0", "data.dir": t.TempDir(), "group.initial.rebalance.delay.ms": "0", "http.listen": ""})
	if err != nil {
		t.Fatalf("broker config: %v", err)
	}
	srv, err := server.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("starting strata: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv.Addr().String()
}

const testBrokerValidatesConfigs = true

// testBrokerName names the golden files directory of startBroker's output.
const testBrokerName = "strata"
