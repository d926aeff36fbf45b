package api_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

type plainStore struct{ store.Store }

func BenchmarkTmpSubmit(b *testing.B) {
	for _, gov := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "audited"}[gov]
		b.Run(name, func(b *testing.B) {
			db, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "g.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var st store.Store = db
			if !gov {
				st = plainStore{db}
			}
			eng, _ := engine.New(engine.Config{Timeout: 5 * time.Second})
			reg, _ := registry.New(st, eng)
			_, key, err := reg.CreateTenant(b.Context(), registry.NewTenant{Name: "x", Tier: store.TierPro})
			if err != nil {
				b.Fatal(err)
			}
			h, err := api.New(api.Config{}, api.Deps{Registry: reg, Engine: eng, Store: st})
			if err != nil {
				b.Fatal(err)
			}
			body := `{"action":"slack.send_message","params":{"channel":"#general","text":"hello there"},"agent_id":"bot-1"}`
			b.ResetTimer()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("POST", "/v1/actions", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+key)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Errorf("%d %s", w.Code, w.Body)
						return
					}
				}
			})
		})
	}
}
