package decisionlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Observer is told how many events were shipped (delivered to the sink),
// dropped (the buffer was full) and failed (accepted but not delivered:
// the sink refused them, or shutdown came first); pdp/metrics implements
// it. DecisionLogsDropped runs on the decision's goroutine, so it must be
// fast (an atomic add) and safe for concurrent use.
type Observer interface {
	DecisionLogsShipped(n int)
	DecisionLogsDropped(n int)
	DecisionLogsFailed(n int)
}

// DropLogInterval is the least time between two log lines about dropped
// events, and between two about failed uploads.
const DropLogInterval = 10 * time.Second

// closeGrace is how long Close waits for a sink still writing after its
// deadline (a console whose reader stopped reading) before giving up.
const closeGrace = time.Second

// Option configures a Logger.
type Option func(*Logger)

// WithObserver sets who counts shipped, dropped and failed events.
func WithObserver(o Observer) Option { return func(l *Logger) { l.obs = o } }

// WithLogger sets where the logger's own warnings go (default: nowhere).
func WithLogger(log *slog.Logger) Option { return func(l *Logger) { l.log = log } }

// WithConsole sets the writers of the console sink's stdout and stderr
// (default os.Stdout and os.Stderr).
func WithConsole(stdout, stderr io.Writer) Option {
	return func(l *Logger) { l.stdout, l.stderr = stdout, stderr }
}

// Logger ships decision-log events. Log is safe for concurrent use and
// never blocks; Close flushes. A nil *Logger logs nothing.
type Logger struct {
	cfg        Config
	ch         chan *record
	sink       sink
	mask       *masker
	labels     map[string]string
	labelsJSON []byte // labels, encoded once
	obs        Observer
	log        *slog.Logger

	stdout, stderr io.Writer

	closed    atomic.Bool
	stop      chan struct{} // closed by Close: drain and exit
	done      chan struct{} // closed when the worker has exited
	ctx       context.Context
	cancel    context.CancelFunc // ends uploads in progress (Close's deadline)
	closeOnce sync.Once

	shipped, dropped, failed atomic.Int64
	// Drops are logged from Log, so their rate limit is atomic.
	nextDropLog  atomic.Int64 // unix nanoseconds
	dropReported atomic.Int64
	logEvery     time.Duration

	// The worker's own state.
	buf         bytes.Buffer
	line        []byte // one event, reused
	n           int    // events in buf
	nextFailLog time.Time
	failsLogged int64
}

// New returns the logger cfg describes and starts its worker, or nil
// (which logs nothing) when cfg.Sink is none. The file sink opens its file
// on the first write.
func New(cfg Config, opts ...Option) (*Logger, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	mask, err := newMasker(cfg.Mask)
	if err != nil {
		return nil, err // Validate parsed them already
	}
	l := &Logger{
		cfg:      cfg,
		ch:       make(chan *record, cfg.BufferSize),
		mask:     mask,
		log:      slog.New(slog.DiscardHandler),
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		logEvery: DropLogInterval,
	}
	for _, o := range opts {
		o(l)
	}
	if cfg.InstanceID == "" {
		l.cfg.InstanceID = newUUID()
	}
	l.labels = map[string]string{"id": l.cfg.InstanceID, "version": pdp.Version, "type": LabelType}
	if l.labelsJSON, err = marshal(l.labels); err != nil {
		return nil, err
	}
	switch cfg.Sink {
	case SinkConsole:
		w := l.stdout
		if cfg.Path == Stderr {
			w = l.stderr
		}
		l.sink = &writerSink{w: w}
	case SinkFile:
		l.sink = newFileSink(cfg.Path, cfg.MaxSizeMB, cfg.MaxFiles)
	case SinkHTTP:
		l.sink = newHTTPSink(cfg.URL, l.retrying)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.run()
	return l, nil
}

// InstanceID is labels.id of every event.
func (l *Logger) InstanceID() string {
	if l == nil {
		return ""
	}
	return l.cfg.InstanceID
}

// Sink is the configured sink's name ("none" for a nil Logger).
func (l *Logger) Sink() string {
	if l == nil {
		return SinkNone
	}
	return l.cfg.Sink
}

// Stats are the logger's counts since it started.
type Stats struct {
	Shipped, Dropped, Failed int64
	// Buffered is how many events wait for the worker now.
	Buffered int
}

// Stats returns the counts so far.
func (l *Logger) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	return Stats{Shipped: l.shipped.Load(), Dropped: l.dropped.Load(), Failed: l.failed.Load(), Buffered: len(l.ch)}
}

