package controller

import (
	"errors"
	"fmt"

	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/metadata"
)

// ErrInvalidACL is CreateAcls' and DeleteAcls' INVALID_REQUEST for a
// binding or filter that cannot be stored or matched.
var ErrInvalidACL = errors.New("invalid ACL")

// CreateAcls stores bindings as AccessControlEntryRecords, as Kafka's
// AclControlManager: each binding is validated on its own (an invalid one
// fails alone), and one identical to a stored binding succeeds without a
// second copy. The valid ones are committed together.
func (c *Controller) CreateAcls(bindings []authz.Binding) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.images.Image()
	have := map[authz.Binding]bool{}
	for _, b := range img.ACLs {
		have[b] = true
	}
	out := make([]error, len(bindings))
	var recs []metadata.Record
	var idx []int
	for i, b := range bindings {
		if err := b.Validate(); err != nil {
			out[i] = fmt.Errorf("%w: %v", ErrInvalidACL, err)
			continue
		}
		if have[b] {
			continue
		}
		have[b] = true
		recs = append(recs, &metadata.AccessControlEntryRecord{ID: metadata.NewUUID(), Binding: b})
		idx = append(idx, i)
	}
	if len(recs) == 0 {
		return out
	}
	if _, err := c.commit(recs); err != nil {
		for _, i := range idx {
			out[i] = err
		}
	}
	return out
}

// DeleteAclsResult is one filter's outcome: the bindings it deleted, or
// why it failed.
type DeleteAclsResult struct {
	Deleted []authz.Binding
	Err     error
}

// DeleteAcls deletes every binding each filter matches. A binding several
// filters match is removed once and reported under each.
func (c *Controller) DeleteAcls(filters []authz.Filter) []DeleteAclsResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.images.Image()
	out := make([]DeleteAclsResult, len(filters))
	removed := map[metadata.UUID]bool{}
	var recs []metadata.Record
	for i, f := range filters {
		if err := f.Validate(); err != nil {
			out[i].Err = fmt.Errorf("%w: %v", ErrInvalidACL, err)
			continue
		}
		for _, id := range img.SortedACLIDs() {
			b := img.ACLs[id]
			if !f.Matches(b) {
				continue
			}
			out[i].Deleted = append(out[i].Deleted, b)
			if !removed[id] {
				removed[id] = true
				recs = append(recs, &metadata.RemoveAccessControlEntryRecord{ID: id})
			}
		}
	}
	if len(recs) == 0 {
		return out
	}
	if _, err := c.commit(recs); err != nil {
		for i := range out {
			if out[i].Err == nil {
				out[i] = DeleteAclsResult{Err: err}
			}
		}
	}
	return out
}
