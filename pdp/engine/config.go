package engine

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the engine's settings. The zero value of a field means its
// default; Validate reports every problem at once.
type Config struct {
	// CacheSize bounds the prepared-query LRU (entries). Default 10000.
	CacheSize int
	// RegexCacheSize bounds OPA's inter-query value cache, which holds the
	// compiled regexes of all tenants (entries). Default 65536; OPA's own
	// global regex cache holds only 100 and evicts at random. -1 turns the
	// cache off (OPA then uses its global cache); for measurements only.
	RegexCacheSize int
	// Timeout bounds one evaluation. Default 50ms.
	Timeout time.Duration
	// HardLimit and ApprovalThreshold are FinancialSafety's thresholds,
	// published to Rego as data.gatehouse.config.financial_safety.
	// Defaults 100000 and 10000.
	HardLimit         float64
	ApprovalThreshold float64
	// MaxConcurrent bounds the evaluations running at once; past it
	// Evaluate waits for a slot up to Timeout/5, then fails with
	// ErrOverloaded (see slots). Default
	// DefaultMaxConcurrent(), 4 × GOMAXPROCS; -1 is unbounded.
	MaxConcurrent int
	// MaxConcurrentPerTenant bounds the evaluation slots one tenant may
	// hold at once (see slots): past it that tenant's evaluations wait
	// (up to Timeout/5, then ErrOverloaded) while the other slots stay free
	// for other tenants. Default half of MaxConcurrent (at least 1); -1 is no
	// per-tenant bound. Ignored when MaxConcurrent is unbounded.
	MaxConcurrentPerTenant int
	// CompileWorkers bounds the compiles running at once (the compile
	// pool). Default DefaultCompileWorkers(), half of GOMAXPROCS.
	CompileWorkers int
	// CompileBudget bounds one tenant's compile, in compile units (see
	// CompileCost): a policy write after which the tenant would cost more
	// is refused (ErrCompileBudget). Default DefaultCompileBudget.
	CompileBudget int
}

// maxThreshold is the largest financial threshold: FinancialSafety's Rego
// caps parsed amounts there, so that to_number never overflows.
const maxThreshold = 1e300

// Defaults returns c with every zero field set to its default.
func (c Config) Defaults() Config {
	if c.CacheSize == 0 {
		c.CacheSize = 10000
	}
	if c.RegexCacheSize == 0 {
		c.RegexCacheSize = 65536
	}
	if c.Timeout == 0 {
		c.Timeout = 50 * time.Millisecond
	}
	if c.HardLimit == 0 {
		c.HardLimit = 100000
	}
	if c.ApprovalThreshold == 0 {
		c.ApprovalThreshold = 10000
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent()
	}
	if c.MaxConcurrentPerTenant == 0 {
		c.MaxConcurrentPerTenant = max(1, c.MaxConcurrent/2)
	}
	if c.CompileWorkers == 0 {
		c.CompileWorkers = DefaultCompileWorkers()
	}
	if c.CompileBudget == 0 {
		c.CompileBudget = DefaultCompileBudget
	}
	return c
}

// Validate reports every invalid setting of c (after Defaults).
func (c Config) Validate() error {
	var errs []error
	if c.CacheSize < 1 || c.CacheSize > 1<<20 {
		errs = append(errs, fmt.Errorf("engine cache size %d: must be 1..1048576", c.CacheSize))
	}
	if c.RegexCacheSize < -1 || c.RegexCacheSize == 0 || c.RegexCacheSize > 1<<24 {
		errs = append(errs, fmt.Errorf("engine regex cache size %d: must be 1..16777216", c.RegexCacheSize))
	}
	if c.Timeout < 0 || c.Timeout > time.Minute {
		errs = append(errs, fmt.Errorf("engine timeout %s: must be between 0 and 1m", c.Timeout))
	}
	if c.HardLimit <= 0 || c.ApprovalThreshold <= 0 {
		errs = append(errs, errors.New("financial thresholds must be positive"))
	} else if c.HardLimit > maxThreshold {
		// The library compares amounts beyond 10^300 as 10^300.
		errs = append(errs, fmt.Errorf("financial hard limit %v: must be at most 1e300", c.HardLimit))
	} else if c.ApprovalThreshold > c.HardLimit {
		errs = append(errs, fmt.Errorf("financial approval threshold %v exceeds hard limit %v", c.ApprovalThreshold, c.HardLimit))
	}
	if c.MaxConcurrent < -1 || c.MaxConcurrent > maxMaxConcurrent {
		errs = append(errs, fmt.Errorf("engine max concurrent evaluations %d: must be -1 (unbounded) or 1..%d", c.MaxConcurrent, maxMaxConcurrent))
	}
	if c.MaxConcurrentPerTenant < -1 || c.MaxConcurrentPerTenant > maxMaxConcurrent {
		errs = append(errs, fmt.Errorf("engine max concurrent evaluations per tenant %d: must be -1 (unbounded) or 1..%d", c.MaxConcurrentPerTenant, maxMaxConcurrent))
	}
	// 0 (the default, resolved by Defaults) passes for these two.
	if c.CompileWorkers < 0 || c.CompileWorkers > maxCompileWorkers {
		errs = append(errs, fmt.Errorf("engine compile workers %d: must be 1..%d", c.CompileWorkers, maxCompileWorkers))
	}
	if c.CompileBudget < 0 {
		errs = append(errs, fmt.Errorf("engine compile budget %d: must be positive", c.CompileBudget))
	}
	return errors.Join(errs...)
}

// ConfigData returns the data.gatehouse.config document for c; bundles
// publish the same document so a stock OPA uses the same thresholds.
func (c Config) ConfigData() map[string]any {
	return map[string]any{
		"financial_safety": map[string]any{
			"hard_limit":         c.HardLimit,
			"approval_threshold": c.ApprovalThreshold,
		},
	}
}
