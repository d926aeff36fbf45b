package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Config is every setting of `gatehouse serve` (docs/api.md §B1). Each one is
// read from its flag, else its GATEHOUSE_* environment variable, else the
// YAML config file, else its default: see settings for the three spellings
// of each. The zero value of a field means its default; Defaults fills them
// in and Validate reports every problem at once.
type Config struct {
	// Addr is the TCP address to listen on; port 0 picks a free port.
	Addr string `json:"addr"`
	// Store is the store DSN: sqlite://<path> or postgres://<url>.
	Store string `json:"store"`
	// AdminToken enables the admin API when set.
	AdminToken string `json:"admin_token"`
	// BootstrapKey, on an empty store, creates tenant "default" (tier
	// enterprise) with this API key.
	BootstrapKey string `json:"bootstrap_key"`
	// Dev, on an empty store without a BootstrapKey, generates a key for
	// tenant "default" and prints it once.
	Dev bool `json:"dev"`
	// LogLevel is the least severe level logged: debug, info, warn, error.
	LogLevel string `json:"log_level"`
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// after SIGTERM/SIGINT.
	ShutdownTimeout Duration `json:"shutdown_timeout"`
	// KeyRotationGrace is how long a rotated API key keeps working
	// (POST /v1/keys/rotate without grace_period_seconds).
	KeyRotationGrace Duration `json:"key_rotation_grace"`
	// MaxBodyBytes bounds a request body; larger ones get 413.
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// Engine holds the decision engine's settings.
	Engine EngineConfig `json:"engine"`
	// Bundle holds the settings of bundles served and read (config_bundle.go).
	Bundle BundleConfig `json:"bundle"`
	// HTTP, RateLimit and Metrics are operating settings (config_ops.go).
	HTTP      HTTPConfig      `json:"http"`
	RateLimit RateLimitConfig `json:"rate_limit"`
	Metrics   MetricsConfig   `json:"metrics"`
	// DecisionLog holds the decision log's settings (config_decisionlog.go).
	DecisionLog DecisionLogConfig `json:"decision_log"`
	// AuditRetention prunes old audit entries (config_retention.go).
	AuditRetention AuditRetentionConfig `json:"audit_retention"`
}

// EngineConfig is the config file's spelling of engine.Config; the engine
// owns the defaults and the validation of these values.
type EngineConfig struct {
	CacheSize                  int      `json:"cache_size"`
	RegexCacheSize             int      `json:"regex_cache_size"`
	EvalTimeout                Duration `json:"eval_timeout"`
	FinancialHardLimit         float64  `json:"financial_hard_limit"`
	FinancialApprovalThreshold float64  `json:"financial_approval_threshold"`
	// MaxConcurrentEvaluations stays "auto" (0) here: its default depends
	// on the machine, so the engine resolves it (config_ops.go).
	MaxConcurrentEvaluations Concurrency `json:"max_concurrent_evaluations"`
	// MaxConcurrentPerTenant stays "auto" (0) too: half of the above.
	MaxConcurrentPerTenant Concurrency `json:"max_concurrent_evaluations_per_tenant"`
	CompileBudget          int         `json:"compile_budget"`
}

// apiConfig returns the API's settings of c.
func (c Config) apiConfig() api.Config {
	return api.Config{AdminToken: c.AdminToken, MaxBodyBytes: c.MaxBodyBytes, Limits: c.apiLimits()}
}

// engineConfig returns c as the engine takes it.
func (c EngineConfig) engineConfig() engine.Config {
	return engine.Config{
		CacheSize:              c.CacheSize,
		RegexCacheSize:         c.RegexCacheSize,
		Timeout:                time.Duration(c.EvalTimeout),
		HardLimit:              c.FinancialHardLimit,
		ApprovalThreshold:      c.FinancialApprovalThreshold,
		MaxConcurrent:          int(c.MaxConcurrentEvaluations),
		MaxConcurrentPerTenant: int(c.MaxConcurrentPerTenant),
		CompileBudget:          c.CompileBudget,
	}
}

// Defaults and bounds of the settings main owns.
const (
	defaultAddr            = "127.0.0.1:8181"
	defaultStore           = "sqlite://./gatehouse.db"
	defaultLogLevel        = "info"
	defaultShutdownTimeout = 15 * time.Second
	maxShutdownTimeout     = 10 * time.Minute
)

