package decision

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/decision/envoy"
	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/decision/target"
	"github.com/elevatepdp/elevate/internal/httperr"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/logging"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/workflow"
)

// ForwardAuthDefaultQuery is the default query of forward-auth: the built-in
// routes of policies/pim/gateway, meant to be replaced by a deployment's own.
var ForwardAuthDefaultQuery = policy.MustQuery("data.pim.gateway.decision")

// Headers of forward-auth answers, for the gateway to copy upstream.
const (
	forwardAuthDecisionHeader = "X-Elevate-Decision-Id"
	forwardAuthSubjectHeader  = "X-Elevate-Subject"
	forwardAuthRoleHeader     = "X-Elevate-Role"
)

// ForwardAuthOptions configure forward-auth.
type ForwardAuthOptions struct {
	// Query is the decision to evaluate; zero means
	// ForwardAuthDefaultQuery. Its value is an object with a boolean "allow"
	// (and optionally "reason" and "role") or a plain boolean; anything
	// else denies.
	Query policy.Query
	// Auth identifies the user from the forwarded request's
	// "Authorization: Bearer" (a JWT or a user's static token). Nil
	// accepts no bearer token.
	Auth Authenticator
	// SubjectHeader, when set, names a header carrying the subject (such as
	// X-User), for gateways that authenticate users themselves. It is read
	// only when set, and is then trusted as is: the gateway must set or
	// remove it on every request, and only the gateway may reach Elevate.
	SubjectHeader string
	// Clients, when set, makes every check carry the gateway's decision
	// client token in ClientTokenHeader; a check without one is refused
	// (403) before anything else. Nil lets any caller ask.
	Clients Authenticator
}

// ForwardAuth answers the authorization subrequests of gateways: nginx
// auth_request, Traefik ForwardAuth and Caddy forward_auth. The gateway
// sends the original request's method, URI and host in headers and the
// user's credentials as they came; 200 lets the request through, 401 asks
// for credentials, 403 refuses it.
type ForwardAuth struct {
	eval          *Evaluator
	query         policy.Query
	auth          Authenticator
	clients       Authenticator
	subjectHeader string
}

// NewForwardAuth returns forward-auth evaluating opts.Query.
func NewForwardAuth(eval *Evaluator, opts ForwardAuthOptions) *ForwardAuth {
	q := opts.Query
	if q.String() == "" {
		q = ForwardAuthDefaultQuery
	}
	return &ForwardAuth{
		eval: eval, query: q, auth: opts.Auth, clients: opts.Clients,
		subjectHeader: http.CanonicalHeaderKey(strings.TrimSpace(opts.SubjectHeader)),
	}
}

// Register adds /v1/forward-auth for every method: gateways send theirs
// (Traefik and Caddy GET, nginx the original request's).
func (f *ForwardAuth) Register(r gin.IRouter) {
	r.Any("/v1/forward-auth", f.serve)
}

// Where gateways put the original request. Traefik and Caddy send
// X-Forwarded-*; nginx sends what its configuration says, by convention
// X-Original-*. Both are read, and must agree when both are present, so a
// client cannot smuggle in the family its gateway does not set.
var (
	forwardedMethodHeaders = []string{"X-Forwarded-Method", "X-Original-Method"}
	forwardedURIHeaders    = []string{"X-Forwarded-Uri", "X-Original-Uri"}
	forwardedHostHeaders   = []string{"X-Forwarded-Host"}
)

// forwardAuthVerdict is a decision's value as forward-auth reads it.
type forwardAuthVerdict struct {
	allow  bool
	role   string
	reason string
}

