package decision

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/elevatepdp/elevate/internal/decision/envoy"
	"github.com/elevatepdp/elevate/internal/decision/target"
	"github.com/elevatepdp/elevate/internal/policy"
)

// ExtAuthzPrefix is where the HTTP mode is served; it is Envoy's
// http_service path_prefix.
const ExtAuthzPrefix = "/v1/ext_authz"

// DefaultExtAuthzMaxBody is how much of a forwarded body is read when
// ExtAuthzOptions.MaxBody is zero.
const DefaultExtAuthzMaxBody = 1 << 20

// ExtAuthzOptions configure Envoy's external authorization in its HTTP
// mode; they mean what envoy.Options do for the gRPC mode.
type ExtAuthzOptions struct {
	// Query is the decision; zero means data.envoy.authz.allow.
	Query policy.Query
	// DryRun allows every request and logs the real decision.
	DryRun bool
	// SubjectHeader names a header, set by a trusted proxy, carrying the
	// subject. Envoy must strip it from client requests and forward it
	// (allowed_headers).
	SubjectHeader string
	// Auth, when set, makes the user of a verified bearer token in the
	// forwarded Authorization header the subject.
	Auth Authenticator
	// Clients, when set, makes every check carry a decision client's token
	// in ClientTokenHeader (see ForwardAuthOptions.Clients).
	Clients Authenticator
	// Log receives errors; nil means logrus's standard logger.
	Log logrus.FieldLogger
	// MaxBody bounds how much of a forwarded body is read (set Envoy's
	// with_request_body.max_request_bytes no higher); a longer body is
	// truncated: truncated_body is true and it is not parsed. Zero means
	// DefaultExtAuthzMaxBody.
	MaxBody int64
	// SkipRequestBodyParse, ProtoSet and NoDecisionIDHeader are
	// envoy.Options'.
	SkipRequestBodyParse bool
	ProtoSet             *protoregistry.Files
	NoDecisionIDHeader   bool
}

// ExtAuthzHTTP is Envoy's external authorization in its HTTP mode
// (http_service): Envoy sends each request's method, its path under
// ExtAuthzPrefix, the headers it is configured to forward and, with
// with_request_body, its body. The policy sees the same input as in the
// gRPC mode (see envoy.Input) and answers the same way: 200 allows, any
// other status denies.
type ExtAuthzHTTP struct {
	authz   *envoy.Authorizer
	maxBody int64
}

// NewExtAuthzHTTP returns the HTTP mode.
func NewExtAuthzHTTP(eval *Evaluator, opts ExtAuthzOptions) *ExtAuthzHTTP {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultExtAuthzMaxBody
	}
	authz := envoy.NewAuthorizer(eval, envoy.Options{
		Query: opts.Query, DryRun: opts.DryRun, SubjectHeader: opts.SubjectHeader, Auth: opts.Auth, Clients: opts.Clients, Log: opts.Log,
		SkipRequestBodyParse: opts.SkipRequestBodyParse, ProtoSet: opts.ProtoSet, NoDecisionIDHeader: opts.NoDecisionIDHeader,
	})
	return &ExtAuthzHTTP{authz: authz, maxBody: opts.MaxBody}
}

// Register adds the routes, for every method. They carry end users'
// requests, credentials included: no API authentication may sit in front
// of them. Envoy sends the original request's method, whatever it is, and
// gin routes only the nine methods of Any: registered on the root router,
// a middleware serves the prefix for any other (WebDAV's PROPFIND, an
// extension method), which would otherwise reach no route and no policy.
func (h *ExtAuthzHTTP) Register(r gin.IRouter) {
	r.Any(ExtAuthzPrefix, h.serve)
	r.Any(ExtAuthzPrefix+"/*path", h.serve)
	r.Use(h.otherMethods)
}

