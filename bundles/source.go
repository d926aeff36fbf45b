package bundles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of a Source.
const (
	DefaultPollInterval = 30 * time.Second
	DefaultLongPoll     = 60 * time.Second
)

// SourceConfig says where `gatehouse serve --bundle` reads its bundle.
type SourceConfig struct {
	// Location is a file path, or an http:// or https:// URL of a bundle
	// service (e.g. https://gh.example.com/v1/bundles/acme.tar.gz).
	Location string
	// Verify, if set, requires every bundle to be signed with that key.
	Verify *VerifyConfig
	// Header is sent with every HTTP request, e.g. Authorization.
	Header http.Header
	// Client makes the HTTP requests; default a client without a total
	// timeout (each request gets LongPoll plus a minute).
	Client *http.Client
	// PollInterval is the pause between polls when the server does not
	// long poll, and between reads of a file; default DefaultPollInterval.
	PollInterval time.Duration
	// LongPoll is the wait=N asked of the server; default DefaultLongPoll;
	// negative disables long polling. As OPA does, a Source asks only while
	// the server answers with the long-polling content type.
	LongPoll time.Duration
	// MaxBytes bounds one bundle (see Load); default DefaultMaxBytes.
	MaxBytes int64
	// Logger receives poll failures in Run; default slog.Default().
	Logger *slog.Logger
	// Tenants, when non-nil, are the only tenants this source's bundles may
	// define (CheckTenants): a bundle naming another is refused, so one
	// source can never decide for a tenant another source serves.
	Tenants []string
}

// Source reads a bundle from a file or a bundle service, with the service
// protocol OPA's bundle plugin uses (ETag, If-None-Match, long polling) and
// signature verification. Fetch and Run must not be called concurrently.
type Source struct {
	cfg  SourceConfig
	url  *url.URL // nil for a file
	poll bool     // the server answered in long-polling mode

	mu      sync.Mutex
	etag    string   // of the last bundle, for If-None-Match
	sum     [32]byte // of the last file read
	current *Loaded
}

