package metadata

import "sort"

// SCRAM credentials live in the metadata log, as in KRaft
// (UserScramCredentialRecord): the salt, StoredKey, ServerKey and
// iteration count of each user and mechanism, never the password or the
// salted password.

// UserScramCredentialRecord creates or replaces a user's credential for
// one mechanism.
type UserScramCredentialRecord struct {
	Name       string `json:"name"`
	Mechanism  string `json:"mechanism"` // SCRAM-SHA-256 or SCRAM-SHA-512
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
	Iterations int32  `json:"iterations"`
}

// RemoveUserScramCredentialRecord deletes a user's credential for one
// mechanism.
type RemoveUserScramCredentialRecord struct {
	Name      string `json:"name"`
	Mechanism string `json:"mechanism"`
}

func (*UserScramCredentialRecord) Type() RecordType { return TypeUserScramCredential }
func (*RemoveUserScramCredentialRecord) Type() RecordType {
	return TypeRemoveUserScramCredential
}

// ScramKey names a credential: a user and a mechanism.
type ScramKey struct {
	Name      string
	Mechanism string
}

// ScramCredential is a stored SCRAM credential.
type ScramCredential struct {
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
	Iterations int32
}

func applyScram(m map[ScramKey]ScramCredential, r Record) {
	switch r := r.(type) {
	case *UserScramCredentialRecord:
		m[ScramKey{r.Name, r.Mechanism}] = ScramCredential{Salt: r.Salt, StoredKey: r.StoredKey, ServerKey: r.ServerKey, Iterations: r.Iterations}
	case *RemoveUserScramCredentialRecord:
		delete(m, ScramKey{r.Name, r.Mechanism})
	}
}

// scramRecords are the records that rebuild the credentials, in order.
func (im *Image) scramRecords() []Record {
	keys := make([]ScramKey, 0, len(im.ScramCredentials))
	for k := range im.ScramCredentials {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].Name < keys[j].Name || keys[i].Name == keys[j].Name && keys[i].Mechanism < keys[j].Mechanism
	})
	out := make([]Record, 0, len(keys))
	for _, k := range keys {
		c := im.ScramCredentials[k]
		out = append(out, &UserScramCredentialRecord{Name: k.Name, Mechanism: k.Mechanism, Salt: c.Salt, StoredKey: c.StoredKey, ServerKey: c.ServerKey, Iterations: c.Iterations})
	}
	return out
}