// otherMethods serves requests under the prefix whose method gin's Any does
// not route; it passes every other request on untouched.
func (h *ExtAuthzHTTP) otherMethods(c *gin.Context) {
	p := c.Request.URL.Path
	if routedByAny(c.Request.Method) || (p != ExtAuthzPrefix && !strings.HasPrefix(p, ExtAuthzPrefix+"/")) {
		c.Next()
		return
	}
	// gin's answer of 405 set it before running the handlers; this is no 405.
	c.Writer.Header().Del("Allow")
	h.handle(c, ExtAuthzPrefix)
}

func routedByAny(method string) bool {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodHead,
		http.MethodOptions, http.MethodDelete, http.MethodConnect, http.MethodTrace:
		return true
	}
	return false
}

func (h *ExtAuthzHTTP) serve(c *gin.Context) {
	// FullPath includes any group the routes were registered under.
	h.handle(c, strings.TrimSuffix(c.FullPath(), "/*path"))
}

// handle decides the request whose original path is what follows prefix,
// still escaped as Envoy sent it, with its query.
func (h *ExtAuthzHTTP) handle(c *gin.Context, prefix string) {
	path, ok := stripPrefix(rawPath(c.Request), prefix)
	if c.Request.URL.RawQuery != "" {
		path += "?" + c.Request.URL.RawQuery
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, h.maxBody+1))
	// A body cut short, by us or by a broken connection, is a truncated
	// one: the policy sees truncated_body and no parsed_body.
	truncated := err != nil || int64(len(body)) > h.maxBody
	if int64(len(body)) > h.maxBody {
		body = body[:h.maxBody]
	}
	// The gateway's credential is its own, not the end user's request's:
	// taken out before the request becomes policy input.
	client := clientCredential(c.Request.Header)
	c.Request.Header.Del(ClientTokenHeader)
	req := envoy.HTTPCheckRequest(c.Request, path, body, truncated)
	if !ok {
		h.authz.Refuse(c.Request.Context(), req, envoy.EndpointHTTP, client, errEscapedPrefix).WriteHTTP(c.Writer)
	} else {
		h.authz.Authorize(c.Request.Context(), req, envoy.EndpointHTTP, client).WriteHTTP(c.Writer)
	}
	c.Abort()
}

// rawPath is the request's path exactly as sent. URL.EscapedPath is not:
// for a path Go would escape differently (a '"' in it, say) it escapes the
// decoded path again, turning %2F into a '/' that splits a segment.
func rawPath(r *http.Request) string {
	if p, _, _ := strings.Cut(r.RequestURI, "?"); strings.HasPrefix(p, "/") {
		return p
	}
	return r.URL.EscapedPath()
}

// errEscapedPrefix: the route's prefix arrived escaped in a way that leaves
// no single reading of where the original path starts.
var errEscapedPrefix = fmt.Errorf("%w: the ext_authz prefix is escaped", target.ErrAmbiguous)

// stripPrefix is the escaped original path after prefix (the route's
// decoded prefix), segment by segment, so that the original path is never
// decoded here: an escaped prefix (/v1/ext%5Fauthz/a%2Fb) still leaves
// /a%2Fb for the request-target parser to refuse. It fails when the escaped
// path's first segments do not decode to the prefix's.
func stripPrefix(escaped, prefix string) (string, bool) {
	esc, pre := strings.Split(escaped, "/"), strings.Split(prefix, "/")
	if len(esc) < len(pre) {
		return "/", false
	}
	for i, p := range pre {
		if d, err := url.PathUnescape(esc[i]); err != nil || d != p {
			return "/", false
		}
	}
	return "/" + strings.Join(esc[len(pre):], "/"), true
}

// EvaluateEnvoy is Evaluate for package envoy, which cannot import this
// one; it makes *Evaluator an envoy.Evaluator.
func (e *Evaluator) EvaluateEnvoy(ctx context.Context, r envoy.EvalRequest) envoy.EvalResult {
	// The types are the same field for field: if one changes, this stops
	// compiling.
	return envoy.EvalResult(e.Evaluate(ctx, Request(r)))
}

var _ envoy.Evaluator = (*Evaluator)(nil)
