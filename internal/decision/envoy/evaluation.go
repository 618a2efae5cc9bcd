package envoy

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/logging"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/workflow"
)

// Evaluator makes decisions. *decision.Evaluator is one: package decision
// imports this one (for the HTTP mode), so this package names what it needs
// instead of importing it.
type Evaluator interface {
	EvaluateEnvoy(ctx context.Context, r EvalRequest) EvalResult
}

// EvalRequest is decision.Request, field for field: see there.
type EvalRequest struct {
	Query     policy.Query
	Input     any
	Subject   string
	Log       logrus.Fields
	Refused   error
	RefusedAs string
}

// EvalResult is decision.Result, field for field: see there. Failed != ""
// is a denial.
type EvalResult struct {
	ID      string
	Value   any
	Defined bool
	Failed  string
	Err     error
}

// Authenticator turns an Authorization header into a caller; it is
// decision.Authenticator, so any of those will do.
type Authenticator interface {
	Authenticate(ctx context.Context, authorization string) (identity.Identity, error)
}

// DefaultQuery is the OPA-Envoy plugin's default decision.
var DefaultQuery = policy.MustQuery("data.envoy.authz.allow")

// Options configure how requests are decided, in both modes.
type Options struct {
	// Query is the decision to evaluate; zero means DefaultQuery. It may be
	// a boolean or an object with "allowed" (see Response), such as
	// data.pim.gateway.decision.
	Query policy.Query
	// DryRun allows every request whatever the decision, and logs what the
	// decision was: for trying a policy on live traffic. A request refused
	// as bad_input (it does not parse) is still refused, as by the plugin.
	DryRun bool
	// SubjectHeader names a request header carrying the subject (a
	// principal) set by a trusted proxy. Envoy must strip it from client
	// requests, or anyone could claim anyone's elevations. Empty: none.
	SubjectHeader string
	// Auth, when set, makes the subject the user whose bearer token is in
	// the request's Authorization header, when it verifies as a user; it
	// takes precedence over SubjectHeader.
	Auth Authenticator
	// Clients, when set, makes every check present a decision client's
	// token: the gateway's own, never the end user's (see
	// ClientCredential). A check without one is denied before anything is
	// evaluated, in dry-run too. Nil lets any caller ask.
	Clients Authenticator
	// Log receives errors; decisions are logged by the Evaluator. Nil means
	// logrus's standard logger.
	Log logrus.FieldLogger
	// SkipRequestBodyParse leaves parsed_body and truncated_body out of the
	// input (the plugin's skip-request-body-parse).
	SkipRequestBodyParse bool
	// ProtoSet parses the bodies of gRPC requests (the plugin's
	// proto-descriptor); see LoadProtoSet. Nil: they are not parsed.
	ProtoSet *protoregistry.Files
	// NoDecisionIDHeader leaves the x-elevate-decision-id header out of
	// every answer (the decision ID is still in the dynamic metadata and
	// the decision log).
	NoDecisionIDHeader bool
}

// Authorizer decides CheckRequests; the gRPC server and the HTTP mode share
// it. It is safe for concurrent use.
type Authorizer struct {
	eval          Evaluator
	query         policy.Query
	dryRun        bool
	subjectHeader string
	auth          Authenticator
	clients       Authenticator
	log           logrus.FieldLogger
	input         InputOptions
	idHeader      bool
}

// NewAuthorizer returns an Authorizer.
func NewAuthorizer(eval Evaluator, opts Options) *Authorizer {
	if opts.Query.String() == "" {
		opts.Query = DefaultQuery
	}
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	return &Authorizer{
		eval: eval, query: opts.Query, dryRun: opts.DryRun,
		subjectHeader: strings.ToLower(strings.TrimSpace(opts.SubjectHeader)),
		auth:          opts.Auth, clients: opts.Clients, log: opts.Log,
		input:    InputOptions{SkipBodyParse: opts.SkipRequestBodyParse, ProtoSet: opts.ProtoSet},
		idHeader: !opts.NoDecisionIDHeader,
	}
}

