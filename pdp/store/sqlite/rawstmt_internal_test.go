package sqlite

import (
	"slices"
	"strings"
	"testing"
)

// TestUpsertChunks checks that a batch's rows go out in statements of
// rollupChunks' sizes, largest first, each with as many arguments as
// placeholders.
func TestUpsertChunks(t *testing.T) {
	for _, tc := range []struct {
		rows int
		want []int
	}{
		{1, []int{1}},
		{11, []int{8, 2, 1}},
		{32, []int{32}},
		{70, []int{32, 32, 2, 2, 2}},
	} {
		rows := make([]any, 0, tc.rows*countsTable.cols)
		for i := range tc.rows {
			rows = append(rows, "t", int64(i), "allowed", int64(1))
		}
		var got []int
		err := countsTable.upsert(func(q string, args []any) error {
			if n := strings.Count(q, "?"); n != len(args) {
				t.Errorf("%d rows: a statement of %d placeholders got %d arguments", tc.rows, n, len(args))
			}
			got = append(got, len(args)/countsTable.cols)
			return nil
		}, rows)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%d rows went out as %v, want %v", tc.rows, got, tc.want)
		}
	}
}