// NewSource checks cfg and returns its Source; it reads nothing yet.
func NewSource(cfg SourceConfig) (*Source, error) {
	if cfg.Location == "" {
		return nil, errors.New("bundle source: no location")
	}
	if cfg.Verify != nil {
		if _, err := cfg.Verify.opa(); err != nil {
			return nil, fmt.Errorf("bundle source: %w", err)
		}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.LongPoll == 0 {
		cfg.LongPoll = DefaultLongPoll
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Source{cfg: cfg}
	if strings.HasPrefix(cfg.Location, "http://") || strings.HasPrefix(cfg.Location, "https://") {
		u, err := url.Parse(cfg.Location)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("bundle source: bad URL %q", cfg.Location)
		}
		s.url = u
		s.poll = cfg.LongPoll > 0 // as OPA: ask until the server shows it does not
	}
	return s, nil
}

// Current returns the last bundle fetched, or nil before the first.
func (s *Source) Current() *Loaded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Fetch reads the bundle once and returns it with changed true when it
// differs from the last one fetched (a new ETag, or new file bytes);
// otherwise it returns the last one with changed false. Against a server in
// long-polling mode, Fetch may wait up to LongPoll for a change.
func (s *Source) Fetch(ctx context.Context) (l *Loaded, changed bool, err error) {
	if s.url == nil {
		return s.fetchFile()
	}
	return s.fetchURL(ctx)
}

func (s *Source) fetchFile() (*Loaded, bool, error) {
	f, err := os.Open(s.cfg.Location)
	if err != nil {
		return nil, false, fmt.Errorf("bundle file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, s.cfg.MaxBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("bundle file: %w", err)
	}
	sum := sha256.Sum256(data)
	s.mu.Lock()
	if s.current != nil && sum == s.sum {
		defer s.mu.Unlock()
		return s.current, false, nil
	}
	s.mu.Unlock()
	l, err := s.load(bytes.NewReader(data))
	if err != nil {
		return nil, false, fmt.Errorf("bundle file %s: %w", s.cfg.Location, err)
	}
	s.mu.Lock()
	s.sum, s.current = sum, l
	s.mu.Unlock()
	return l, true, nil
}

func (s *Source) load(r io.Reader) (*Loaded, error) {
	b, err := Load(r, s.cfg.Verify, WithMaxBytes(s.cfg.MaxBytes))
	if err != nil {
		return nil, err
	}
	l, err := FromBundle(b)
	if err != nil {
		return nil, err
	}
	if err := CheckTenants(l, s.cfg.Tenants); err != nil {
		return nil, err
	}
	return l, nil
}

func (s *Source) fetchURL(ctx context.Context) (*Loaded, bool, error) {
	s.mu.Lock()
	etag, current := s.etag, s.current
	s.mu.Unlock()

	timeout := time.Minute
	prefer := "modes=snapshot"
	if s.poll {
		prefer += ";wait=" + strconv.FormatInt(int64(s.cfg.LongPoll/time.Second), 10)
		timeout += s.cfg.LongPoll
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url.String(), nil)
	if err != nil {
		return nil, false, err
	}
	for k, vs := range s.cfg.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Prefer", prefer)
	if etag != "" && current != nil {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("bundle download: %w", err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK:
		l, err := s.load(resp.Body)
		if err != nil {
			return nil, false, fmt.Errorf("bundle download %s: %w", redact(s.url), err)
		}
		s.mu.Lock()
		s.etag, s.current = resp.Header.Get("ETag"), l
		s.poll = s.cfg.LongPoll > 0 && resp.Header.Get("Content-Type") == ContentTypeLongPoll
		s.mu.Unlock()
		return l, true, nil
	case http.StatusNotModified:
		return current, false, nil
	default:
		return nil, false, fmt.Errorf("bundle download %s: %s%s", redact(s.url), resp.Status, envelopeMessage(resp.Body))
	}
}

// envelopeMessage returns ": <message>" from an error envelope body, if any.
func envelopeMessage(body io.Reader) string {
	var env struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	data, _ := io.ReadAll(io.LimitReader(body, 4096))
	if json.Unmarshal(data, &env) != nil || env.Message == "" {
		return ""
	}
	return ": " + env.Code + ": " + env.Message
}

// redact drops credentials and the query from u for messages.
func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery = nil, ""
	return c.String()
}

// Run fetches until ctx ends, calling apply with every new bundle, and
// returns nil then. Failures (of a fetch or of apply) are logged and retried
// with backoff, keeping the last good bundle in force. Call Fetch once
// before Run to fail fast at startup.
func (s *Source) Run(ctx context.Context, apply func(*Loaded) error) error {
	failures := 0
	for ctx.Err() == nil {
		start := time.Now()
		l, changed, err := s.Fetch(ctx)
		if err == nil && changed {
			if err = apply(l); err != nil {
				err = fmt.Errorf("apply bundle revision %q: %w", l.Revision, err)
				s.forget() // fetch it again: the next attempt may succeed
			}
		}
		var delay time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			delay = min(time.Second<<min(failures, 6), s.cfg.PollInterval)
			s.cfg.Logger.WarnContext(ctx, "bundle fetch failed", slog.String("location", s.location()),
				slog.Int("failures", failures), slog.Duration("retry_in", delay), slog.Any("error", err))
		default:
			failures = 0
			switch {
			case !s.longPolling():
				delay = s.cfg.PollInterval
			case !changed && time.Since(start) < time.Second:
				// A server that says it long polls but answers at once
				// must not turn this loop into a busy one.
				delay = time.Second
			}
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
	return nil
}

func (s *Source) longPolling() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url != nil && s.poll
}

func (s *Source) forget() {
	s.mu.Lock()
	s.etag, s.sum, s.current = "", [32]byte{}, nil
	s.mu.Unlock()
}

func (s *Source) location() string {
	if s.url != nil {
		return redact(s.url)
	}
	return s.cfg.Location
}
