package controller

import (
	"errors"
	"testing"

	"github.com/stratalog/strata/internal/quota"
)

func TestAlterClientQuotas(t *testing.T) {
	dir := t.TempDir()
	l, c := openTest(t, dir)
	if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
		t.Fatal(err)
	}
	alice, empty := "alice", ""
	user := []quota.EntityPart{{Type: quota.TypeUser, Name: &alice}}
	defClient := []quota.EntityPart{{Type: quota.TypeUser, Name: &alice}, {Type: quota.TypeClientID, Name: nil}}
	aliceE := quota.Entity{User: quota.Named("alice")}
	set := func(k string, v float64) QuotaOp { return QuotaOp{Key: k, Value: v} }

	// Each entity succeeds or fails on its own; a failing one changes none
	// of its keys.
	errs := c.AlterClientQuotas([]QuotaAlteration{
		{Entity: user, Ops: []QuotaOp{set(quota.ProducerByteRate, 1024), set(quota.RequestPercentage, 50)}},
		{Entity: defClient, Ops: []QuotaOp{set(quota.ConsumerByteRate, 2048), set("nope", 1)}},
		{Entity: []quota.EntityPart{{Type: "group", Name: &alice}}, Ops: []QuotaOp{set(quota.ProducerByteRate, 1)}},
		{Entity: []quota.EntityPart{{Type: quota.TypeUser, Name: &empty}}, Ops: []QuotaOp{set(quota.ProducerByteRate, 1)}},
		{Entity: nil, Ops: []QuotaOp{set(quota.ProducerByteRate, 1)}},
		{Entity: []quota.EntityPart{{Type: quota.TypeClientID, Name: nil}}, Ops: []QuotaOp{set(quota.ProducerByteRate, 1.5)}},
	}, false)
	if errs[0] != nil {
		t.Fatalf("valid entity: %v", errs[0])
	}
	for i := 1; i < len(errs); i++ {
		if !errors.Is(errs[i], ErrInvalidRequest) {
			t.Errorf("alteration %d: %v, want INVALID_REQUEST", i, errs[i])
		}
	}
	img := c.Image()
	if got := img.ClientQuotas[aliceE]; got[quota.ProducerByteRate] != 1024 || got[quota.RequestPercentage] != 50 || len(img.ClientQuotas) != 1 {
		t.Fatalf("quotas %+v", img.ClientQuotas)
	}
	// validate_only writes nothing; a set to the same value writes
	// nothing either.
	off := img.Offset
	if errs := c.AlterClientQuotas([]QuotaAlteration{{Entity: user, Ops: []QuotaOp{set(quota.ProducerByteRate, 1)}}}, true); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if errs := c.AlterClientQuotas([]QuotaAlteration{{Entity: user, Ops: []QuotaOp{set(quota.ProducerByteRate, 1024)}}}, false); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if c.Image().Offset != off || c.Image().ClientQuotas[aliceE][quota.ProducerByteRate] != 1024 {
		t.Fatalf("no-op alterations wrote: offset %d -> %d, %+v", off, c.Image().Offset, c.Image().ClientQuotas)
	}
	// The quotas survive a restart; removing every key removes the entity.
	l.Close()
	l, c = openTest(t, dir)
	defer l.Close()
	if c.Image().ClientQuotas[aliceE][quota.RequestPercentage] != 50 {
		t.Fatalf("after restart %+v", c.Image().ClientQuotas)
	}
	errs = c.AlterClientQuotas([]QuotaAlteration{{Entity: user, Ops: []QuotaOp{{Key: quota.ProducerByteRate, Remove: true}, {Key: quota.RequestPercentage, Remove: true}}}}, false)
	if errs[0] != nil || len(c.Image().ClientQuotas) != 0 {
		t.Fatalf("remove: %v, %+v", errs[0], c.Image().ClientQuotas)
	}
}
