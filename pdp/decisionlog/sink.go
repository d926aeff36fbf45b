package decisionlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// sink delivers batches of encoded events.
type sink interface {
	// ship delivers one batch: n events, each a JSON object on its own
	// line. A nil error means every event was delivered; otherwise none
	// counts as delivered. It returns when ctx ends at the latest.
	ship(ctx context.Context, lines []byte, n int) error
	// local sinks write at once; remote ones wait for a batch to fill.
	local() bool
	close() error
}

// writerSink writes JSON lines to a writer: the console, or a file that
// lumberjack rotates by size.
type writerSink struct {
	w      io.Writer
	closer io.Closer // nil: not ours to close (stdout, stderr)
	// maxWrite bounds one Write (0: none). lumberjack refuses a write
	// larger than the file's maximum size, so a batch of big events is
	// written in pieces, each ending at a line's end.
	maxWrite int
}

func (s *writerSink) ship(_ context.Context, lines []byte, _ int) error {
	for len(lines) > 0 {
		n := len(lines)
		if s.maxWrite > 0 && n > s.maxWrite {
			// The last line end within the bound; a single line longer
			// than the bound goes alone (and the writer refuses it).
			if i := bytes.LastIndexByte(lines[:s.maxWrite], '\n'); i >= 0 {
				n = i + 1
			} else if i := bytes.IndexByte(lines, '\n'); i >= 0 {
				n = i + 1
			}
		}
		if _, err := s.w.Write(lines[:n]); err != nil {
			return err
		}
		lines = lines[n:]
	}
	return nil
}

func (s *writerSink) local() bool { return true }

func (s *writerSink) close() error {
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}

// newFileSink writes to path, rotating it at maxSizeMB and keeping
// maxFiles rotated files (lumberjack names them path-<timestamp>.ext).
func newFileSink(path string, maxSizeMB, maxFiles int) *writerSink {
	lj := &lumberjack.Logger{Filename: path, MaxSize: maxSizeMB, MaxBackups: maxFiles, LocalTime: false}
	return &writerSink{w: lj, closer: lj, maxWrite: maxSizeMB << 20}
}

// Backoff of the http sink's retries: exponential from backoffMin, capped
// at backoffMax, with jitter (each wait is uniform in [d/2, d]) so
// replicas that failed together do not retry together.
const (
	backoffMin     = 250 * time.Millisecond
	backoffMax     = 30 * time.Second
	requestTimeout = 30 * time.Second
)

// errPermanent marks an upload the endpoint refused for good (a 4xx other
// than 408 and 429): retrying the same batch cannot succeed.
var errPermanent = errors.New("refused by the endpoint")

// httpSink POSTs each batch as a gzipped JSON array, as OPA's decision-log
// plugin uploads to its service's /logs, and retries a failed upload with
// backoff until it succeeds, is refused for good, or ctx ends. While it
// retries the worker reads no more events, so they wait in the buffer,
// and once that is full new ones are dropped: memory stays bounded.
type httpSink struct {
	url    string
	client *http.Client
	gz     *gzip.Writer
	body   bytes.Buffer
	sleep  func(ctx context.Context, d time.Duration) error // tests shorten it
	// onRetry is told about each failed attempt (the logger rate-limits
	// the log line).
	onRetry func(attempt int, err error, wait time.Duration)
}

func newHTTPSink(url string, onRetry func(int, error, time.Duration)) *httpSink {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2
	gz, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // level is valid
	return &httpSink{
		url:     url,
		client:  &http.Client{Transport: tr, Timeout: requestTimeout},
		gz:      gz,
		sleep:   sleepCtx,
		onRetry: onRetry,
	}
}

func (s *httpSink) local() bool { return false }

func (s *httpSink) close() error {
	s.client.CloseIdleConnections()
	return nil
}

func (s *httpSink) ship(ctx context.Context, lines []byte, n int) error {
	if err := s.compress(lines); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := s.post(ctx)
		if err == nil || errors.Is(err, errPermanent) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%d events not sent before shutdown: %w", n, err)
		}
		wait := backoff(attempt)
		var ra retryAfter
		if errors.As(err, &ra) && ra.d > wait {
			wait = min(ra.d, backoffMax)
		}
		if s.onRetry != nil {
			s.onRetry(attempt, err, wait)
		}
		if serr := s.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%d events not sent before shutdown: %w", n, err)
		}
	}
}

// compress writes the batch into s.body as a gzipped JSON array: the
// lines joined with commas. Encoded JSON never holds a raw newline, so
// each newline ends one event.
func (s *httpSink) compress(lines []byte) error {
	s.body.Reset()
	s.gz.Reset(&s.body)
	if _, err := s.gz.Write([]byte{'['}); err != nil {
		return err
	}
	first := true
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		if i < 0 {
			i = len(lines)
		}
		if !first {
			if _, err := s.gz.Write([]byte{','}); err != nil {
				return err
			}
		}
		if _, err := s.gz.Write(lines[:i]); err != nil {
			return err
		}
		first = false
		lines = lines[min(i+1, len(lines)):]
	}
	if _, err := s.gz.Write([]byte{']'}); err != nil {
		return err
	}
	return s.gz.Close()
}

// retryAfter is a retryable answer that said when to come back.
type retryAfter struct {
	status int
	d      time.Duration
}

func (r retryAfter) Error() string {
	return fmt.Sprintf("HTTP %d (retry after %s)", r.status, r.d)
}

func (s *httpSink) post(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(s.body.Bytes()))
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", "gatehouse/"+pdp.Version)
	resp, err := s.client.Do(req)
	if err != nil {
		return err // connection refused, reset, timeout: worth retrying
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	_ = resp.Body.Close()
	switch st := resp.StatusCode; {
	case st >= 200 && st < 300:
		return nil
	case st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable:
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			return retryAfter{status: st, d: time.Duration(secs) * time.Second}
		}
		return fmt.Errorf("HTTP %d", st)
	case st == http.StatusRequestTimeout || st >= 500:
		return fmt.Errorf("HTTP %d", st)
	default:
		return fmt.Errorf("%w: HTTP %d", errPermanent, st)
	}
}

// backoff is the wait before retry number attempt (1-based).
func backoff(attempt int) time.Duration {
	d := backoffMax
	if attempt < 20 {
		d = min(backoffMin<<(attempt-1), backoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
