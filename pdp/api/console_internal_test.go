package api

import (
	"errors"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
)

// TestDraftBound: with maxDraftsRunning drafts in flight, another is
// refused at once as overloaded (503 with Retry-After), never queued and
// never allowed.
func TestDraftBound(t *testing.T) {
	p := &playground{server: &server{}, drafts: make(chan struct{}, maxDraftsRunning)}
	for range maxDraftsRunning {
		p.drafts <- struct{}{}
	}
	d, err := p.evaluateDraft(nil, pdp.Action{TenantID: "t", Name: "a"}, pdp.Policy{Name: "x"})
	if d != nil || !errors.Is(err, engine.ErrOverloaded) || !errors.Is(err, pdp.ErrEvaluationFailed) {
		t.Fatalf("evaluateDraft with every slot taken: %v, %v", d, err)
	}
}