// Endpoints name the mode in the decision log.
const (
	EndpointGRPC = "ext_authz_grpc"
	EndpointHTTP = "ext_authz_http"
)

// ClientCredential is the gateway's own credential as a check presents it,
// in Authorization header form ("Bearer <token>"); "" when none was sent.
// Many says it was sent more than once, which is refused.
type ClientCredential struct {
	Authorization string
	Many          bool
}

// Authorize decides req, within ctx's deadline, for the gateway that
// presented client. It never fails: a request that cannot be decided
// (malformed, a policy error or timeout, an unusable decision, even a
// panic) is denied, unless in dry-run; a gateway that does not authenticate
// as a decision client, when Options.Clients is set, is denied even then.
func (a *Authorizer) Authorize(ctx context.Context, req *authv3.CheckRequest, endpoint string, client ClientCredential) Response {
	return a.decide(ctx, req, endpoint, client, nil)
}

// Refuse answers req as a request that cannot be parsed (bad_input, 400),
// for err: for a protocol that finds req ambiguous before Input does. The
// refusal is recorded as every decision is.
func (a *Authorizer) Refuse(ctx context.Context, req *authv3.CheckRequest, endpoint string, client ClientCredential, err error) Response {
	return a.decide(ctx, req, endpoint, client, func() (map[string]any, error) { return nil, err })
}

// decide is Authorize with the input built by input (nil: Input(req)). A
// gateway that is not a decision client, when one must be, is refused
// before anything else is looked at.
func (a *Authorizer) decide(ctx context.Context, req *authv3.CheckRequest, endpoint string, client ClientCredential, input func() (map[string]any, error)) Response {
	var resp Response
	if err := a.client(ctx, client); err != nil {
		// Recorded by the Evaluator as every decision is.
		res := a.eval.EvaluateEnvoy(ctx, EvalRequest{Query: a.query, Log: logFields(req, endpoint, a.dryRun),
			Refused: err, RefusedAs: reason.UnauthenticatedClient})
		resp = failedResponse(res.ID, reason.UnauthenticatedClient, 403)
	} else {
		if input == nil {
			input = func() (map[string]any, error) { return Input(req, a.input) }
		}
		resp = a.authorize(ctx, req, endpoint, input)
	}
	// A request that cannot be parsed, or comes from no decision client, is
	// refused even in dry-run, as by the plugin: there was no decision to try.
	if a.dryRun && !resp.Allowed && resp.Failed != reason.BadInput && resp.Failed != reason.UnauthenticatedClient {
		a.log.WithFields(logrus.Fields{
			"decision_id": resp.DecisionID, "endpoint": endpoint, "dry_run": true,
			"allowed": false, "failed": resp.Failed, "http_status": resp.Status,
		}).Info("dry run: allowing a request the decision denies")
		// As the plugin: allowed with nothing changed, but the decision's
		// dynamic metadata still goes to Envoy (and its access log).
		resp = Response{DecisionID: resp.DecisionID, Allowed: true, DynamicMetadata: resp.DynamicMetadata}
	}
	if a.idHeader {
		resp = resp.withDecisionIDHeader()
	}
	return resp
}

