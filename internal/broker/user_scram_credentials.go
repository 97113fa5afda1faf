package broker

// DescribeUserScramCredentials (v0) and AlterUserScramCredentials (v0):
// SCRAM users, kept as metadata records (metadata/security.go). Alter is a
// metadata change, relayed to the active controller; the request carries
// salted passwords, and the controller stores only the salt, StoredKey
// and ServerKey. Describe answers from this broker's image and never
// returns more than mechanism and iterations.

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/security"
)

// SCRAM mechanism ids of the admin APIs (Kafka's ScramMechanism).
func scramMechanismName(id int8) string {
	switch id {
	case 1:
		return security.MechScramSHA256
	case 2:
		return security.MechScramSHA512
	}
	return ""
}

func scramMechanismID(name string) int8 {
	switch name {
	case security.MechScramSHA256:
		return 1
	case security.MechScramSHA512:
		return 2
	}
	return 0
}

func scramKey(user, mechanism string) metadata.ScramKey {
	return metadata.ScramKey{Name: user, Mechanism: mechanism}
}

func (b *Broker) handleDescribeUserScramCredentials(_ context.Context, r *request) {
	req := r.body.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := kmsg.NewPtrDescribeUserSCRAMCredentialsResponse()
	byUser := map[string][]kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{}
	for k, c := range b.image().ScramCredentials {
		byUser[k.Name] = append(byUser[k.Name], kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{Mechanism: scramMechanismID(k.Mechanism), Iterations: c.Iterations})
	}
	result := func(user string) kmsg.DescribeUserSCRAMCredentialsResponseResult {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = user
		infos := byUser[user]
		sort.Slice(infos, func(i, j int) bool { return infos[i].Mechanism < infos[j].Mechanism })
		res.CredentialInfos = infos
		return res
	}
	if req.Users == nil {
		// Null: every user with a credential.
		users := make([]string, 0, len(byUser))
		for u := range byUser {
			users = append(users, u)
		}
		sort.Strings(users)
		for _, u := range users {
			resp.Results = append(resp.Results, result(u))
		}
		r.respond(resp)
		return
	}
	count := map[string]int{}
	for _, u := range req.Users {
		count[u.Name]++
	}
	done := map[string]bool{}
	for _, u := range req.Users {
		if done[u.Name] {
			continue
		}
		done[u.Name] = true
		res := result(u.Name)
		switch {
		case count[u.Name] > 1:
			res.CredentialInfos = nil
			res.ErrorCode = kerr.DuplicateResource.Code
			res.ErrorMessage = strp("Cannot describe SCRAM credentials for the same user twice in a single request: " + u.Name)
		case len(res.CredentialInfos) == 0:
			res.ErrorCode = kerr.ResourceNotFound.Code
			res.ErrorMessage = strp("Attempt to describe a user credential that does not exist: " + u.Name)
		}
		resp.Results = append(resp.Results, res)
	}
	r.respond(resp)
}

func (b *Broker) handleAlterUserScramCredentials(_ context.Context, r *request) {
	req := r.body.(*kmsg.AlterUserSCRAMCredentialsRequest)
	resp := kmsg.NewPtrAlterUserSCRAMCredentialsResponse()
	var dels []controller.ScramDeletion
	var ups []controller.ScramUpsertion
	var order []string
	seen := map[string]bool{}
	name := func(n string) {
		if !seen[n] {
			seen[n] = true
			order = append(order, n)
		}
	}
	unsupported := map[string]bool{}
	for _, d := range req.Deletions {
		name(d.Name)
		m := scramMechanismName(d.Mechanism)
		if m == "" {
			unsupported[d.Name] = true
		}
		dels = append(dels, controller.ScramDeletion{Name: d.Name, Mechanism: m})
	}
	for _, u := range req.Upsertions {
		name(u.Name)
		m := scramMechanismName(u.Mechanism)
		if m == "" {
			unsupported[u.Name] = true
		}
		ups = append(ups, controller.ScramUpsertion{Name: u.Name, Mechanism: m, Iterations: u.Iterations, Salt: u.Salt, SaltedPassword: u.SaltedPassword})
	}
	var results map[string]error
	if !b.opts.Controller.IsActive() {
		results = map[string]error{}
		for _, n := range order {
			results[n] = controller.ErrNotController
		}
	} else {
		results = b.opts.Controller.AlterUserScramCredentials(dels, ups)
	}
	for _, n := range order {
		res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		res.User = n
		err := results[n]
		if unsupported[n] && err == nil {
			err = controller.ErrUnsupportedSASLMechanism
		}
		if err != nil {
			res.ErrorCode = errorCode(err)
			res.ErrorMessage = strp(err.Error())
			b.log.Info("SCRAM credential change refused", "user", n, "err", err)
		}
		resp.Results = append(resp.Results, res)
	}
	r.respond(resp)
}

func strp(s string) *string { return &s }
