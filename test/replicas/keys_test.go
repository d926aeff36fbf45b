package replicas

import (
	"net/http"
	"testing"
)

// TestSelfServiceRevocationAcrossReplicas revokes, through DELETE /v1/keys
// on replica A, a key replica B has just authenticated (and holds in
// memory), and rotates another with no grace period: B must refuse both
// old secrets within the revision watch's bound, well under the auth
// cache's TTL.
func TestSelfServiceRevocationAcrossReplicas(t *testing.T) {
	c := NewCluster(t, 2)
	a := c.Client(0)
	create := func(name string) (string, string) {
		r := a.Do(t, http.MethodPost, "/v1/keys", map[string]any{"name": name, "role": "member"})
		if r.Status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", name, r.Status, r.Body)
		}
		m := r.JSON(t)
		return m["key_id"].(string), m["api_key"].(string)
	}
	revokedID, revoked := create("leaver")
	_, rotated := create("rotator")
	for _, k := range []string{revoked, rotated} {
		if r := c.Replicas[1].Client(k).Do(t, http.MethodGet, "/v1/control/policies", nil); r.Status != http.StatusOK {
			t.Fatalf("new key on B: %d %s", r.Status, r.Body)
		}
	}
	if r := a.Do(t, http.MethodDelete, "/v1/keys/"+revokedID, nil); r.Status != http.StatusOK {
		t.Fatalf("revoke through A: %d %s", r.Status, r.Body)
	}
	if r := c.Replicas[0].Client(rotated).Do(t, http.MethodPost, "/v1/keys/rotate", map[string]any{"grace_period_seconds": 0}); r.Status != http.StatusOK {
		t.Fatalf("rotate through A: %d %s", r.Status, r.Body)
	}
	for name, k := range map[string]string{"revoked": revoked, "rotated": rotated} {
		b := c.Replicas[1].Client(k)
		d := Until(t, 4*Bound, "B refuses the "+name+" key", func() bool {
			return b.Do(t, http.MethodGet, "/v1/control/policies", nil).Status == http.StatusUnauthorized
		})
		t.Logf("%s key on A → refused on B after %s", name, d)
	}
}