func (a *Authorizer) authorize(ctx context.Context, req *authv3.CheckRequest, endpoint string, makeInput func() (map[string]any, error)) (resp Response) {
	var id string // the decision's, once there is one
	defer func() {
		if p := recover(); p != nil {
			if id == "" {
				// The Evaluator did not record this decision: give
				// it an id in the Evaluator's form.
				id = policy.NewDecisionID()
			}
			a.log.WithFields(logrus.Fields{
				"decision_id": id, "endpoint": endpoint, "failed": reason.Internal,
				"panic": fmt.Sprint(p), "stack": string(debug.Stack()),
			}).Error("decision failed closed: panic")
			resp = failedResponse(id, reason.Internal, 403)
		}
	}()
	fields := logFields(req, endpoint, a.dryRun)
	input, err := makeInput()
	if err != nil {
		// Not evaluated, but recorded by the Evaluator as every decision
		// is; answered as the plugin answers a request it cannot parse.
		res := a.eval.EvaluateEnvoy(ctx, EvalRequest{Query: a.query, Log: fields, Refused: err})
		id = res.ID
		return failedResponse(res.ID, reason.BadInput, 400)
	}
	subject := a.subject(ctx, req.GetAttributes().GetRequest().GetHttp())
	if subject != "" {
		input["subject"] = subject
	} else {
		input["subject"] = nil
	}
	res := a.eval.EvaluateEnvoy(ctx, EvalRequest{Query: a.query, Input: input, Subject: subject, Log: fields})
	id = res.ID
	resp, err = fromResult(res)
	if err != nil {
		a.log.WithFields(logrus.Fields{
			"decision_id": res.ID, "endpoint": endpoint, "query": a.query.String(),
			"failed": reason.PolicyError, "error": err.Error(),
		}).Warn("decision failed closed: unusable decision")
		return failedResponse(res.ID, reason.PolicyError, 403)
	}
	return resp
}

// subject is whose elevations the policy sees: the user of a verified bearer
// token, else the trusted subject header, else nobody.
func (a *Authorizer) subject(ctx context.Context, h *authv3.AttributeContext_HttpRequest) string {
	if a.auth != nil {
		if authz := header(h, "authorization"); authz != "" {
			id, err := a.auth.Authenticate(ctx, authz)
			if err == nil && id.Kind == identity.User {
				if p, err := workflow.Principal(id.Principal); err == nil {
					return p
				}
			}
		}
	}
	if a.subjectHeader != "" {
		if v := header(h, a.subjectHeader); v != "" {
			if p, err := workflow.Principal(v); err == nil {
				return p
			}
		}
	}
	return ""
}

// logFields describe the request in the decision log, credentials masked
// (logging.MaskHeader): the log shows that they were sent, never what they
// were.
func logFields(req *authv3.CheckRequest, endpoint string, dryRun bool) logrus.Fields {
	h := req.GetAttributes().GetRequest().GetHttp()
	headers := make(map[string]string, len(h.GetHeaders()))
	for k, v := range h.GetHeaders() {
		headers[k] = logging.MaskHeader(k, v)
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		k := strings.ToLower(hv.GetKey())
		if _, ok := headers[k]; !ok {
			headers[k] = logging.MaskHeader(k, hv.GetValue())
		}
	}
	fields := logrus.Fields{
		"endpoint": endpoint, "method": h.GetMethod(), "path": h.GetPath(), "host": h.GetHost(),
		"headers": headers, "request_id": header(h, "x-request-id"),
	}
	if addr := req.GetAttributes().GetSource().GetAddress().GetSocketAddress(); addr != nil {
		fields["source"] = fmt.Sprintf("%s:%d", addr.GetAddress(), addr.GetPortValue())
	}
	if dryRun {
		fields["dry_run"] = true
	}
	return fields
}

// client checks the gateway's credential when decision clients must
// authenticate.
func (a *Authorizer) client(ctx context.Context, c ClientCredential) error {
	if a.clients == nil {
		return nil
	}
	return AuthenticateClient(ctx, a.clients, c)
}

// AuthenticateClient fails unless c verifies with auth as a decision
// client's token; a user's token is never one. Forward-auth uses it too.
func AuthenticateClient(ctx context.Context, auth Authenticator, c ClientCredential) error {
	if c.Many {
		return errors.New("the decision client's token is given more than once")
	}
	if c.Authorization == "" {
		return errors.New("no decision client's token")
	}
	id, err := auth.Authenticate(ctx, c.Authorization)
	if err != nil {
		return err
	}
	if id.Kind != identity.Client {
		return errors.New("the token is a user's, not a decision client's")
	}
	return nil
}