// Defaults returns c with every zero field set to its default. The engine's
// defaults come from engine.Config.Defaults, so they have one source.
func (c Config) Defaults() Config {
	if c.Addr == "" {
		c.Addr = defaultAddr
	}
	if c.Store == "" {
		c.Store = defaultStore
	}
	if c.LogLevel == "" {
		c.LogLevel = defaultLogLevel
	}
	if c.KeyRotationGrace == 0 {
		c.KeyRotationGrace = Duration(registry.DefaultRotationGrace)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(defaultShutdownTimeout)
	}
	c.MaxBodyBytes = c.apiConfig().Defaults().MaxBodyBytes
	e := c.Engine.engineConfig().Defaults()
	c.Engine = EngineConfig{
		CacheSize:                  e.CacheSize,
		RegexCacheSize:             e.RegexCacheSize,
		EvalTimeout:                Duration(e.Timeout),
		FinancialHardLimit:         e.HardLimit,
		FinancialApprovalThreshold: e.ApprovalThreshold,
		MaxConcurrentEvaluations:   c.Engine.MaxConcurrentEvaluations,
		MaxConcurrentPerTenant:     c.Engine.MaxConcurrentPerTenant,
		CompileBudget:              e.CompileBudget,
	}
	c.DecisionLog = c.DecisionLog.defaults()
	c.AuditRetention = c.AuditRetention.defaults()
	return c.opsDefaults()
}

// Validate reports every invalid setting of c (after Defaults), each
// naming the setting the way the config file spells it.
func (c Config) Validate() error {
	var errs []error
	if err := checkAddr(c.Addr, true); err != nil {
		errs = append(errs, fmt.Errorf("addr: %w", err))
	}
	if _, _, err := store.ParseDSN(c.Store); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	// The registry checks the rest of the key's form; the prefix is
	// checked here too so a wrong key is reported with the other problems.
	if c.BootstrapKey != "" && !strings.HasPrefix(c.BootstrapKey, registry.KeyPrefix) {
		errs = append(errs, fmt.Errorf("bootstrap_key: must start with %s", registry.KeyPrefix))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("log_level: %w", err))
	}
	if d := time.Duration(c.KeyRotationGrace); d < time.Second || d > registry.MaxRotationGrace {
		errs = append(errs, fmt.Errorf("key_rotation_grace %s: must be between 1s and %s", d, registry.MaxRotationGrace))
	}
	if d := time.Duration(c.ShutdownTimeout); d <= 0 || d > maxShutdownTimeout {
		errs = append(errs, fmt.Errorf("shutdown_timeout %s: must be more than 0 and at most %s", d, maxShutdownTimeout))
	}
	// The API and the engine own the rules of their settings.
	if err := c.apiConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Engine.engineConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Bundle.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.opsValidate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.DecisionLog.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.AuditRetention.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkAddr checks a host:port address; port 0 only when zeroOK.
func checkAddr(addr string, zeroOK bool) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, e.g. 127.0.0.1:8181", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (n == 0 && !zeroOK) {
		return fmt.Errorf("%q: bad port %q", addr, port)
	}
	return nil
}

// parseLevel reads a slog level name (debug, info, warn, error).
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return l, l.UnmarshalText([]byte(s))
	}
	return l, fmt.Errorf("%q: want debug, info, warn or error", s)
}

// Duration is a time.Duration written as a Go duration string ("15s",
// "50ms") in the config file.
type Duration time.Duration

// UnmarshalJSON reads a duration string; sigs.k8s.io/yaml turns YAML into
// JSON first, so this is also how the config file is read.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"15s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// String returns d as a duration string.
func (d Duration) String() string { return time.Duration(d).String() }

// setting is one configuration key in its three spellings: the flag, the
// environment variable and the config file's key. The table below is the
// only place a setting is named, so --help, the loader and the README's
// table cannot disagree.
type setting struct {
	flag   string // without dashes
	env    string
	key    string // YAML key, dotted when nested
	arg    string // what the value looks like in --help
	usage  string
	isBool bool
	// repeatable: each use of the flag appends (list settings).
	repeatable bool
	codec
}

// codec parses a setting's text into its Config field and shows the field.
type codec struct {
	set     func(c *Config, v string) error
	display func(c Config) string // the default, as --help shows it
}

func str(f func(c *Config) *string) codec {
	return codec{
		set:     func(c *Config, v string) error { *f(c) = v; return nil },
		display: func(c Config) string { return *f(&c) },
	}
}

func integer[T int | int64](f func(c *Config) *T) codec {
	return codec{
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%q is not an integer", v)
			}
			*f(c) = T(n)
			return nil
		},
		display: func(c Config) string { return strconv.FormatInt(int64(*f(&c)), 10) },
	}
}

