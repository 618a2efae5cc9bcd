// Package client is a small typed Go client for Elevate's HTTP API (package
// api): one method per endpoint, taking and returning the workflow, store
// and audit types the server itself uses, so the two cannot drift apart.
// An error answer comes back as *APIError.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/store"
	"github.com/elevatepdp/elevate/internal/workflow"
)

const (
	// DefaultTimeout bounds a whole call when the caller's http.Client has
	// no timeout of its own: a hung server must not hang a script.
	DefaultTimeout = 30 * time.Second
	// MaxAnswerBytes bounds what is read of an answer, so a broken or
	// hostile server cannot make the client hold unbounded memory. Audit
	// listings are the largest answers; they are capped by --limit.
	MaxAnswerBytes = 16 << 20
)

// APIError is an error answer of the API: its HTTP status and the body's
// stable code, message and details (policy violations, invalid values).
type APIError struct {
	Status  int
	Code    string
	Message string
	Errors  []string
}

func (e *APIError) Error() string {
	msg := e.Code + ": " + e.Message
	if len(e.Errors) > 0 {
		msg += " (" + strings.Join(e.Errors, "; ") + ")"
	}
	return msg
}

// Client calls one Elevate server with one bearer token. It is safe for
// concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	// err is why the client cannot be used (a bad server address, a token
	// that would go out in clear text). New has no error result, so every
	// call returns it instead, before anything is sent.
	err error
}

// New returns a client of the server at server (such as
// https://elevate.example.com, or with a path prefix behind a proxy) that
// authenticates with token. httpClient may be nil; its Timeout is set to
// DefaultTimeout when it has none, and redirects are never followed, so the
// token is only ever sent to the server given here. A token is refused
// over plain http except to a loopback address.
func New(server, token string, httpClient *http.Client) *Client {
	hc := &http.Client{}
	if httpClient != nil {
		copied := *httpClient
		hc = &copied
	}
	if hc.Timeout == 0 {
		hc.Timeout = DefaultTimeout
	}
	// The API never redirects; following one could carry the token to
	// another scheme or host (Go keeps Authorization on same-host hops,
	// https to http included).
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	base, err := parseServer(server, token)
	return &Client{base: base, token: token, http: hc, err: err}
}

// Err reports why the client cannot be used (a bad server address, a
// token that would go out in clear text), so a caller can tell a mistake in
// its configuration from a failed call before making one.
func (c *Client) Err() error { return c.err }

// String names the server only, so printing a Client never shows its token.
func (c *Client) String() string {
	if c.base == nil {
		return "elevate client (no server)"
	}
	return "elevate client of " + c.base.String()
}

// GoString keeps %#v from printing the token as well.
func (c *Client) GoString() string { return c.String() }

func parseServer(server, token string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(server))
	if err != nil {
		// Not echoed: a mistyped address may hold a password.
		return nil, errors.New("the server address is not a URL such as https://elevate.example.com")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("server %q: the address must start with https:// (or http:// for a loopback address)", server)
	case u.Host == "":
		return nil, fmt.Errorf("server %q has no host", server)
	case u.User != nil:
		// Credentials in the address would end up in error messages.
		return nil, fmt.Errorf("server %q: put no user or password in the address; use a token", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("server %q: the address cannot have a query or fragment", server)
	case u.Scheme == "http" && token != "" && !loopback(u.Hostname()):
		return nil, fmt.Errorf("refusing to send a bearer token over plain http to %s: use https, or http only to a loopback address such as 127.0.0.1", u.Host)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// loopback reports whether host is this machine without asking DNS, whose
// answer an attacker on the network may control.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// call sends a request and decodes a success answer into out (when not
// nil). An error answer is an *APIError.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	if c.err != nil {
		return c.err
	}
	// path is already escaped (ids go through url.PathEscape), so it is
	// joined as text: through url.URL.Path it would be escaped twice.
	target := c.base.String() + path
	if q := query.Encode(); q != "" {
		target += "?" + q
	}
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "elevate-client")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error names the method and URL, never the headers.
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if len(raw) > MaxAnswerBytes {
		return fmt.Errorf("%s %s: the answer is larger than %d bytes", method, path, MaxAnswerBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answerError(resp, raw)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what Elevate sends: %w", method, path, err)
	}
	return nil
}

