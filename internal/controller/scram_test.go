package controller

import (
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/security"
)

func TestAlterUserScramCredentials(t *testing.T) {
	dir := t.TempDir()
	l, c := openTest(t, dir)
	if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
		t.Fatal(err)
	}
	salted := security.SaltPassword(sha256.New, "pw", []byte("salt"), 4096)
	up := func(name string, iter int32) ScramUpsertion {
		return ScramUpsertion{Name: name, Mechanism: security.MechScramSHA256, Iterations: iter, Salt: []byte("salt"), SaltedPassword: salted}
	}
	res := c.AlterUserScramCredentials(nil, []ScramUpsertion{up("alice", 4096), up("bob", 100), up("", 4096)})
	if res["alice"] != nil || !errors.Is(res["bob"], ErrUnacceptableCredential) || !errors.Is(res[""], ErrUnacceptableCredential) {
		t.Fatalf("results %v", res)
	}
	key := metadata.ScramKey{Name: "alice", Mechanism: security.MechScramSHA256}
	cred, ok := c.Image().ScramCredentials[key]
	want := security.CredentialFromSalted(sha256.New, salted, []byte("salt"), 4096)
	if !ok || string(cred.StoredKey) != string(want.StoredKey) || string(cred.ServerKey) != string(want.ServerKey) || cred.Iterations != 4096 {
		t.Fatalf("stored %+v", cred)
	}
	if _, ok := c.Image().ScramCredentials[metadata.ScramKey{Name: "bob", Mechanism: security.MechScramSHA256}]; ok {
		t.Fatal("a refused credential was stored")
	}
	// One user's alterations succeed or fail together; a duplicate
	// (user, mechanism) is DUPLICATE_RESOURCE; deleting what is not there
	// is RESOURCE_NOT_FOUND; an unknown mechanism is refused.
	res = c.AlterUserScramCredentials(
		[]ScramDeletion{{Name: "alice", Mechanism: security.MechScramSHA256}, {Name: "carol", Mechanism: security.MechScramSHA512}, {Name: "dave", Mechanism: "SCRAM-MD5"}},
		[]ScramUpsertion{up("alice", 4096)})
	if !errors.Is(res["alice"], ErrDuplicateResource) || !errors.Is(res["carol"], ErrResourceNotFound) || !errors.Is(res["dave"], ErrUnsupportedSASLMechanism) {
		t.Fatalf("results %v", res)
	}
	if _, ok := c.Image().ScramCredentials[key]; !ok {
		t.Fatal("alice's credential was deleted by a refused request")
	}
	// The credential survives a restart (it is a record of the log).
	l.Close()
	l, c = openTest(t, dir)
	defer l.Close()
	if _, ok := c.Image().ScramCredentials[key]; !ok {
		t.Fatal("credential lost on restart")
	}
	if res := c.AlterUserScramCredentials([]ScramDeletion{{Name: "alice", Mechanism: security.MechScramSHA256}}, nil); res["alice"] != nil {
		t.Fatalf("delete: %v", res)
	}
	if len(c.Image().ScramCredentials) != 0 {
		t.Fatalf("after delete: %+v", c.Image().ScramCredentials)
	}
}
