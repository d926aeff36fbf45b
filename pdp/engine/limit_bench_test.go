package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// spin burns CPU in proportion to n.
func spin(n int) uint64 {
	var h maphash.Hash
	var x uint64
	for i := range n {
		h.WriteByte(byte(i))
		x += h.Sum64()
	}
	return x
}

var sink uint64

// BenchmarkSlotsClosedLoop models the action path under the load tool
// for sizing the slots: 16 closed-loop clients, each request some CPU
// outside the slots (HTTP, store: 1.5 units) and an evaluation inside one
// (1 unit, calibrated to about 200 µs), the default 10 ms wait, for slot
// counts of 1, 2, 4 and 8 × GOMAXPROCS. Run it with -test.cpu 1
// (GOMAXPROCS=1, as the load tool) on a quiet machine: it reports p50,
// p99 and the refusals per request.
func BenchmarkSlotsClosedLoop(b *testing.B) {
	// Calibrate one unit to ~200 µs.
	start := time.Now()
	sink += spin(100000)
	unit := int(100000 * float64(200*time.Microsecond) / float64(time.Since(start)))
	for _, factor := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("slots=%d×P", factor), func(b *testing.B) {
			n := factor * runtime.GOMAXPROCS(0)
			s := newSlots(n, -1).withWait(10 * time.Millisecond)
			const clients = 16
			var mu sync.Mutex
			var lat []time.Duration
			var refused int
			next := make(chan struct{}, clients)
			go func() {
				for range b.N {
					next <- struct{}{}
				}
				close(next)
			}()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					var x uint64
					for range next {
						t0 := time.Now()
						x += spin(unit * 3 / 2)
						release, err := s.admit(context.Background(), "t")
						if err != nil {
							if !errors.Is(err, ErrOverloaded) {
								b.Error(err)
							}
							mu.Lock()
							refused++
							mu.Unlock()
							continue
						}
						x += spin(unit)
						release()
						d := time.Since(t0)
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
					mu.Lock()
					sink += x
					mu.Unlock()
				})
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
			b.ReportMetric(float64(refused)/float64(b.N), "refused/op")
		})
	}
}