// answerError turns an error answer into an *APIError. One without
// Elevate's body (a proxy's 502 page) gets a code from its status.
func answerError(resp *http.Response, raw []byte) error {
	var body struct {
		Code    string   `json:"code"`
		Message string   `json:"message"`
		Errors  []string `json:"errors"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Code == "" {
		return &APIError{
			Status:  resp.StatusCode,
			Code:    "http_" + strconv.Itoa(resp.StatusCode),
			Message: fmt.Sprintf("the server answered %s without an Elevate error body", resp.Status),
		}
	}
	return &APIError{Status: resp.StatusCode, Code: body.Code, Message: body.Message, Errors: body.Errors}
}

// Roles lists the roles the policy defines, by id.
func (c *Client) Roles(ctx context.Context) ([]workflow.Role, error) {
	var out struct {
		Roles []workflow.Role `json:"roles"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/roles", nil, nil, &out)
	return out.Roles, err
}

// MyRoles returns the caller's eligible, active and pending roles.
func (c *Client) MyRoles(ctx context.Context) (workflow.MyRoles, error) {
	var out workflow.MyRoles
	err := c.call(ctx, http.MethodGet, "/v1/me/roles", nil, nil, &out)
	return out, err
}

// CreateAssignment makes a principal eligible for, or gives it, a role.
func (c *Client) CreateAssignment(ctx context.Context, r workflow.AssignmentRequest) (store.Assignment, error) {
	var out store.Assignment
	err := c.call(ctx, http.MethodPost, "/v1/assignments", nil, r, &out)
	return out, err
}

// AssignmentQuery selects assignments; empty fields match everything.
type AssignmentQuery struct {
	Principal string
	Role      string
	State     workflow.AssignmentState
}

// Assignments lists assignments: everyone's for admins, the caller's own
// otherwise.
func (c *Client) Assignments(ctx context.Context, q AssignmentQuery) ([]store.Assignment, error) {
	var out struct {
		Assignments []store.Assignment `json:"assignments"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/assignments",
		values("principal", q.Principal, "role", q.Role, "state", string(q.State)), nil, &out)
	return out.Assignments, err
}

// DeleteAssignment removes an assignment and returns it with the live
// activations its removal revoked.
func (c *Client) DeleteAssignment(ctx context.Context, id string) (store.Assignment, []store.Activation, error) {
	var out struct {
		Assignment store.Assignment   `json:"assignment"`
		Revoked    []store.Activation `json:"revoked"`
	}
	err := c.call(ctx, http.MethodDelete, "/v1/assignments/"+url.PathEscape(id), nil, nil, &out)
	return out.Assignment, out.Revoked, err
}

// Activate asks to activate an eligible role. The answer is live, pending
// approval, or scheduled.
func (c *Client) Activate(ctx context.Context, r workflow.ActivationRequest) (store.Activation, error) {
	var out store.Activation
	err := c.call(ctx, http.MethodPost, "/v1/activations", nil, r, &out)
	return out, err
}

// ActivationQuery selects activations; empty fields match everything.
type ActivationQuery struct {
	Principal string
	Status    store.Status
}

// Activations lists activations: everyone's for admins, the caller's own
// otherwise.
func (c *Client) Activations(ctx context.Context, q ActivationQuery) ([]store.Activation, error) {
	var out struct {
		Activations []store.Activation `json:"activations"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/activations",
		values("principal", q.Principal, "status", string(q.Status)), nil, &out)
	return out.Activations, err
}

// Activation returns one activation.
func (c *Client) Activation(ctx context.Context, id string) (store.Activation, error) {
	var out store.Activation
	err := c.call(ctx, http.MethodGet, "/v1/activations/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// Approvals lists the pending requests the caller may decide.
func (c *Client) Approvals(ctx context.Context) ([]store.Activation, error) {
	var out struct {
		Activations []store.Activation `json:"activations"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/approvals", nil, nil, &out)
	return out.Activations, err
}

// Approve adds the caller's approval to a pending request.
func (c *Client) Approve(ctx context.Context, id, justification string) (store.Activation, error) {
	return c.act(ctx, id, "approve", justification)
}

// Deny ends a pending request.
func (c *Client) Deny(ctx context.Context, id, justification string) (store.Activation, error) {
	return c.act(ctx, id, "deny", justification)
}

// Cancel withdraws the caller's own pending or scheduled request.
func (c *Client) Cancel(ctx context.Context, id, justification string) (store.Activation, error) {
	return c.act(ctx, id, "cancel", justification)
}

// Deactivate ends a live elevation early.
func (c *Client) Deactivate(ctx context.Context, id, justification string) (store.Activation, error) {
	return c.act(ctx, id, "deactivate", justification)
}

// Extend lengthens the caller's live elevation.
func (c *Client) Extend(ctx context.Context, id string, r workflow.ExtendRequest) (store.Activation, error) {
	var out store.Activation
	err := c.call(ctx, http.MethodPost, "/v1/activations/"+url.PathEscape(id)+"/extend", nil, r, &out)
	return out, err
}

func (c *Client) act(ctx context.Context, id, action, justification string) (store.Activation, error) {
	var out store.Activation
	body := struct {
		Justification string `json:"justification"`
	}{justification}
	err := c.call(ctx, http.MethodPost, "/v1/activations/"+url.PathEscape(id)+"/"+action, nil, body, &out)
	return out, err
}

// EnrollTOTP gives the caller a new TOTP secret. A first enrolment needs
// the invite an administrator issued (r.Invite); a caller already enrolled
// may instead prove the current factor (r.TOTP).
func (c *Client) EnrollTOTP(ctx context.Context, r workflow.EnrollRequest) (identity.Enrollment, error) {
	var out identity.Enrollment
	err := c.call(ctx, http.MethodPost, "/v1/mfa/totp/enroll", nil, r, &out)
	return out, err
}

// InviteTOTP issues a single-use TOTP enrolment invite for principal (an
// administrator's call); its code is in this answer only.
func (c *Client) InviteTOTP(ctx context.Context, principal string) (identity.Invite, error) {
	var out identity.Invite
	body := struct {
		Principal string `json:"principal"`
	}{principal}
	err := c.call(ctx, http.MethodPost, "/v1/mfa/totp/invites", nil, body, &out)
	return out, err
}

// ResetTOTP removes principal's TOTP secret (an administrator's call).
func (c *Client) ResetTOTP(ctx context.Context, principal string) error {
	return c.call(ctx, http.MethodDelete, "/v1/mfa/totp/"+url.PathEscape(principal), nil, nil, nil)
}

// Authorize asks whether a subject (the caller when empty) may take an
// action at a scope. A denial is a Decision with Allow false, not an error.
func (c *Client) Authorize(ctx context.Context, r workflow.AuthorizeRequest) (workflow.Decision, error) {
	var out workflow.Decision
	err := c.call(ctx, http.MethodPost, "/v1/authorize", nil, r, &out)
	return out, err
}

// Audit reads audit events: all of them for admins, the caller's own
// otherwise; with f.Limit, at most that many. It follows the server's
// pages, so it returns every event that passes f however many there are.
func (c *Client) Audit(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	events := []audit.Event{}
	err := c.AuditPages(ctx, f, func(p AuditPage) error {
		events = append(events, p.Events...)
		return nil
	})
	if f.Limit > 0 && len(events) > f.Limit {
		events = events[:f.Limit]
	}
	return events, err
}

// AuditPage is one page of the audit trail (GET /v1/audit).
type AuditPage struct {
	Events []audit.Event `json:"events"`
	// NextAfterSeq is the after_seq of the next page; 0 on the last.
	NextAfterSeq int64 `json:"next_after_seq"`
	// Anchor is where the retained trail starts (see package audit); nil
	// when nothing was ever trimmed.
	Anchor *audit.Anchor `json:"anchor"`
}

// AuditEvents reads one page: the events passing f with seq above
// f.AfterSeq, at most f.Limit of them (the server's default, 1000, when
// 0). f.AnchorOut is not sent; the page has the anchor.
func (c *Client) AuditEvents(ctx context.Context, f audit.Filter) (AuditPage, error) {
	q := values("principal", f.Principal, "role", f.Role, "type", string(f.Type))
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.Format(time.RFC3339Nano))
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.AfterSeq != 0 {
		q.Set("after_seq", strconv.FormatInt(f.AfterSeq, 10))
	}
	var out AuditPage
	err := c.call(ctx, http.MethodGet, "/v1/audit", q, nil, &out)
	return out, err
}

// AuditPages reads the events passing f page by page, from f.AfterSeq on,
// and hands each page to each in order; an error from each stops it. With
// f.Limit it stops after that many events (the last page may hold more);
// without, at the end of the trail. Pages are what the server sends by
// default, so a trail of any length never has to be held whole.
func (c *Client) AuditPages(ctx context.Context, f audit.Filter, each func(AuditPage) error) error {
	want := f.Limit
	for got := 0; ; {
		if want > 0 {
			// The server refuses a page of more than 1000.
			f.Limit = min(want-got, 1000)
		}
		p, err := c.AuditEvents(ctx, f)
		if err != nil {
			return err
		}
		if err := each(p); err != nil {
			return err
		}
		got += len(p.Events)
		if p.NextAfterSeq == 0 || want > 0 && got >= want {
			return nil
		}
		// A cursor that does not move would loop for ever.
		if p.NextAfterSeq <= f.AfterSeq {
			return fmt.Errorf("GET /v1/audit: the server's next_after_seq %d does not move past %d", p.NextAfterSeq, f.AfterSeq)
		}
		f.AfterSeq = p.NextAfterSeq
	}
}

// values builds a query of the non-empty pairs.
func values(pairs ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			q.Set(pairs[i], pairs[i+1])
		}
	}
	return q
}