// Log queues one decision. It never blocks and does no encoding: when the
// buffer is full, or the logger is closed, the event is dropped and
// counted. ctx is only read for its span's trace and span ids.
func (l *Logger) Log(ctx context.Context, d Decision) {
	if l == nil {
		return
	}
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	r := &record{Decision: d}
	if ctx != nil {
		r.span = trace.SpanContextFromContext(ctx)
	}
	if l.closed.Load() {
		l.drop()
		return
	}
	select {
	case l.ch <- r:
	default:
		l.drop()
	}
}

// drop counts one dropped event and logs about drops, at most once per
// logEvery.
func (l *Logger) drop() {
	n := l.dropped.Add(1)
	if l.obs != nil {
		l.obs.DecisionLogsDropped(1)
	}
	now := time.Now().UnixNano()
	next := l.nextDropLog.Load()
	if now < next || !l.nextDropLog.CompareAndSwap(next, now+int64(l.logEvery)) {
		return
	}
	prev := l.dropReported.Swap(n)
	l.log.Warn("decision log buffer full: events dropped",
		slog.Int64("dropped", n-prev), slog.Int64("dropped_total", n),
		slog.Int("buffer_size", l.cfg.BufferSize), slog.String("sink", l.cfg.Sink))
}

// Close stops accepting events, ships what is buffered, and closes the
// sink. When ctx ends first, uploads in progress are abandoned and what
// was not shipped counts as failed.
func (l *Logger) Close(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.stop)
	})
	var errs []error
	select {
	case <-l.done:
	case <-ctx.Done():
		l.cancel()
		errs = append(errs, fmt.Errorf("decision log: flush cut short: %w", context.Cause(ctx)))
		select {
		case <-l.done:
		case <-time.After(closeGrace):
			return errors.Join(append(errs, errors.New("decision log: the sink is still writing; giving up"))...)
		}
	}
	l.cancel()
	// Events queued after the worker's last look: accepted, never shipped.
	for n := 0; ; n++ {
		select {
		case <-l.ch:
			continue
		default:
		}
		if n > 0 {
			l.countFailed(n)
		}
		break
	}
	if err := l.sink.close(); err != nil {
		errs = append(errs, fmt.Errorf("decision log: close %s sink: %w", l.cfg.Sink, err))
	}
	return errors.Join(errs...)
}

// run is the worker: it takes events from the buffer, encodes them into
// batches and ships them, until Close.
func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.cfg.FlushInterval)
	defer tick.Stop()
	local := l.sink.local()
	for {
		select {
		case r := <-l.ch:
			l.add(r)
			if local {
				l.takeQueued()
				l.flush()
			} else if l.n >= l.cfg.BatchSize {
				l.flush()
			}
		case <-tick.C:
			l.flush()
		case <-l.stop:
			for {
				select {
				case r := <-l.ch:
					l.add(r)
					if l.n >= l.cfg.BatchSize {
						l.flush()
					}
					continue
				default:
				}
				break
			}
			l.flush()
			return
		}
	}
}

// takeQueued adds what is queued now, up to a batch, without waiting.
func (l *Logger) takeQueued() {
	for l.n < l.cfg.BatchSize {
		select {
		case r := <-l.ch:
			l.add(r)
		default:
			return
		}
	}
}

