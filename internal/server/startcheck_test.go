package server

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/config"
)

// TestStartBusyPortLeavesDataDirUntouched: a start that finds one of its
// ports taken (the client listener, the HTTP listener, the controller
// listener) fails naming the address and the key, before the data dir is
// created or formatted.
func TestStartBusyPortLeavesDataDirUntouched(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	for _, tc := range []struct {
		name string
		over map[string]string
		key  string
	}{
		{"client listener", map[string]string{"listen": addr}, "listen (--listen)"},
		{"listeners", map[string]string{"listeners": "PLAINTEXT://" + addr}, "listeners"},
		{"http", map[string]string{"http.listen": addr}, "http.listen"},
		{"controller", map[string]string{"controller.quorum.voters": "1@" + addr + ",2@" + "127.0.0.1:1"}, "controller.quorum.voters"},
		{"controller.listen", map[string]string{"controller.quorum.voters": "1@" + "127.0.0.1:1" + ",2@" + "127.0.0.1:1", "controller.listen": addr}, "controller.listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			over := map[string]string{"listen": "127.0.0.1:0", "data.dir": dir, "http.listen": "127.0.0.1:0"}
			if _, ok := tc.over["listeners"]; ok {
				delete(over, "listen")
			}
			for k, v := range tc.over {
				over[k] = v
			}
			cfg, err := config.LoadBroker("", nil, over)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := Start(cfg, testLogger(t))
			if err == nil {
				srv.closeStorage(-1)
				t.Fatalf("started with %s busy", addr)
			}
			if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q: want the address %s and the key %s", err, addr, tc.key)
			}
			if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("data dir after a failed start: %v, want it not created", serr)
			}
		})
	}
}

// TestStartBusyPortKeepsCleanShutdown: a failed start on a busy port
// leaves an existing data dir as it was, the record of the last clean
// shutdown included.
func TestStartBusyPortKeepsCleanShutdown(t *testing.T) {
	n := startNode(t, "", nil)
	dir := n.dir
	n.stop()
	before := listDir(t, dir)
	if _, ok := before[cleanShutdownFile]; !ok {
		t.Fatalf("no %s after a clean stop: %v", cleanShutdownFile, before)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg, err := config.LoadBroker("", nil, map[string]string{"listen": busy.Addr().String(), "data.dir": dir, "http.listen": "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if srv, err := Start(cfg, testLogger(t)); err == nil {
		srv.closeStorage(-1)
		t.Fatal("started on a busy port")
	}
	after := listDir(t, dir)
	for name, mod := range before {
		if after[name] != mod {
			t.Errorf("%s changed by a failed start (%v -> %v)", name, mod, after[name])
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s created by a failed start", name)
		}
	}
}

// listDir maps the names in dir to their modification times.
func listDir(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.ModTime()
	}
	return out
}

func TestValidateClusterID(t *testing.T) {
	for id, ok := range map[string]bool{
		"":                       true,
		"MkU3OEVBNTcwNTJENDM2Qk": true, // Kafka's quickstart id
		"fetchRulesTestCluster0": true,
		derivedClusterID(map[int32]string{1: "a:1", 2: "b:2"}): true,
		"someothercluster":                     false, // too short
		"MkU3OEVBNTcwNTJENDM2QkX":              false, // 23
		"MkU3OEVBNTcwNTJENDM2Q+":               false, // not URL-safe base64
		"MkU3OEVBNTcwNTJENDM2Q=":               false,
		"5a3c2d8e-1f4b-4c6a-9e0d-7b8a9c0d1e2f": false, // a UUID, but not Kafka's text form
	} {
		err := ValidateClusterID(id)
		if (err == nil) != ok {
			t.Errorf("ValidateClusterID(%q) = %v, want ok=%v", id, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "22 characters") {
			t.Errorf("ValidateClusterID(%q) = %v: want it to say what a valid id looks like", id, err)
		}
	}
	// The configuration refuses it, with the other invalid keys.
	_, err := config.LoadBroker("", nil, map[string]string{"cluster.id": "my-cluster", "node.id": "0"})
	if err == nil || !strings.Contains(err.Error(), "cluster.id") || !strings.Contains(err.Error(), "22 characters") || !strings.Contains(err.Error(), "node.id") {
		t.Errorf("LoadBroker with cluster.id=my-cluster and node.id=0: %v, want both reported", err)
	}
}

// TestMetaPropertiesFresh: a data dir is fresh from its formatting until
// its first registration (markRegistered), across restarts; a dir formatted
// before the marker existed is not.
func TestMetaPropertiesFresh(t *testing.T) {
	dir := t.TempDir()
	id, fresh, err := checkMetaProperties(dir, 1, "")
	if err != nil || !fresh || ValidateClusterID(id) != nil {
		t.Fatalf("first start: %q %v %v", id, fresh, err)
	}
	if id2, fresh, err := checkMetaProperties(dir, 1, ""); err != nil || !fresh || id2 != id {
		t.Fatalf("second start before registering: %q %v %v, want %q, fresh", id2, fresh, err, id)
	}
	if err := markRegistered(dir); err != nil {
		t.Fatal(err)
	}
	if _, fresh, err := checkMetaProperties(dir, 1, ""); err != nil || fresh {
		t.Fatalf("after registering: fresh %v, %v", fresh, err)
	}
	if err := markRegistered(dir); err != nil {
		t.Errorf("markRegistered twice: %v", err)
	}
	if _, _, err := checkMetaProperties(dir, 2, ""); err == nil || !strings.Contains(err.Error(), "node.id=1") {
		t.Errorf("another node id: %v", err)
	}
}

// TestStartSameDataDirTwice: a second node on a running node's data dir
// (and so, usually, its ports) says the data dir is in use.
func TestStartSameDataDirTwice(t *testing.T) {
	n := startNode(t, "", nil)
	cfg, err := config.LoadBroker("", nil, map[string]string{"listen": n.srv.Addr().String(), "data.dir": n.dir, "http.listen": ""})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(cfg, testLogger(t))
	if err == nil {
		srv.closeStorage(-1)
		t.Fatal("a second node started on the same data dir")
	}
	if !strings.Contains(err.Error(), "in use by another strata process") || !strings.Contains(err.Error(), n.srv.Addr().String()) {
		t.Errorf("error %q: want the data dir in use, and the port", err)
	}
}

// TestDirectoryID: meta.properties gets a directory.id once (KIP-858),
// kept across starts; a malformed one is refused.
func TestDirectoryID(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := checkMetaProperties(dir, 1, ""); err != nil {
		t.Fatal(err)
	}
	id, err := ensureDirectoryID(dir)
	if err != nil || id.IsZero() {
		t.Fatalf("first start: %v %v", id, err)
	}
	if id2, err := ensureDirectoryID(dir); err != nil || id2 != id {
		t.Fatalf("second start: %v %v, want %v", id2, err, id)
	}
	body, err := os.ReadFile(filepath.Join(dir, "meta.properties"))
	if err != nil || !strings.Contains(string(body), "directory.id="+id.String()+"\n") || !strings.Contains(string(body), "node.id=1\n") {
		t.Fatalf("meta.properties:\n%s (%v)", body, err)
	}
	if _, _, err := checkMetaProperties(dir, 1, ""); err != nil {
		t.Fatalf("checkMetaProperties with a directory.id: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta.properties"), []byte("version=1\ncluster.id=x\nnode.id=1\ndirectory.id=nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureDirectoryID(dir); err == nil || !strings.Contains(err.Error(), "directory.id") {
		t.Fatalf("a malformed directory.id: %v", err)
	}
}
