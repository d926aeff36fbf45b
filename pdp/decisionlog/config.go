package decisionlog

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Sinks: where events go.
const (
	SinkNone    = "none"
	SinkConsole = "console"
	SinkFile    = "file"
	SinkHTTP    = "http"
)

// Console destinations (Config.Path with SinkConsole).
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Defaults and bounds of Config.
const (
	DefaultMaxSizeMB     = 100
	DefaultMaxFiles      = 5
	DefaultBatchSize     = 100
	DefaultFlushInterval = time.Second
	DefaultBufferSize    = 10000

	maxMaxSizeMB     = 1 << 20 // 1 TiB
	maxMaxFiles      = 1000
	maxBatchSize     = 10000
	minFlushInterval = 10 * time.Millisecond
	maxFlushInterval = time.Hour
	maxBufferSize    = 1 << 20
	maxMasks         = 100
	maxMaskLen       = 1024
)

// Config holds the decision log's settings. The zero value of a field
// means its default; Validate reports every problem at once.
type Config struct {
	// Sink is none (the default: nothing is logged), console, file or http.
	Sink string
	// Path is, for console, stdout (the default) or stderr; for file, the
	// file to write (required; rotated files are kept beside it).
	Path string
	// MaxSizeMB is the size at which the file is rotated (default 100).
	MaxSizeMB int
	// MaxFiles is how many rotated files are kept beside the one being
	// written (default 5); older ones are deleted.
	MaxFiles int
	// URL is where the http sink POSTs its batches (required for http),
	// e.g. http://collector:8080/logs. Credentials in the URL are sent as
	// basic auth.
	URL string
	// BatchSize is the most events in one POST (http) or one write
	// (console, file); default 100.
	BatchSize int
	// FlushInterval is how long the http sink waits for a batch to fill
	// before sending what it has (default 1s). Console and file write as
	// soon as the worker has nothing more queued.
	FlushInterval time.Duration
	// BufferSize is how many events may wait for the worker (default
	// 10000); past it, events are dropped and counted.
	BufferSize int
	// Mask lists JSON pointers (RFC 6901) erased from every event before
	// it is shipped, under /input or /result, e.g. /input/params/password.
	// A segment "*" stands for every member of an object or array:
	// /result/violations/*/match.
	Mask []string
	// InstanceID is labels.id (default: a random UUID per process).
	InstanceID string
}

// Enabled reports whether decisions are logged at all.
func (c Config) Enabled() bool { return c.Sink != "" && c.Sink != SinkNone }

// Defaults returns c with every zero field set to its default.
func (c Config) Defaults() Config {
	if c.Sink == "" {
		c.Sink = SinkNone
	}
	if c.Sink == SinkConsole && c.Path == "" {
		c.Path = Stdout
	}
	if c.MaxSizeMB == 0 {
		c.MaxSizeMB = DefaultMaxSizeMB
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = DefaultMaxFiles
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	return c
}

// Validate reports every invalid setting of c (after Defaults), each
// named as the config file spells it (decision_log.<key>).
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("decision_log.%s: "+format, append([]any{key}, a...)...))
	}
	switch c.Sink {
	case SinkNone:
	case SinkConsole:
		if c.Path != Stdout && c.Path != Stderr {
			bad("path", "%q: with sink console, want stdout or stderr", c.Path)
		}
	case SinkFile:
		if strings.TrimSpace(c.Path) == "" {
			bad("path", "required with sink file")
		}
	case SinkHTTP:
		if err := checkURL(c.URL); err != nil {
			bad("url", "%v", err)
		}
	default:
		bad("sink", "%q: want none, console, file or http", c.Sink)
	}
	if c.URL != "" && c.Sink != SinkHTTP {
		bad("url", "applies to sink http only")
	}
	if c.MaxSizeMB < 1 || c.MaxSizeMB > maxMaxSizeMB {
		bad("max_size_mb", "%d: must be 1..%d", c.MaxSizeMB, maxMaxSizeMB)
	}
	if c.MaxFiles < 1 || c.MaxFiles > maxMaxFiles {
		bad("max_files", "%d: must be 1..%d", c.MaxFiles, maxMaxFiles)
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		bad("batch_size", "%d: must be 1..%d", c.BatchSize, maxBatchSize)
	}
	if c.FlushInterval < minFlushInterval || c.FlushInterval > maxFlushInterval {
		bad("flush_interval", "%s: must be %s..%s", c.FlushInterval, minFlushInterval, maxFlushInterval)
	}
	if c.BufferSize < 1 || c.BufferSize > maxBufferSize {
		bad("buffer_size", "%d: must be 1..%d", c.BufferSize, maxBufferSize)
	}
	if len(c.Mask) > maxMasks {
		bad("mask", "%d pointers: at most %d", len(c.Mask), maxMasks)
	}
	for i, m := range c.Mask {
		if _, err := parsePointer(m); err != nil {
			bad(fmt.Sprintf("mask[%d]", i), "%v", err)
		}
	}
	return errors.Join(errs...)
}

// checkURL accepts an absolute http or https URL with a host.
func checkURL(raw string) error {
	if raw == "" {
		return errors.New("required with sink http")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", redact(raw))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL with a host", u.Redacted())
	}
	return nil
}

// redact returns a URL fit for a log line: without its password.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