// add encodes r onto the batch; an event that cannot be encoded fails.
func (l *Logger) add(r *record) {
	if err := l.encode(r); err != nil {
		l.countFailed(1)
		l.warnFailed("decision log event could not be encoded", err, 1)
		return
	}
	l.n++
}

// encode appends r as an event line to the batch.
func (l *Logger) encode(r *record) error {
	ev := Event{
		Labels:      l.labels,
		DecisionID:  r.ID,
		Path:        Path,
		Input:       r.Input,
		RequestedBy: r.RequestedBy,
		Timestamp:   r.Time.UTC(),
		TraceID:     r.TraceID,
	}
	if r.span.IsValid() {
		ev.TraceID, ev.SpanID = r.span.TraceID().String(), r.span.SpanID().String()
	}
	if r.TenantID != "" {
		ev.Custom = map[string]any{"tenant_id": r.TenantID}
	}
	if r.Result != nil {
		raw, ok := r.Result.(json.RawMessage)
		if !ok {
			var err error
			if raw, err = marshal(r.Result); err != nil {
				return fmt.Errorf("result: %w", err)
			}
		}
		ev.Result = raw
	}
	vs := r.Violations
	if vs == nil {
		vs = violationsOf(ev.Result)
	}
	ev.RuleLabels = ruleLabels(vs)
	var err error
	if ev.Erased, err = apply(l.mask.input, &ev.Input, ev.Erased); err != nil {
		return fmt.Errorf("mask input: %w", err)
	}
	if ev.Erased, err = apply(l.mask.result, &ev.Result, ev.Erased); err != nil {
		return fmt.Errorf("mask result: %w", err)
	}
	line, err := appendEvent(l.line[:0], l.labelsJSON, &ev)
	if err != nil {
		return err // nothing of the event is in the batch
	}
	l.line = line
	l.buf.Write(line)
	l.buf.WriteByte('\n')
	return nil
}

// flush ships the batch.
func (l *Logger) flush() {
	if l.n == 0 {
		return
	}
	n := l.n
	err := l.sink.ship(l.ctx, l.buf.Bytes(), n)
	l.n = 0
	l.buf.Reset()
	if l.buf.Cap() > 8<<20 {
		l.buf = bytes.Buffer{} // one huge batch must not pin its memory
	}
	if err != nil {
		l.countFailed(n)
		l.warnFailed("decision log events not shipped", err, n)
		return
	}
	l.shipped.Add(int64(n))
	if l.obs != nil {
		l.obs.DecisionLogsShipped(n)
	}
}

func (l *Logger) countFailed(n int) {
	l.failed.Add(int64(n))
	if l.obs != nil {
		l.obs.DecisionLogsFailed(n)
	}
}

// warnFailed logs a failure, at most once per logEvery (on the worker).
func (l *Logger) warnFailed(msg string, err error, n int) {
	now := time.Now()
	if now.Before(l.nextFailLog) {
		return
	}
	l.nextFailLog = now.Add(l.logEvery)
	total := l.failed.Load()
	l.log.Warn(msg, slog.String("sink", l.cfg.Sink), slog.Int("events", n),
		slog.Int64("failed_since_last_log", total-l.failsLogged), slog.Int64("failed_total", total),
		slog.Any("error", err))
	l.failsLogged = total
}

// retrying logs a failed upload attempt that will be retried, at most
// once per logEvery (the http sink calls it on the worker).
func (l *Logger) retrying(attempt int, err error, wait time.Duration) {
	now := time.Now()
	if now.Before(l.nextFailLog) {
		return
	}
	l.nextFailLog = now.Add(l.logEvery)
	l.log.Warn("decision log upload failed; retrying",
		slog.String("url", redact(l.cfg.URL)), slog.Int("attempt", attempt),
		slog.String("retry_in", wait.String()), slog.Int("buffered", len(l.ch)), slog.Any("error", err))
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// NewID returns a random decision id (a UUID, as OPA's decision ids are).
func NewID() string { return newUUID() }
