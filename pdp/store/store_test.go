package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

func TestParseDSN(t *testing.T) {
	cases := []struct {
		in, backend, dsn string
		ok               bool
	}{
		{"sqlite://./gatehouse.db", "sqlite", "./gatehouse.db", true},
		{"sqlite://gatehouse.db", "sqlite", "gatehouse.db", true},
		{"sqlite:///var/lib/gatehouse/g.db", "sqlite", "/var/lib/gatehouse/g.db", true},
		{"postgres://user@host:5432/db?sslmode=disable", "postgres", "postgres://user@host:5432/db?sslmode=disable", true},
		{"postgresql://host/db", "postgres", "postgresql://host/db", true},
		{"sqlite://", "", "", false},
		{"sqlite://./g.db?mode=ro", "", "", false},
		{"./gatehouse.db", "", "", false},
		{"mysql://host/db", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		b, d, err := store.ParseDSN(c.in)
		if (err == nil) != c.ok || b != c.backend || d != c.dsn {
			t.Errorf("ParseDSN(%q) = %q, %q, %v; want %q, %q, ok=%v", c.in, b, d, err, c.backend, c.dsn, c.ok)
		}
	}
}

func TestHashAPIKeyAndPrefix(t *testing.T) {
	// The FIPS 180-2 test vector for "abc".
	if got, want := store.HashAPIKey("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("HashAPIKey(abc) = %s, want %s", got, want)
	}
	if got := store.KeyPrefix("nram_0123456789abcdef"); got != "nram_0123456" {
		t.Errorf("KeyPrefix = %q", got)
	}
	if got := store.KeyPrefix("short"); got != "short" {
		t.Errorf("KeyPrefix(short) = %q", got)
	}
}

func TestErrorClasses(t *testing.T) {
	dup := fmt.Errorf("create tenant %q: %w", "a", store.ErrDuplicate)
	if !errors.Is(dup, store.ErrConflict) || !errors.Is(dup, pdp.ErrConflict) || errors.Is(dup, store.ErrNotFound) {
		t.Errorf("ErrDuplicate classifies wrong: %v", dup)
	}
	if !errors.Is(fmt.Errorf("x: %w", store.ErrNotFound), pdp.ErrNotFound) {
		t.Error("store.ErrNotFound is not pdp.ErrNotFound")
	}
	var le *store.LimitError
	err := fmt.Errorf("put policy: %w", &store.LimitError{Limit: 5, Current: 5})
	if !errors.As(err, &le) || le.Limit != 5 || !errors.Is(err, store.ErrLimitExceeded) {
		t.Errorf("LimitError classifies wrong: %v", err)
	}
}

func TestTierValid(t *testing.T) {
	for _, tier := range []store.Tier{store.TierFree, store.TierStarter, store.TierPro, store.TierEnterprise} {
		if !tier.Valid() {
			t.Errorf("%q not valid", tier)
		}
	}
	for _, tier := range []store.Tier{"", "Pro", "gold"} {
		if tier.Valid() {
			t.Errorf("%q valid", tier)
		}
	}
}

// TestJSONEncodedSkipsOnlyTheParse: a record its writer encoded is not
// parsed again, but every other check still runs, and the hint is not
// part of the prepared record.
func TestJSONEncodedSkipsOnlyTheParse(t *testing.T) {
	a := store.ActionRecord{ID: "act_1", TenantID: "acme", Action: "a.b", Status: pdp.StatusAllowed, Params: json.RawMessage(`{"x":`), JSONEncoded: true}
	if err := store.ValidateAction(a); err != nil {
		t.Errorf("JSONEncoded: %v, want no parse", err)
	}
	a.JSONEncoded = false
	if err := store.ValidateAction(a); err == nil {
		t.Error("invalid params JSON accepted")
	}
	a.Params, a.JSONEncoded = json.RawMessage("{\"x\":\"\x00\"}"), true
	if err := store.ValidateAction(a); err == nil {
		t.Error("NUL in params accepted with JSONEncoded")
	}
	a.Params = json.RawMessage(`{}`)
	p, err := store.PrepareAction(a, time.Now)
	if err != nil || p.JSONEncoded {
		t.Errorf("PrepareAction = %+v, %v; want JSONEncoded cleared", p, err)
	}
}
