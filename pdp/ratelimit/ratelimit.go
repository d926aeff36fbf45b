// Package ratelimit keeps one token bucket per key (Gatehouse keys them by
// API key) and answers whether a request may pass now and, if not, when it
// may (docs/api.md §A1's 429 RATE_LIMITED with its usage and Retry-After).
//
// A bucket holds Burst tokens and refills at RequestsPerSecond; a request
// takes one. Its state is two numbers, and a bucket that has refilled to
// the brim is indistinguishable from a new one, so full buckets are
// dropped whenever the table is full: memory is bounded by the keys active
// within Burst/RequestsPerSecond seconds, never by the keys ever seen.
// Time is passed in, never read, so tests need no clock.
package ratelimit

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// Limit is a bucket's shape: Burst requests at once, refilled at
// RequestsPerSecond. RequestsPerSecond 0 (or less) is unlimited.
type Limit struct {
	RequestsPerSecond float64
	Burst             int
}

// Unlimited reports whether l lets every request through.
func (l Limit) Unlimited() bool { return l.RequestsPerSecond <= 0 || l.Burst <= 0 }

// Result is the answer for one request.
type Result struct {
	// Allowed is whether the request may pass (it has taken a token).
	Allowed bool
	// Limit is the bucket's size, Burst.
	Limit int
	// Current is how many of Limit are used up now, this request included
	// when it was allowed: Limit minus the tokens left, rounded up.
	Current int
	// RetryAfter is how long until one request will be allowed again; 0
	// when this one was.
	RetryAfter time.Duration
	// ResetAt is when the bucket will be full again (Current back to 0)
	// if no more requests come.
	ResetAt time.Time
}

// shards spreads keys over independent locks, so concurrent requests of
// different keys rarely contend.
const shards = 16

// DefaultMaxKeys is the bound of New(0).
const DefaultMaxKeys = 100_000

// Limiter holds the buckets. It is safe for concurrent use.
type Limiter struct {
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu      sync.Mutex
	max     int
	buckets map[string]*bucket
}

// bucket is one key's state: tokens left at last.
type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter keeping at most maxKeys buckets (DefaultMaxKeys
// when maxKeys ≤ 0). Past the bound, full buckets are dropped, and when
// that frees too little, every bucket of a shard: its keys then start
// over with a full bucket — a brief leniency, never unbounded memory.
func New(maxKeys int) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	l := &Limiter{seed: maphash.MakeSeed()}
	per := max(1, maxKeys/shards)
	for i := range l.shards {
		l.shards[i] = shard{max: per, buckets: map[string]*bucket{}}
	}
	return l
}

// Allow takes a token from key's bucket of shape lim at now, if it has
// one. With an unlimited lim every request is allowed and no state is
// kept. A key whose limit changed keeps its bucket, capped at the new
// Burst.
func (l *Limiter) Allow(key string, lim Limit, now time.Time) Result {
	if lim.Unlimited() {
		return Result{Allowed: true}
	}
	sh := &l.shards[maphash.String(l.seed, key)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	burst := float64(lim.Burst)
	b := sh.buckets[key]
	if b == nil {
		if len(sh.buckets) >= sh.max {
			sh.sweep(lim, now)
		}
		b = &bucket{tokens: burst, last: now}
		sh.buckets[key] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens += elapsed.Seconds() * lim.RequestsPerSecond
		b.last = now
	}
	b.tokens = min(b.tokens, burst)

	r := Result{Limit: lim.Burst}
	if b.tokens >= 1 {
		b.tokens--
		r.Allowed = true
	} else {
		r.RetryAfter = seconds((1 - b.tokens) / lim.RequestsPerSecond)
	}
	r.Current = min(lim.Burst, int(math.Ceil(burst-b.tokens-1e-9)))
	r.ResetAt = now.Add(seconds((burst - b.tokens) / lim.RequestsPerSecond))
	return r
}

// sweep makes room: it drops the buckets that have refilled (assuming the
// limit of the request at hand, a heuristic: a bucket dropped early only
// forgets some spent tokens), and when that frees less than a quarter of
// the shard, all of them.
func (sh *shard) sweep(lim Limit, now time.Time) {
	for k, b := range sh.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*lim.RequestsPerSecond >= float64(lim.Burst) {
			delete(sh.buckets, k)
		}
	}
	if len(sh.buckets) > sh.max*3/4 {
		clear(sh.buckets)
	}
}

// seconds converts a float number of seconds to a Duration, rounding up to
// the nanosecond so a wait is never reported shorter than it is.
func seconds(s float64) time.Duration {
	return time.Duration(math.Ceil(s * float64(time.Second)))
}

// Len returns how many buckets are kept (for tests and metrics).
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
