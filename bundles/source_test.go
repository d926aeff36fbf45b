package bundles_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

func TestSourceFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "acme.tar.gz")
	if err := os.WriteFile(path, mustBuild(t, sampleTenant(t, "acme", 1, "")).Bytes, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := bundles.NewSource(bundles.SourceConfig{Location: path})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		write   *pdp.TenantPolicies
		changed bool
		rev     string
	}{
		{"first read", nil, true, "1"},
		{"unchanged", nil, false, "1"},
		{"rewritten", &pdp.TenantPolicies{TenantID: "acme", Revision: 2}, true, "2"},
	}
	for _, s := range steps {
		if s.write != nil {
			if err := os.WriteFile(path, mustBuild(t, *s.write).Bytes, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, changed, err := src.Fetch(ctx)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if changed != s.changed || l.Revision != s.rev || !slices.Equal(l.TenantIDs, []string{"acme"}) || src.Current() != l {
			t.Errorf("%s: changed %v revision %q tenants %v", s.name, changed, l.Revision, l.TenantIDs)
		}
		if l.Modules["gatehouse/decision.rego"] == nil {
			t.Errorf("%s: library missing", s.name)
		}
	}

	t.Run("signature required", func(t *testing.T) {
		ks := testKeys(t)
		vc, _ := bundles.NewVerifyConfig("ES256", ks["ES256"].public, "")
		src, err := bundles.NewSource(bundles.SourceConfig{Location: path, Verify: vc})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := src.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "missing .signatures.json") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		src, _ := bundles.NewSource(bundles.SourceConfig{Location: path + ".nope"})
		if _, _, err := src.Fetch(ctx); err == nil {
			t.Error("no error")
		}
	})
	t.Run("bad config", func(t *testing.T) {
		for _, cfg := range []bundles.SourceConfig{
			{},
			{Location: "http://"},
			{Location: path, Verify: &bundles.VerifyConfig{Algorithm: "RS256", Key: "nonsense"}},
		} {
			if _, err := bundles.NewSource(cfg); err == nil {
				t.Errorf("%+v: no error", cfg)
			}
		}
	})
}

func TestSourceURL(t *testing.T) {
	ctx := t.Context()
	ks := testKeys(t)
	sk, _ := bundles.NewSigningKey("ES256", ks["ES256"].private, "")
	cache := bundles.NewCache(engineConfig.ConfigData(), bundles.WithSigningKey(sk))
	srv, ts := newBundleServer(t, cache, 30*time.Second, "acme")
	url := srv.URL + "/v1/bundles/acme.tar.gz"
	header := http.Header{"Authorization": {"Bearer key-acme"}}

	src, err := bundles.NewSource(bundles.SourceConfig{Location: url, Header: header, Verify: sk.VerifyConfig(), LongPoll: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, changed, err := src.Fetch(ctx)
	if err != nil || !changed || l.Revision != "1" {
		t.Fatalf("first fetch: changed %v err %v", changed, err)
	}

	// The server long polls: an unchanged tenant answers 304 after wait=1.
	start := time.Now()
	l2, changed, err := src.Fetch(ctx)
	if err != nil || changed || l2 != l || time.Since(start) < time.Second {
		t.Errorf("second fetch: changed %v err %v after %v", changed, err, time.Since(start))
	}

	// A write releases a pending fetch at once.
	src2, _ := bundles.NewSource(bundles.SourceConfig{Location: url, Header: header, Verify: sk.VerifyConfig(), LongPoll: 20 * time.Second})
	if _, _, err := src2.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	ts.drainReads()
	done := make(chan *bundles.Loaded)
	go func() {
		l, changed, err := src2.Fetch(ctx)
		if err != nil || !changed {
			t.Errorf("changed %v err %v", changed, err)
		}
		done <- l
	}()
	ts.waitRead(t, "the pending fetch") // its long poll holds revision 1 now
	start = time.Now()
	rev := ts.write("acme")
	// Released by the write, not by its 20 s long poll running out.
	if l := <-done; l == nil || l.Revision != "2" || time.Since(start) > 15*time.Second || rev != 2 {
		t.Errorf("after write: %v after %v", l != nil && l.Revision == "2", time.Since(start))
	}

	t.Run("errors", func(t *testing.T) {
		other, _ := bundles.NewSigningKey("HS256", []byte(strings.Repeat("q", 32)), "")
		tests := []struct {
			name string
			cfg  bundles.SourceConfig
			want string
		}{
			{"no key", bundles.SourceConfig{Location: url}, "401 Unauthorized: UNAUTHORIZED: Invalid or missing API key"},
			{"unknown tenant", bundles.SourceConfig{Location: srv.URL + "/v1/bundles/nobody.tar.gz", Header: http.Header{"Authorization": {"Bearer admin"}}}, "404"},
			{"wrong verification key", bundles.SourceConfig{Location: url, Header: header, Verify: other.VerifyConfig()}, "verify"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				src, err := bundles.NewSource(tt.cfg)
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := src.Fetch(ctx); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("err = %v, want %q", err, tt.want)
				}
			})
		}
	})
}

func TestSourceRun(t *testing.T) {
	cache := bundles.NewCache(engineConfig.ConfigData())
	srv, ts := newBundleServer(t, cache, 30*time.Second, "acme")
	src, err := bundles.NewSource(bundles.SourceConfig{
		Location: srv.URL + "/v1/bundles/acme.tar.gz",
		Header:   http.Header{"Authorization": {"Bearer key-acme"}},
		LongPoll: 10 * time.Second,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen []string
		fail = true
	)
	applied := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error)
	go func() {
		ran <- src.Run(ctx, func(l *bundles.Loaded) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, l.Revision)
			if l.Revision == "2" && fail {
				fail = false
				return context.DeadlineExceeded // the engine could not take it: retried
			}
			applied <- struct{}{}
			return nil
		})
	}()
	<-applied
	ts.write("acme")
	select {
	case <-applied:
	case <-time.After(5 * time.Second):
		t.Fatal("revision 2 never applied")
	}
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
	if strings.Join(seen, ",") != "1,2,2" {
		t.Errorf("applied revisions %v, want 1,2,2 (one failure retried)", seen)
	}
}