func float(f func(c *Config) *float64) codec {
	return codec{
		set: func(c *Config, v string) error {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("%q is not a number", v)
			}
			*f(c) = n
			return nil
		},
		display: func(c Config) string { return strconv.FormatFloat(*f(&c), 'f', -1, 64) },
	}
}

func duration(f func(c *Config) *Duration) codec {
	return codec{
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration such as 15s", v)
			}
			*f(c) = Duration(d)
			return nil
		},
		display: func(c Config) string { return f(&c).String() },
	}
}

func boolean(f func(c *Config) *bool) codec {
	return codec{
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			*f(c) = b
			return nil
		},
		display: func(c Config) string { return strconv.FormatBool(*f(&c)) },
	}
}

// newSetting returns a setting whose env var is GATEHOUSE_ and the flag
// in upper snake case.
func newSetting(flag, key, arg, usage string, c codec) *setting {
	env := "GATEHOUSE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
	return &setting{flag: flag, env: env, key: key, arg: arg, usage: usage, codec: c}
}

// Settings of `serve`, in --help order.
var (
	setAddr = newSetting("addr", "addr", "host:port",
		"address to listen on; port 0 picks a free port (the log line \"listening\" has the real one)",
		str(func(c *Config) *string { return &c.Addr }))
	setStore = newSetting("store", "store", "dsn",
		"where data is kept: sqlite://<path> (relative sqlite://./g.db or absolute sqlite:///var/lib/g.db) or postgres://user@host:5432/db",
		str(func(c *Config) *string { return &c.Store }))
	setAdminToken = newSetting("admin-token", "admin_token", "token",
		"enables the admin API (/v1/admin) for this bearer token; prefer the env var, flags show in ps",
		str(func(c *Config) *string { return &c.AdminToken }))
	setBootstrapKey = newSetting("bootstrap-key", "bootstrap_key", "nram_...",
		"on an empty store, create tenant \"default\" (tier enterprise) with this API key",
		str(func(c *Config) *string { return &c.BootstrapKey }))
	setDev = func() *setting {
		s := newSetting("dev", "dev", "",
			"development mode: on an empty store without --bootstrap-key, generate a key and print it once on stdout",
			boolean(func(c *Config) *bool { return &c.Dev }))
		s.isBool = true
		return s
	}()
	setLogLevel = newSetting("log-level", "log_level", "level",
		"least severe log level written (JSON on stderr): debug, info, warn, error",
		str(func(c *Config) *string { return &c.LogLevel }))
	setShutdownTimeout = newSetting("shutdown-timeout", "shutdown_timeout", "duration",
		"on SIGTERM/SIGINT, how long in-flight requests may take to finish",
		duration(func(c *Config) *Duration { return &c.ShutdownTimeout }))
	setKeyRotationGrace = newSetting("key-rotation-grace", "key_rotation_grace", "duration",
		"how long a rotated API key keeps working (POST /v1/keys/rotate)",
		duration(func(c *Config) *Duration { return &c.KeyRotationGrace }))
	setMaxBodyBytes = newSetting("max-body-bytes", "max_body_bytes", "n",
		"largest request body accepted; larger ones get 413",
		integer(func(c *Config) *int64 { return &c.MaxBodyBytes }))
	setCacheSize = newSetting("engine-cache-size", "engine.cache_size", "n",
		"prepared queries kept in the engine's LRU (one per tenant, or agent with its own policies, and revision)",
		integer(func(c *Config) *int { return &c.Engine.CacheSize }))
	setRegexCacheSize = newSetting("engine-regex-cache-size", "engine.regex_cache_size", "n",
		"compiled regexes kept across evaluations, all tenants together",
		integer(func(c *Config) *int { return &c.Engine.RegexCacheSize }))
	setEvalTimeout = newSetting("engine-eval-timeout", "engine.eval_timeout", "duration",
		"bound on one evaluation; past it the action is refused with 503 (fail closed)",
		duration(func(c *Config) *Duration { return &c.Engine.EvalTimeout }))
	setHardLimit = newSetting("financial-hard-limit", "engine.financial_hard_limit", "amount",
		"FinancialSafety: amounts at or above this are blocked",
		float(func(c *Config) *float64 { return &c.Engine.FinancialHardLimit }))
	setApprovalThreshold = newSetting("financial-approval-threshold", "engine.financial_approval_threshold", "amount",
		"FinancialSafety: amounts at or above this need approval",
		float(func(c *Config) *float64 { return &c.Engine.FinancialApprovalThreshold }))
	setCompileBudget = newSetting("engine-compile-budget", "engine.compile_budget", "n",
		"largest compile of one tenant, in compile units (~6 µs each); a policy write past it is refused with 400",
		integer(func(c *Config) *int { return &c.Engine.CompileBudget }))
)

