package engine

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// TestSharedLibraryConcurrently: every registry tenant's prepared queries
// share the one compiled library, each over its own store. Tenants
// prepared and deciding at once, while others publish new revisions, get
// the decisions each gets alone (run with -race: nothing writes to the
// shared compiler).
func TestSharedLibraryConcurrently(t *testing.T) {
	s := scale.Generate("shared", 6, 3, 4, 3, 0.5, 2)
	alone := map[int]*pdp.Decision{}
	{
		e := newEngine(t, Config{Timeout: 30 * time.Second})
		for _, tp := range s.Tenants {
			if err := e.SetTenant(tp); err != nil {
				t.Fatal(err)
			}
		}
		for i, a := range s.Actions {
			alone[i] = evaluate(t, e, a)
		}
	}
	e := newEngine(t, Config{Timeout: 30 * time.Second, CacheSize: 4})
	for _, tp := range s.Tenants {
		if err := e.SetTenant(tp); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 3 {
				for i := w; i < len(s.Actions); i += 4 {
					d, err := e.Evaluate(t.Context(), s.Actions[i])
					if err != nil {
						errs <- err
						return
					}
					if !sameDecision(d, alone[i]) {
						errs <- fmt.Errorf("round %d action %d: %+v, alone %+v", round, i, d, alone[i])
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		// New revisions of the same policies: a small cache and new
		// revisions keep tenants preparing while others decide.
		for rev := uint64(2); rev < 6; rev++ {
			for _, tp := range s.Tenants {
				tp.Revision = rev
				if err := e.SetTenant(tp); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := e.Stats(); st.Compiles < uint64(len(s.Tenants)) {
		t.Errorf("%d units built for %d tenants", st.Compiles, len(s.Tenants))
	}
}
