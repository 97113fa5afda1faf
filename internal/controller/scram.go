package controller

import (
	"errors"
	"fmt"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/security"
)

// Errors of AlterUserScramCredentials and DescribeUserScramCredentials.
var (
	ErrUnacceptableCredential   = errors.New("unacceptable credential")
	ErrUnsupportedSASLMechanism = errors.New("unsupported SASL mechanism")
	ErrResourceNotFound         = errors.New("resource not found")
	ErrDuplicateResource        = errors.New("duplicate resource")
)

// ScramUpsertion sets a user's SCRAM credential from a salted password
// (AlterUserScramCredentials carries the salted password, never the
// password; the controller keeps only StoredKey and ServerKey).
type ScramUpsertion struct {
	Name           string
	Mechanism      string
	Iterations     int32
	Salt           []byte
	SaltedPassword []byte
}

// ScramDeletion deletes a user's credential for one mechanism.
type ScramDeletion struct {
	Name      string
	Mechanism string
}

// AlterUserScramCredentials applies deletions and upsertions and returns
// the outcome for each user named, as Kafka's ScramControlManager: every
// alteration of a user succeeds or none does; a user named twice for one
// mechanism gets DUPLICATE_RESOURCE.
func (c *Controller) AlterUserScramCredentials(dels []ScramDeletion, ups []ScramUpsertion) map[string]error {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.images.Image()
	out := map[string]error{}
	var order []string
	seen := map[metadata.ScramKey]int{}
	note := func(name, mech string) {
		if _, ok := out[name]; !ok {
			out[name] = nil
			order = append(order, name)
		}
		seen[metadata.ScramKey{Name: name, Mechanism: mech}]++
	}
	for _, d := range dels {
		note(d.Name, d.Mechanism)
	}
	for _, u := range ups {
		note(u.Name, u.Mechanism)
	}
	fail := func(name string, err error) {
		if out[name] == nil {
			out[name] = err
		}
	}
	recs := map[string][]metadata.Record{}
	for _, d := range dels {
		switch {
		case d.Name == "":
			fail(d.Name, fmt.Errorf("%w: username must not be empty", ErrUnacceptableCredential))
		case security.ScramHash(d.Mechanism) == nil:
			fail(d.Name, fmt.Errorf("%w: unknown SCRAM mechanism", ErrUnsupportedSASLMechanism))
		case seen[metadata.ScramKey{Name: d.Name, Mechanism: d.Mechanism}] > 1:
			fail(d.Name, fmt.Errorf("%w: a user credential cannot be altered twice in the same request", ErrDuplicateResource))
		default:
			if _, ok := img.ScramCredentials[metadata.ScramKey{Name: d.Name, Mechanism: d.Mechanism}]; !ok {
				fail(d.Name, fmt.Errorf("%w: attempt to delete a user credential that does not exist", ErrResourceNotFound))
				continue
			}
			recs[d.Name] = append(recs[d.Name], &metadata.RemoveUserScramCredentialRecord{Name: d.Name, Mechanism: d.Mechanism})
		}
	}
	for _, u := range ups {
		h := security.ScramHash(u.Mechanism)
		switch {
		case u.Name == "":
			fail(u.Name, fmt.Errorf("%w: username must not be empty", ErrUnacceptableCredential))
		case h == nil:
			fail(u.Name, fmt.Errorf("%w: unknown SCRAM mechanism", ErrUnsupportedSASLMechanism))
		case seen[metadata.ScramKey{Name: u.Name, Mechanism: u.Mechanism}] > 1:
			fail(u.Name, fmt.Errorf("%w: a user credential cannot be altered twice in the same request", ErrDuplicateResource))
		case u.Iterations < security.ScramMinIterations:
			fail(u.Name, fmt.Errorf("%w: too few iterations (at least %d)", ErrUnacceptableCredential, security.ScramMinIterations))
		case u.Iterations > security.ScramMaxIterations:
			fail(u.Name, fmt.Errorf("%w: too many iterations (at most %d)", ErrUnacceptableCredential, security.ScramMaxIterations))
		case len(u.Salt) == 0 || len(u.SaltedPassword) != h().Size():
			fail(u.Name, fmt.Errorf("%w: a salt and a salted password of %d bytes are required", ErrUnacceptableCredential, h().Size()))
		default:
			cred := security.CredentialFromSalted(h, u.SaltedPassword, u.Salt, int(u.Iterations))
			recs[u.Name] = append(recs[u.Name], &metadata.UserScramCredentialRecord{Name: u.Name, Mechanism: u.Mechanism,
				Salt: cred.Salt, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey, Iterations: u.Iterations})
		}
	}
	var all []metadata.Record
	var changed []string
	for _, name := range order {
		if out[name] == nil && len(recs[name]) > 0 {
			all = append(all, recs[name]...)
			changed = append(changed, name)
		}
	}
	if len(all) == 0 {
		return out
	}
	if _, err := c.commit(all); err != nil {
		for _, name := range changed {
			out[name] = err
		}
	}
	return out
}
