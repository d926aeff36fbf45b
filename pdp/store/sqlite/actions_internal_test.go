package sqlite

import "testing"

// TestActionPage: the span of a page of actions found from hourly counts
// (newest hour first) starts in the hour where the running count passes
// the offset, skipping that hour's newer matches, and ends in the hour
// where it reaches offset + limit; hours counted 0 (decided or deleted
// actions leave them) are never part of a span; a page past the end has
// none.
func TestActionPage(t *testing.T) {
	hours := []hourCount{{9, 2}, {7, 0}, {6, 3}, {2, 4}, {-1, 1}}
	span := func(lo, hi, skip int64) actionPageSpan {
		return actionPageSpan{lo: lo * hourUS, hi: hi * hourUS, skip: skip, found: true}
	}
	for _, c := range []struct {
		offset, limit int64
		want          actionPageSpan
	}{
		{0, 1, span(9, 10, 0)},
		{0, 2, span(9, 10, 0)},
		{0, 3, span(6, 10, 0)},
		{1, 3, span(6, 10, 1)},
		{2, 3, span(6, 7, 0)},
		{2, 4, span(2, 7, 0)},
		{4, 1, span(6, 7, 2)},
		{5, 100, span(-1, 3, 0)},
		{9, 1, span(-1, 0, 0)},
		{0, 0, span(-1, 10, 0)},
		{3, -1, span(-1, 7, 1)},
		{10, 1, actionPageSpan{}},
		{10, 0, actionPageSpan{}},
	} {
		total, got := actionPage(hours, c.offset, c.limit)
		if total != 10 || got != c.want {
			t.Errorf("offset %d, limit %d: total %d, span %+v; want 10, %+v", c.offset, c.limit, total, got, c.want)
		}
	}
	if total, got := actionPage([]hourCount{{5, 1}, {3, 0}}, 0, 0); total != 1 || got != span(5, 6, 0) {
		t.Errorf("an oldest hour counted 0: total %d, span %+v", total, got)
	}
	if total, got := actionPage(nil, 0, 50); total != 0 || got.found {
		t.Errorf("no hours: total %d, span %+v", total, got)
	}
}
