package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/retention"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// AuditRetentionConfig is audit retention (README "Audit retention"):
// off by default; when on, each tier's entries older than its period are
// pruned every PruneInterval.
type AuditRetentionConfig struct {
	Enabled       bool     `json:"enabled"`
	Free          Days     `json:"free"`
	Starter       Days     `json:"starter"`
	Pro           Days     `json:"pro"`
	Enterprise    Days     `json:"enterprise"`
	PruneInterval Duration `json:"prune_interval"`
}

const defaultPruneInterval = time.Hour

func (c AuditRetentionConfig) defaults() AuditRetentionConfig {
	set := func(d *Days, t store.Tier) {
		if *d == 0 {
			*d = Days(retention.DefaultPeriods[t])
		}
	}
	set(&c.Free, store.TierFree)
	set(&c.Starter, store.TierStarter)
	set(&c.Pro, store.TierPro)
	set(&c.Enterprise, store.TierEnterprise)
	if c.PruneInterval == 0 {
		c.PruneInterval = Duration(defaultPruneInterval)
	}
	return c
}

func (c AuditRetentionConfig) validate() error {
	var errs []error
	for name, d := range map[string]Days{"free": c.Free, "starter": c.Starter, "pro": c.Pro, "enterprise": c.Enterprise} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("audit_retention.%s: must not be negative", name))
		}
	}
	if d := time.Duration(c.PruneInterval); d < time.Second || d > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("audit_retention.prune_interval %s: must be from 1s to 168h", d))
	}
	return errors.Join(errs...)
}

// periods returns the retention period per tier.
func (c AuditRetentionConfig) periods() map[store.Tier]time.Duration {
	return map[store.Tier]time.Duration{
		store.TierFree: time.Duration(c.Free), store.TierStarter: time.Duration(c.Starter),
		store.TierPro: time.Duration(c.Pro), store.TierEnterprise: time.Duration(c.Enterprise),
	}
}

// Days is a period written as days ("30d") or a Go duration ("36h").
type Days time.Duration

func parseDays(s string) (Days, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of days such as 30d", s)
		}
		return Days(time.Duration(v) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a period such as 30d or 36h", s)
	}
	return Days(d), nil
}

// String writes whole days as "30d".
func (d Days) String() string {
	if v := time.Duration(d); v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	return time.Duration(d).String()
}

// UnmarshalJSON reads "30d" or a duration string.
func (d *Days) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a period such as \"30d\", got %s", b)
	}
	v, err := parseDays(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes d as String does.
func (d Days) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func days(f func(c *Config) *Days) codec {
	return codec{
		set: func(c *Config, v string) error {
			d, err := parseDays(v)
			if err != nil {
				return err
			}
			*f(c) = d
			return nil
		},
		display: func(c Config) string { return f(&c).String() },
	}
}

// Settings of audit retention.
var (
	setAuditRetention = func() *setting {
		s := newSetting("audit-retention", "audit_retention.enabled", "",
			"prune audit entries older than the tenant's tier's retention period (off by default: see README \"Audit retention\")",
			boolean(func(c *Config) *bool { return &c.AuditRetention.Enabled }))
		s.isBool = true
		return s
	}()
	setAuditRetentionFree = newSetting("audit-retention-free", "audit_retention.free", "period",
		"audit retention of free tenants (days such as 7d, or a duration)",
		days(func(c *Config) *Days { return &c.AuditRetention.Free }))
	setAuditRetentionStarter = newSetting("audit-retention-starter", "audit_retention.starter", "period",
		"audit retention of starter tenants",
		days(func(c *Config) *Days { return &c.AuditRetention.Starter }))
	setAuditRetentionPro = newSetting("audit-retention-pro", "audit_retention.pro", "period",
		"audit retention of pro tenants",
		days(func(c *Config) *Days { return &c.AuditRetention.Pro }))
	setAuditRetentionEnterprise = newSetting("audit-retention-enterprise", "audit_retention.enterprise", "period",
		"audit retention of enterprise tenants",
		days(func(c *Config) *Days { return &c.AuditRetention.Enterprise }))
	setAuditPruneInterval = newSetting("audit-prune-interval", "audit_retention.prune_interval", "duration",
		"how often retention prunes, when on",
		duration(func(c *Config) *Duration { return &c.AuditRetention.PruneInterval }))
)

// startRetention runs the pruner in the background when retention is on.
func startRetention(ctx context.Context, c AuditRetentionConfig, st store.Store, logger *slog.Logger, bg *sync.WaitGroup) error {
	if !c.Enabled {
		return nil
	}
	g, ok := st.(store.GovernanceStore)
	if !ok {
		return errors.New("audit_retention: the store keeps no audit chain")
	}
	a, ok := store.Archive(g)
	if !ok {
		return errors.New("audit_retention: the store cannot prune its audit chain")
	}
	p := &retention.Pruner{Store: g, Archive: a, Periods: c.periods(), Now: time.Now, Log: logger}
	logger.Info("audit retention on", "free", c.Free.String(), "starter", c.Starter.String(), "pro", c.Pro.String(),
		"enterprise", c.Enterprise.String(), "prune_interval", c.PruneInterval.String())
	bg.Go(func() { p.Run(ctx, time.Duration(c.PruneInterval)) })
	return nil
}
