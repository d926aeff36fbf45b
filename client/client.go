// Package client is a Go client for Gatehouse's Control API (the Novyx
// Control API): policies, actions, approvals, the governance dashboard and
// the audit chain. docs/openapi.yaml describes the same API; the e2e suite
// checks this client's traffic against it. Its types describe the wire
// format on purpose rather than reuse the server's domain types (package
// pdp): a refactor inside the server never changes a client's API, and
// the document, not shared Go code, keeps the two in step.
//
// Every method takes a context and honours its cancellation and deadline.
// A non-2xx answer is returned as a *Error carrying the contract's stable
// code, so callers branch with errors.As (or errors.Is against a *Error
// with only Code set):
//
//	res, err := c.SubmitAction(ctx, client.Action{Action: "send_email"})
//	var apiErr *client.Error
//	if errors.As(err, &apiErr) && apiErr.Code == client.CodeEvaluationUnavailable {
//		// not evaluated: treat as not allowed (fail closed) and retry later
//	}
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error codes of the contract's error envelope that callers commonly
// branch on. The server may send others; Error.Code holds whatever it
// sent.
const (
	CodeUnauthorized           = "UNAUTHORIZED"
	CodeRateLimited            = "RATE_LIMITED"
	CodeValidation             = "VALIDATION_ERROR"
	CodeNotFound               = "NOT_FOUND"
	CodePayloadTooLarge        = "PAYLOAD_TOO_LARGE"
	CodeInternal               = "INTERNAL"
	CodeFeatureRequired        = "novyx_ram.v1.tier.feature_required"
	CodeLimitExceeded          = "novyx_ram.v1.tier.limit_exceeded"
	CodeInvalidPolicy          = "novyx_ram.v1.control.invalid_policy"
	CodePolicyNotFound         = "novyx_ram.v1.control.policy_not_found"
	CodeCannotDeleteBuiltin    = "novyx_ram.v1.control.cannot_delete_builtin"
	CodeEvaluationUnavailable  = "novyx_ram.v1.control.evaluation_unavailable"
	CodeReadOnly               = "novyx_ram.v1.control.read_only"
	CodeActionNotFound         = "actions.not_found"
	CodeInvalidDecision        = "novyx_ram.v1.control.invalid_decision"
	CodeConfirmationRequired   = "novyx_ram.v1.control.confirmation_required"
	CodeApproverNotEligible    = "novyx_ram.v1.control.approver_not_eligible"
	CodeApprovalNotFound       = "novyx_ram.v1.control.approval_not_found"
	CodeApprovalAlreadyDecided = "novyx_ram.v1.control.approval_already_decided"
	CodeApprovalTooEarly       = "novyx_ram.v1.control.approval_too_early"
	CodeInvalidDashboardParam  = "novyx_ram.v1.control.invalid_dashboard_param"
	CodeInvalidViolationsParam = "novyx_ram.v1.control.invalid_violations_param"
	CodeGovernanceUnavailable  = "novyx_ram.v1.control.governance_unavailable"
	CodeForbidden              = "FORBIDDEN"                           // the key lacks the route's scope, or would give more rights than its own
	CodeAgentMismatch          = "novyx_ram.v1.control.agent_mismatch" // an agent-bound key named another agent or step type
)

// Error is a non-2xx answer: the contract's envelope {"error", "code",
// "message", "status"} plus the extra fields some codes carry.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is the envelope's stable code (empty when the body was not an
	// envelope, e.g. from a proxy in between).
	Code string
	// Message is the envelope's human sentence (or the start of a body
	// that was not an envelope).
	Message string
	// Fields are the envelope's extra fields (feature, required_tier,
	// limit, usage, action_id, retry_after_seconds, ...), decoded.
	Fields map[string]any
	// RetryAfter is the Retry-After header (429, 503, approval too early);
	// 0 when absent.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("gatehouse: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("gatehouse: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is makes errors.Is(err, &client.Error{Code: c}) true for an *Error with
// code c (and, if the target sets Status, that status).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return (t.Code == "" || t.Code == e.Code) && (t.Status == 0 || t.Status == e.Status)
}

// Client talks to one Gatehouse server as one API key. It is safe for
// concurrent use.
type Client struct {
	base      *url.URL
	key       string
	hc        *http.Client
	userAgent string
}

// Option configures New.
type Option func(*Client)

// WithHTTPClient sets the http.Client requests go through (default: one
// with a 30 s timeout). Use it for TLS settings, proxies or tracing.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a client for the server at baseURL (e.g.
// "http://127.0.0.1:8181") authenticating with apiKey (nram_...).
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("gatehouse client: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("gatehouse client: base URL %q: want http(s)://host[:port]", baseURL)
	}
	if apiKey == "" {
		return nil, errors.New("gatehouse client: an API key is required")
	}
	c := &Client{base: u, key: apiKey, hc: &http.Client{Timeout: 30 * time.Second}, userAgent: "gatehouse-go-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// maxResponseBytes bounds what the client reads of one answer: the
// largest listing (1000 audit entries) is far below it.
const maxResponseBytes = 32 << 20

// do sends one request and decodes a 2xx JSON answer into out (unless nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	raw, ct, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("gatehouse client: %s %s: unexpected Content-Type %q", method, path, ct)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("gatehouse client: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send sends one request and returns a 2xx answer's body and Content-Type,
// or the *Error of any other.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any) ([]byte, string, error) {
	u := c.base.JoinPath(path)
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, "", fmt.Errorf("gatehouse client: encode request: %w", err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, "", fmt.Errorf("gatehouse client: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("gatehouse client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, "", fmt.Errorf("gatehouse client: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, "", decodeError(resp, raw)
	}
	return raw, resp.Header.Get("Content-Type"), nil
}

// decodeError reads the envelope of a non-2xx answer.
func decodeError(resp *http.Response, raw []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var env map[string]any
	if json.Unmarshal(raw, &env) == nil {
		e.Code, _ = env["code"].(string)
		e.Message, _ = env["message"].(string)
		for k, v := range env {
			switch k {
			case "error", "code", "message", "status":
			default:
				if e.Fields == nil {
					e.Fields = map[string]any{}
				}
				e.Fields[k] = v
			}
		}
	}
	if e.Code == "" && e.Message == "" {
		msg := strings.TrimSpace(string(raw))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		e.Message = msg
	}
	return e
}

// pageQuery adds limit and offset when set.
func pageQuery(q url.Values, limit, offset int) url.Values {
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	return q
}

// timeQuery adds an RFC 3339 bound when t is set.
func timeQuery(q url.Values, name string, t time.Time) {
	if !t.IsZero() {
		q.Set(name, t.UTC().Format(time.RFC3339Nano))
	}
}