func (f *ForwardAuth) serve(c *gin.Context) {
	if f.clients != nil {
		if err := envoy.AuthenticateClient(c.Request.Context(), f.clients, clientCredential(c.Request.Header)); err != nil {
			res := f.eval.Evaluate(c.Request.Context(), Request{Query: f.query, Log: logrus.Fields{
				"endpoint": "forward-auth", "request_id": c.GetString("X-Request-Id"),
				"headers": forwardAuthLogHeaders(c.Request.Header),
			}, Refused: err, RefusedAs: reason.UnauthenticatedClient})
			c.Header(forwardAuthDecisionHeader, res.ID)
			httperr.Abort(c, http.StatusForbidden, httperr.Body{
				Code: "forbidden", Message: "the gateway did not authenticate as a decision client (" + ClientTokenHeader + ")",
				Errors: []string{res.Failed}, DecisionID: res.ID,
			})
			return
		}
	}
	subject, err := f.subject(c)
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="elevate"`)
		httperr.Abort(c, http.StatusUnauthorized, httperr.New("unauthenticated", err.Error()))
		return
	}
	input, reqErr := forwardedRequest(c.Request.Header)
	fields := logrus.Fields{
		"endpoint": "forward-auth", "request_id": c.GetString("X-Request-Id"),
		"headers": forwardAuthLogHeaders(c.Request.Header),
	}
	for _, k := range []string{"method", "path", "host"} {
		if v, ok := input[k]; ok {
			fields[k] = v
		}
	}
	var res Result
	if reqErr != nil {
		// The gateway did not say what to decide, or not in only one way:
		// a failure to decide, recorded and answered like one.
		res = f.eval.Evaluate(c.Request.Context(), Request{Query: f.query, Subject: subject, Log: fields, Refused: reqErr})
	} else {
		input["subject"] = subject
		res = f.eval.Evaluate(c.Request.Context(), Request{Query: f.query, Input: input, Subject: subject, Log: fields})
	}
	c.Header(forwardAuthDecisionHeader, res.ID)
	if res.Failed != "" {
		errs := []string{res.Failed}
		if reqErr != nil {
			// Our own message, about the gateway's headers; an evaluation's
			// error stays in the log.
			errs = append(errs, reqErr.Error())
		}
		httperr.Abort(c, http.StatusForbidden, httperr.Body{
			Code: "forbidden", Message: "no decision could be made, so the answer is no",
			Errors: errs, DecisionID: res.ID,
		})
		return
	}
	v := f.verdict(res)
	if !v.allow {
		httperr.Abort(c, http.StatusForbidden, httperr.Body{
			Code: "forbidden", Message: "the policy denies this request",
			Errors: []string{v.reason}, DecisionID: res.ID,
		})
		return
	}
	c.Header(forwardAuthSubjectHeader, subject)
	if v.role != "" {
		c.Header(forwardAuthRoleHeader, v.role)
	}
	c.JSON(http.StatusOK, gin.H{"allow": true, "decision_id": res.ID, "reason": v.reason})
}

// subject is who the forwarded request is from: the trusted header when
// configured and present, else the user of its bearer token.
func (f *ForwardAuth) subject(c *gin.Context) (string, error) {
	if f.subjectHeader != "" {
		if values := c.Request.Header.Values(f.subjectHeader); len(values) > 0 {
			if len(values) > 1 {
				return "", fmt.Errorf("%s is given more than once", f.subjectHeader)
			}
			p, err := workflow.Principal(values[0])
			if err != nil {
				return "", fmt.Errorf("%s does not name a principal", f.subjectHeader)
			}
			return p, nil
		}
	}
	authz := c.GetHeader("Authorization")
	if f.auth == nil || authz == "" {
		return "", errors.New("a user's bearer token is required")
	}
	id, err := f.auth.Authenticate(c.Request.Context(), authz)
	if err != nil {
		return "", err
	}
	if id.Kind != identity.User {
		return "", errors.New("the bearer token is a decision client's; a user's is required")
	}
	return id.Principal, nil
}

// forwardedRequest is the policy input describing the request the gateway
// asks about, from the headers it forwards: method, path (percent-decoded,
// without the query), host and the parsed query. The URI is parsed as
// ext_authz parses its path (target.Parse): what does not parse in only one
// way (a ";" in the query, a bad escape, an escaped "/", a dot segment, a
// control character...) is refused.
func forwardedRequest(h http.Header) (map[string]any, error) {
	method, err := forwardedValue(h, forwardedMethodHeaders)
	if err != nil {
		return nil, err
	}
	uri, err := forwardedValue(h, forwardedURIHeaders)
	if err != nil {
		return nil, err
	}
	host, err := forwardedValue(h, forwardedHostHeaders)
	if err != nil && !errors.Is(err, errNotForwarded) {
		return nil, err
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("the forwarded URI is not a request URI: %w", err)
	}
	raw := uri
	if !strings.HasPrefix(uri, "/") {
		// An absolute URI (or "*"): its path and query.
		raw = u.EscapedPath()
		if u.RawQuery != "" {
			raw += "?" + u.RawQuery
		}
	}
	t, err := target.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the forwarded URI: %w", err)
	}
	query := make(map[string]any, len(t.Query))
	for k, vs := range t.Query {
		values := make([]any, len(vs))
		for i, v := range vs {
			values[i] = v
		}
		query[k] = values
	}
	return map[string]any{"method": method, "path": t.Path, "host": host, "query": query}, nil
}

// errNotForwarded: the gateway sent none of the headers.
var errNotForwarded = errors.New("not forwarded")

// forwardedValue is the one value the headers give, failing when none does,
// when it is empty or when they disagree (also two of the same name).
func forwardedValue(h http.Header, names []string) (string, error) {
	var value, from string
	for _, name := range names {
		for _, v := range h.Values(name) {
			if from != "" && v != value {
				return "", fmt.Errorf("%s and %s disagree", from, name)
			}
			value, from = v, name
		}
	}
	if from == "" {
		return "", fmt.Errorf("%w: the gateway sent none of %s", errNotForwarded, strings.Join(names, ", "))
	}
	if value == "" {
		return "", fmt.Errorf("%s is empty", from)
	}
	return value, nil
}

// verdict reads a decision: an object with a boolean allow, or a boolean.
func (f *ForwardAuth) verdict(res Result) forwardAuthVerdict {
	if !res.Defined {
		return forwardAuthVerdict{reason: fmt.Sprintf("%s is undefined", f.query)}
	}
	switch v := res.Value.(type) {
	case bool:
		if v {
			return forwardAuthVerdict{allow: true, reason: "allowed by " + f.query.String()}
		}
		return forwardAuthVerdict{reason: "denied by " + f.query.String()}
	case map[string]any:
		allow, ok := v["allow"].(bool)
		if !ok {
			return forwardAuthVerdict{reason: fmt.Sprintf("%s has no boolean allow", f.query)}
		}
		out := forwardAuthVerdict{allow: allow}
		out.role, _ = v["role"].(string)
		if out.reason, _ = v["reason"].(string); out.reason == "" {
			if allow {
				out.reason = "allowed by " + f.query.String()
			} else {
				out.reason = "denied by " + f.query.String()
			}
		}
		return out
	}
	return forwardAuthVerdict{reason: fmt.Sprintf("%s is neither a boolean nor an object with allow", f.query)}
}

// forwardAuthLogHeaders are the request headers for the decision log,
// credentials masked (logging.MaskHeader): an Authorization keeps only its
// scheme.
func forwardAuthLogHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for name, values := range h {
		name = http.CanonicalHeaderKey(name)
		if logging.IsCredentialHeader(name) {
			masked := make([]string, len(values))
			for i, v := range values {
				masked[i] = logging.MaskValue(name, v)
			}
			values = masked
		}
		out[name] = strings.Join(values, ", ")
	}
	return out
}

// Compile-time check: the identity package's Authenticator fits.
var _ Authenticator = (*identity.Authenticator)(nil)
