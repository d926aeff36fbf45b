package sqlite_test

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// BenchmarkActionWALPages attributes the WAL frames of recording actions
// (as BenchmarkActionWritePath records them: 16 callers, 100 tenants,
// checkpoints off) to the tables and indexes whose pages they hold
// (SQLite's dbstat), and reports each one's frames per action, so a
// schema change's effect on the write path is seen B-tree by B-tree.
// frames/commit is the average transaction's size. Prefilled, the store
// first bulk-loads prefillActions actions over the tenants (about a
// minute), as BenchmarkActionWritePath's prefilled variant: each tenant's
// part of an index then spans many leaves, and fewer are shared.
//
//	go test ./pdp/store/sqlite -run '^$' -bench ActionWALPages -benchtime 5000x -cpu 1
func BenchmarkActionWALPages(b *testing.B) {
	b.Run("fresh", func(b *testing.B) { benchActionWALPages(b, 0) })
	b.Run("prefilled", func(b *testing.B) { benchActionWALPages(b, prefillActions) })
}

func benchActionWALPages(b *testing.B, prefill int) {
	ctx := b.Context()
	path := filepath.Join(b.TempDir(), "g.db")
	db, err := sqlite.Open(ctx, path, sqlite.WithoutCheckpoints())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ids := writePathTenants(b, db, 100, prefill)
	recs := writePathActions(b.N, ids)
	start := walFrames(b, path+"-wal")
	b.ResetTimer()
	storetest.InsertConcurrently(ctx, b, db, recs, 16)
	b.StopTimer()
	frames := walFrames(b, path+"-wal")[len(start):]
	owners, err := db.PageOwners(ctx)
	if err != nil {
		b.Fatal(err)
	}
	per := map[string]int{}
	commits := 0
	for _, f := range frames {
		name, ok := owners[f.page]
		if !ok {
			name = "other"
		}
		per[name]++
		if f.commit {
			commits++
		}
	}
	n := float64(b.N)
	names := make([]string, 0, len(per))
	for name := range per {
		names = append(names, name)
	}
	slices.SortFunc(names, func(x, y string) int { return cmp.Or(cmp.Compare(per[y], per[x]), cmp.Compare(x, y)) })
	for _, name := range names {
		b.ReportMetric(float64(per[name])/n, name+"-frames/action")
	}
	b.ReportMetric(float64(len(frames))/n, "frames/action")
	b.ReportMetric(float64(len(frames))/float64(max(commits, 1)), "frames/commit")
}

// walFrame is one frame of a WAL file: its page, and whether it ends a
// transaction.
type walFrame struct {
	page   uint32
	commit bool
}

// walFrames reads the frames of the WAL file at path (its current
// generation: the header's salts), in order.
func walFrames(b *testing.B, path string) []walFrame {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	if len(data) < 32 {
		return nil
	}
	pageSize := int(binary.BigEndian.Uint32(data[8:]))
	salt1, salt2 := binary.BigEndian.Uint32(data[16:]), binary.BigEndian.Uint32(data[20:])
	var out []walFrame
	for off := 32; off+24+pageSize <= len(data); off += 24 + pageSize {
		h := data[off:]
		if binary.BigEndian.Uint32(h[8:]) != salt1 || binary.BigEndian.Uint32(h[12:]) != salt2 {
			break
		}
		out = append(out, walFrame{page: binary.BigEndian.Uint32(h), commit: binary.BigEndian.Uint32(h[4:]) != 0})
	}
	return out
}

// BenchmarkListActions1M lists pages of 1,000,000 actions of one tenant
// (BenchmarkDashboard1M's store: 30 days, the generated status mix, bulk
// loaded) as GET /v1/actions does: the first page and a deep one, without
// a status and with a common, a rare and a missing one. Each call counts
// the total too.
//
//	go test ./pdp/store/sqlite -run '^$' -bench ListActions1M -benchtime 20x
func BenchmarkListActions1M(b *testing.B) {
	const n = 1_000_000
	until := time.Date(2025, 7, 1, 13, 37, 42, 123456000, time.UTC)
	db := benchDB(b, "dashboard-1m", func(ctx context.Context, db *sqlite.DB) error {
		if err := benchTenant(ctx, db, "acme"); err != nil {
			return err
		}
		got, err := db.BulkInsertActions(ctx, storetest.GenerateActions(storetest.DefaultMix("acme", n, until)))
		if err == nil && got != n {
			err = fmt.Errorf("loaded %d actions, want %d", got, n)
		}
		return err
	})
	for _, c := range []struct {
		name string
		q    store.ActionQuery
	}{
		{"all-first", store.ActionQuery{Limit: 50}},
		{"all-deep", store.ActionQuery{Limit: 50, Offset: 200_000}},
		{"allowed-first", store.ActionQuery{Status: pdp.StatusAllowed, Limit: 50}},
		{"pending-first", store.ActionQuery{Status: pdp.StatusPendingReview, Limit: 50}},
		{"pending-deep", store.ActionQuery{Status: pdp.StatusPendingReview, Limit: 50, Offset: 20_000}},
		{"shadow-none", store.ActionQuery{Status: "shadow", Limit: 50}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := db.ListActions(b.Context(), "acme", c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
