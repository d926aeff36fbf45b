package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/decisionlog"
)

// DecisionLogConfig is the config file's spelling of decisionlog.Config
// (key decision_log); the decisionlog package owns the defaults and the
// validation of these values.
type DecisionLogConfig struct {
	Sink          string   `json:"sink"`
	Path          string   `json:"path"`
	MaxSizeMB     int      `json:"max_size_mb"`
	MaxFiles      int      `json:"max_files"`
	URL           string   `json:"url"`
	BatchSize     int      `json:"batch_size"`
	FlushInterval Duration `json:"flush_interval"`
	BufferSize    int      `json:"buffer_size"`
	Mask          []string `json:"mask"`
}

// config returns d as the decisionlog package takes it.
func (d DecisionLogConfig) config() decisionlog.Config {
	return decisionlog.Config{
		Sink:          d.Sink,
		Path:          d.Path,
		MaxSizeMB:     d.MaxSizeMB,
		MaxFiles:      d.MaxFiles,
		URL:           d.URL,
		BatchSize:     d.BatchSize,
		FlushInterval: time.Duration(d.FlushInterval),
		BufferSize:    d.BufferSize,
		Mask:          d.Mask,
	}
}

// defaults fills in decisionlog.Config's defaults; the console's default
// path (stdout) is left to the package, so the setting reads "none".
func (d DecisionLogConfig) defaults() DecisionLogConfig {
	c := decisionlog.Config{Sink: d.Sink}.Defaults()
	if d.Sink == "" {
		d.Sink = c.Sink
	}
	for _, f := range []struct{ v, def *int }{
		{&d.MaxSizeMB, &c.MaxSizeMB}, {&d.MaxFiles, &c.MaxFiles}, {&d.BatchSize, &c.BatchSize}, {&d.BufferSize, &c.BufferSize},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	if d.FlushInterval == 0 {
		d.FlushInterval = Duration(c.FlushInterval)
	}
	return d
}

func (d DecisionLogConfig) validate() error {
	return d.config().Defaults().Validate()
}

// newDecisionLog starts the configured decision log (nil when its sink is
// none), counting into obs and warning on logger.
func newDecisionLog(d DecisionLogConfig, obs decisionlog.Observer, logger *slog.Logger, stdout, stderr io.Writer) (*decisionlog.Logger, error) {
	dl, err := decisionlog.New(d.config(), decisionlog.WithObserver(obs), decisionlog.WithLogger(logger), decisionlog.WithConsole(stdout, stderr))
	if err != nil || dl == nil {
		return nil, err
	}
	logger.Info("decision log enabled", "sink", dl.Sink(), "instance_id", dl.InstanceID())
	return dl, nil
}

// closeDecisionLog flushes the decision log after the HTTP server has
// drained (no decision is in flight any more), within timeout.
func closeDecisionLog(dl *decisionlog.Logger, timeout time.Duration, logger *slog.Logger) {
	if dl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := dl.Close(ctx)
	st := dl.Stats()
	attrs := []any{"shipped", st.Shipped, "dropped", st.Dropped, "failed", st.Failed}
	if err != nil {
		logger.Warn("decision log not fully flushed", append(attrs, "error", err)...)
		return
	}
	logger.Info("decision log flushed", attrs...)
}

// Decision-log settings of serve, in --help order.
var (
	setDecisionLog = newSetting("decision-log", "decision_log.sink", "none|console|file|http",
		"ship every decision in OPA's decision-log format: console (JSON lines), file (rotated by size) or http (batched gzip POSTs, like OPA's /logs)",
		str(func(c *Config) *string { return &c.DecisionLog.Sink }))
	setDecisionLogPath = newSetting("decision-log-path", "decision_log.path", "file|stdout|stderr",
		"console: stdout (the default) or stderr; file: the file written (required)",
		str(func(c *Config) *string { return &c.DecisionLog.Path }))
	setDecisionLogMaxSizeMB = newSetting("decision-log-max-size-mb", "decision_log.max_size_mb", "n",
		"file: rotate the file when it reaches this many megabytes",
		integer(func(c *Config) *int { return &c.DecisionLog.MaxSizeMB }))
	setDecisionLogMaxFiles = newSetting("decision-log-max-files", "decision_log.max_files", "n",
		"file: rotated files kept beside the current one; older ones are deleted",
		integer(func(c *Config) *int { return &c.DecisionLog.MaxFiles }))
	setDecisionLogURL = newSetting("decision-log-url", "decision_log.url", "url",
		"http: where batches are POSTed (e.g. http://collector:8080/logs); user:password@ in the URL is sent as basic auth",
		str(func(c *Config) *string { return &c.DecisionLog.URL }))
	setDecisionLogBatchSize = newSetting("decision-log-batch-size", "decision_log.batch_size", "n",
		"most events in one POST (http) or one write (console, file)",
		integer(func(c *Config) *int { return &c.DecisionLog.BatchSize }))
	setDecisionLogFlushInterval = newSetting("decision-log-flush-interval", "decision_log.flush_interval", "duration",
		"http: send a batch that has not filled after this long",
		duration(func(c *Config) *Duration { return &c.DecisionLog.FlushInterval }))
	setDecisionLogBufferSize = newSetting("decision-log-buffer-size", "decision_log.buffer_size", "n",
		"events waiting to be shipped; when full, new events are dropped (gatehouse_decision_logs_dropped_total), never waited for",
		integer(func(c *Config) *int { return &c.DecisionLog.BufferSize }))
	setDecisionLogMask = func() *setting {
		s := newSetting("decision-log-mask", "decision_log.mask", "pointer",
			"JSON pointer erased from every event before it is shipped, e.g. /input/params/password (repeatable or comma-separated; * matches every member)",
			list(func(c *Config) *[]string { return &c.DecisionLog.Mask }))
		s.repeatable = true
		return s
	}()
)
