package metadata

import (
	"sort"

	"github.com/stratalog/strata/internal/authz"
)

// ACLs live in the metadata log, as in KRaft (AccessControlEntryRecord and
// RemoveAccessControlEntryRecord): each binding under an id the controller
// chose, so that a deletion names exactly what it removes.

// AccessControlEntryRecord creates an ACL binding.
type AccessControlEntryRecord struct {
	ID      UUID          `json:"id"`
	Binding authz.Binding `json:"binding"`
}

// RemoveAccessControlEntryRecord deletes the binding with ID.
type RemoveAccessControlEntryRecord struct {
	ID UUID `json:"id"`
}

func (*AccessControlEntryRecord) Type() RecordType       { return TypeAccessControlEntry }
func (*RemoveAccessControlEntryRecord) Type() RecordType { return TypeRemoveAccessControlEntry }

func applyACL(m map[UUID]authz.Binding, r Record) {
	switch r := r.(type) {
	case *AccessControlEntryRecord:
		m[r.ID] = r.Binding
	case *RemoveAccessControlEntryRecord:
		delete(m, r.ID)
	}
}

// SortedACLIDs returns the ids of the image's ACLs in a stable order.
func (im *Image) SortedACLIDs() []UUID {
	ids := make([]UUID, 0, len(im.ACLs))
	for id := range im.ACLs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	return ids
}

// ACLList returns the image's ACL bindings, in SortedACLIDs order.
func (im *Image) ACLList() []authz.Binding {
	out := make([]authz.Binding, 0, len(im.ACLs))
	for _, id := range im.SortedACLIDs() {
		out = append(out, im.ACLs[id])
	}
	return out
}

// aclRecords are the records that rebuild the ACLs.
func (im *Image) aclRecords() []Record {
	out := make([]Record, 0, len(im.ACLs))
	for _, id := range im.SortedACLIDs() {
		out = append(out, &AccessControlEntryRecord{ID: id, Binding: im.ACLs[id]})
	}
	return out
}
