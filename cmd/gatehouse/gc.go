package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultGOGC is the collector's target percentage serve runs with when
// GOGC is not set. A decision allocates much of what OPA's evaluation
// touches and the live heap is mostly prepared queries, so at Go's
// default of 100 the collector was 12% of a request's CPU under load;
// 400 lets the heap grow to five times the live heap between cycles
// instead of twice, for about a third of the collections. GOGC (any
// value, "off" too) overrides it.
const defaultGOGC = 400

// memoryLimitShare is the part of a cgroup's memory limit serve sets as
// the Go memory limit when GOMEMLIMIT is not set: the heap may use
// defaultGOGC's headroom, but near the limit the collector runs harder
// instead of the process being killed.
const memoryLimitShare = 0.8

// cgroupMemoryFiles hold the memory limit of the process's cgroup (v2,
// then v1); a variable for the tests.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// tuneGC applies serve's collector defaults where the environment sets
// none, and logs what the collector runs with.
func tuneGC(lookupEnv func(string) (string, bool), logger *slog.Logger) {
	gogc, set := lookupEnv("GOGC")
	if !set {
		debug.SetGCPercent(defaultGOGC)
		gogc = strconv.Itoa(defaultGOGC) + " (default)"
	}
	limit := "none"
	if v, set := lookupEnv("GOMEMLIMIT"); set {
		limit = v
	} else if l, ok := cgroupMemoryLimit(); ok {
		n := int64(float64(l) * memoryLimitShare)
		debug.SetMemoryLimit(n)
		limit = strconv.FormatInt(n, 10) + " (80% of the cgroup's memory limit)"
	}
	logger.Info("garbage collector", "gogc", gogc, "memory_limit", limit)
}

// cgroupMemoryLimit returns the memory limit of the process's cgroup, if
// it has one.
func cgroupMemoryLimit() (int64, bool) {
	for _, f := range cgroupMemoryFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max" (v2) and a near-MaxInt64 page-rounded value (v1) mean none.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