// serveSettings lists every setting of serve, in --help order.
var serveSettings = []*setting{
	setAddr, setStore, setAdminToken, setBootstrapKey, setDev, setLogLevel,
	setShutdownTimeout, setKeyRotationGrace, setMaxBodyBytes, setCacheSize, setRegexCacheSize,
	setEvalTimeout, setHardLimit, setApprovalThreshold, setCompileBudget,
	setBundle, setBundleBearerToken, setBundleVerifyKey,
	setBundleSigningKey, setBundleSigningSecretFile, setBundleKeyID,
	setReadHeaderTimeout, setReadTimeout, setWriteTimeout, setIdleTimeout,
	setMaxConcurrentEvaluations, setMaxConcurrentPerTenant,
	setRateLimitFree, setRateLimitStarter, setRateLimitPro, setRateLimitEnterprise,
	setMetricsTenantLabels,
	setDecisionLog, setDecisionLogPath, setDecisionLogMaxSizeMB, setDecisionLogMaxFiles,
	setDecisionLogURL, setDecisionLogBatchSize, setDecisionLogFlushInterval,
	setDecisionLogBufferSize, setDecisionLogMask,
	setAuditRetention, setAuditRetentionFree, setAuditRetentionStarter, setAuditRetentionPro,
	setAuditRetentionEnterprise, setAuditPruneInterval,
}

// envConfig names the variable that may hold the config file's path.
const envConfig = "GATEHOUSE_CONFIG"

// configFlags binds settings to a FlagSet. Flags only record what was
// given; load applies them last, over the environment and the file.
type configFlags struct {
	fs       *flag.FlagSet
	settings []*setting
	file     string
	given    map[string]string
}

// bindConfig registers --config and a flag per setting on fs.
func bindConfig(fs *flag.FlagSet, settings ...*setting) *configFlags {
	cf := &configFlags{fs: fs, settings: settings, given: map[string]string{}}
	fs.StringVar(&cf.file, "config", "", "YAML config file (env "+envConfig+")")
	for _, s := range settings {
		fs.Var(&flagValue{s: s, given: cf.given}, s.flag, s.usage)
	}
	return cf
}

// flagValue records a flag's raw value after checking that it parses.
type flagValue struct {
	s     *setting
	given map[string]string
}

func (v *flagValue) String() string {
	if v == nil || v.s == nil {
		return ""
	}
	return v.given[v.s.flag]
}

func (v *flagValue) Set(raw string) error {
	var scratch Config
	if err := v.s.set(&scratch, raw); err != nil {
		return err
	}
	if prev, ok := v.given[v.s.flag]; ok && v.s.repeatable {
		raw = prev + "," + raw
	}
	v.given[v.s.flag] = raw
	return nil
}

func (v *flagValue) IsBoolFlag() bool { return v.s.isBool }

// load builds the Config: defaults, overlaid by the config file, by the
// environment, then by the flags given (docs/api.md §B1's precedence), and
// validates it. It returns every problem found, not just the first. Only
// the settings bound to the FlagSet are read from the environment, so an
// unrelated variable cannot break a subcommand that does not use it.
func (cf *configFlags) load(lookupEnv func(string) (string, bool)) (Config, error) {
	var c Config
	var errs []error
	path := cf.file
	if path == "" {
		path, _ = lookupEnv(envConfig)
	}
	if path != "" {
		if err := readConfigFile(path, &c); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range cf.settings {
		if v, ok := lookupEnv(s.env); ok && v != "" {
			if err := s.set(&c, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.env, err))
			}
		}
	}
	for _, s := range cf.settings {
		if v, ok := cf.given[s.flag]; ok {
			_ = s.set(&c, v) // checked by flagValue.Set
		}
	}
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// printSettings writes the --help entry of each setting: its flag, what it
// does, and its env var, config-file key and default.
func printSettings(w io.Writer, settings []*setting) {
	def := Config{}.Defaults()
	for _, s := range settings {
		name := "--" + s.flag
		if s.arg != "" {
			name += " " + s.arg
		}
		d := s.display(def)
		if d == "" {
			d = "none"
		}
		fmt.Fprintf(w, "  %s\n      %s\n      env %s · file %s · default %s\n", name, s.usage, s.env, s.key, d)
	}
}
