package sqlite

import "testing"

// TestTickPasses: the checkpointer's tick runs a pass only when the WAL
// grew by at most walCkptBytes/walCatchUpShare since the last tick; a WAL
// that restarted in between grew by its whole extent.
func TestTickPasses(t *testing.T) {
	const c = 256 << 20
	for _, tc := range []struct {
		ext, ticked int64
		want        bool
	}{
		{0, 0, true},                      // idle
		{100 << 20, 99 << 20, true},       // a trickle
		{100 << 20, 50 << 20, false},      // growing fast
		{80 << 20, 250 << 20, false},      // restarted and grown by 80 MiB since
		{4 << 20, 250 << 20, true},        // restarted, little since
		{c / walCatchUpShare, 0, true},    // the bound itself
		{c/walCatchUpShare + 1, 0, false}, // past it
	} {
		if got := tickPasses(tc.ext, tc.ticked, c); got != tc.want {
			t.Errorf("tickPasses(%d, %d) = %v, want %v", tc.ext, tc.ticked, got, tc.want)
		}
	}
}
