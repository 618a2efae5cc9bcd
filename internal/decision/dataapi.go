package decision

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/server/types"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/open-policy-agent/opa/v1/version"

	"github.com/elevatepdp/elevate/internal/decision/envoy"
	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/httperr"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/workflow"
)

// Authenticator turns an Authorization header into a caller.
type Authenticator interface {
	Authenticate(ctx context.Context, authorization string) (identity.Identity, error)
}

// DataAPI is OPA's REST Data API (`/v1/data/{path}`), answering as OPA does
// for the same policy, with the subject's elevations and the time added to
// an object input. It takes OPA's query parameters as `opa run --server`
// does (see dataParams); like OPA it ignores parameters it does not know.
type DataAPI struct {
	eval *Evaluator
	// auth, when set, requires a decision client's token.
	auth Authenticator
	// subjectField names the input field holding the subject.
	subjectField string
	maxBody      int64
}

// NewDataAPI returns the Data API. With auth set, only decision clients may
// call it; subjectField is the input field naming the subject ("subject").
func NewDataAPI(eval *Evaluator, auth Authenticator, subjectField string, maxBody int64) *DataAPI {
	return &DataAPI{eval: eval, auth: auth, subjectField: subjectField, maxBody: maxBody}
}

// Register adds the routes.
func (d *DataAPI) Register(r gin.IRouter) {
	for _, path := range []string{"/v1/data", "/v1/data/*path"} {
		r.GET(path, d.serve)
		r.POST(path, d.serve)
	}
}

// dataResponse is OPA's DataResponseV1, fields in its order (result is
// absent when undefined), without its MarshalJSON, which marshals twice
// to merge extra fields Elevate never sets.
type dataResponse struct {
	DecisionID  string              `json:"decision_id,omitempty"`
	Provenance  *types.ProvenanceV1 `json:"provenance,omitempty"`
	Explanation types.TraceV1       `json:"explanation,omitempty"`
	Metrics     types.MetricsV1     `json:"metrics,omitempty"`
	Result      *any                `json:"result,omitempty"`
	RuleLabels  []map[string]any    `json:"rule_labels,omitempty"`
	Warning     *types.Warning      `json:"warning,omitempty"`
}

// dataParams are OPA's Data API query parameters, read as OPA's server
// reads them: a flag is on when present without a value or with "true" in
// any case; explain takes the first of notes, fails, full or debug.
type dataParams struct {
	pretty, metrics, instrument, provenance, strict, ruleLabels bool
	explain                                                     types.ExplainModeV1
	// input is the last "input" parameter of a GET, when there is one.
	input *string
}

func readDataParams(u *url.URL) dataParams {
	if u.RawQuery == "" {
		return dataParams{explain: types.ExplainOffV1}
	}
	q := u.Query()
	flag := func(name string) bool {
		v, ok := q[name]
		if !ok {
			return false
		}
		if len(v) == 1 && v[0] == "" {
			return true
		}
		for _, x := range v {
			if strings.EqualFold(x, "true") {
				return true
			}
		}
		return false
	}
	p := dataParams{
		pretty:     flag(types.ParamPrettyV1),
		metrics:    flag(types.ParamMetricsV1),
		instrument: flag(types.ParamInstrumentV1),
		provenance: flag(types.ParamProvenanceV1),
		strict:     flag(types.ParamStrictBuiltinErrors),
		ruleLabels: flag(types.ParamRuleLabelsV1),
		explain:    types.ExplainOffV1,
	}
	for _, x := range q[types.ParamExplainV1] {
		if m := types.ExplainModeV1(x); m == types.ExplainNotesV1 || m == types.ExplainFailsV1 || m == types.ExplainFullV1 || m == types.ExplainDebugV1 {
			p.explain = m
			break
		}
	}
	if v := q[types.ParamInputV1]; len(v) > 0 {
		p.input = &v[len(v)-1]
	}
	return p
}

func (d *DataAPI) serve(c *gin.Context) {
	if d.auth != nil {
		// The caller is the client itself: its token is in Authorization.
		values := c.Request.Header.Values("Authorization")
		cred := envoy.ClientCredential{Many: len(values) > 1}
		if len(values) > 0 {
			cred.Authorization = values[0]
		}
		if err := envoy.AuthenticateClient(c.Request.Context(), d.auth, cred); err != nil {
			c.Header("WWW-Authenticate", `Bearer realm="elevate"`)
			httperr.Abort(c, http.StatusUnauthorized, httperr.New("unauthorized", "a decision client's bearer token is required"))
			return
		}
	}
	params := readDataParams(c.Request.URL)
	var opts policy.EvalOptions
	var m metrics.Metrics
	if params.metrics || params.instrument {
		// OPA's timers, named and placed as in its server's handlers.
		m = metrics.New()
		m.Timer(metrics.ServerHandler).Start()
		m.Timer(metrics.RegoInputParse).Start()
		opts.Metrics, opts.Instrument = m, params.instrument
	}
	var input any
	missingInput := false
	if c.Request.Method == http.MethodPost {
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, d.maxBody))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httperr.Abort(c, http.StatusRequestEntityTooLarge, httperr.New("invalid_parameter", "request body too large"))
			return
		}
		if err != nil {
			httperr.Abort(c, http.StatusBadRequest, httperr.New("invalid_parameter", err.Error()))
			return
		}
		var req struct {
			Input *any `json:"input"`
		}
		if len(body) > 0 {
			if err := util.UnmarshalJSON(body, &req); err != nil {
				httperr.Abort(c, http.StatusBadRequest, httperr.New("invalid_parameter", "body contains malformed input document: "+err.Error()))
				return
			}
		}
		if req.Input != nil {
			input = *req.Input
		} else {
			missingInput = true
		}
	} else if params.input != nil {
		// OPA's GET takes the input as JSON in the "input" parameter.
		if err := util.UnmarshalJSON([]byte(*params.input), &input); err != nil {
			httperr.Abort(c, http.StatusBadRequest, httperr.New("invalid_parameter", "parameter contains malformed input document: "+err.Error()))
			return
		}
	}
	if m != nil {
		m.Timer(metrics.RegoInputParse).Stop()
	}
	var trace *topdown.BufferTracer
	if params.explain != types.ExplainOffV1 {
		trace = topdown.NewBufferTracer()
		opts.Tracer = trace
	}
	opts.StrictBuiltinErrors = params.strict
	var rules *topdown.EvaluatedRuleTracker
	if params.ruleLabels {
		rules = &topdown.EvaluatedRuleTracker{}
		opts.Rules = rules
	}
	res := d.eval.EvaluateWith(c.Request.Context(), Request{
		Query: policy.PathQuery(c.Param("path")), Input: input, Subject: d.subject(input),
		Log: map[string]any{"endpoint": "data", "path": c.Param("path"), "request_id": c.GetString("X-Request-Id")},
	}, opts)
	if m != nil {
		m.Timer(metrics.ServerHandler).Stop()
	}
	var builtinErr *topdown.Error
	if params.strict && res.Failed == reason.PolicyError && errors.As(res.Err, &builtinErr) && builtinErr.Code == topdown.BuiltinErr {
		// The caller asked for OPA's strict semantics, so it gets OPA's
		// answer to a failed evaluation: 500 and the error with its stack.
		c.Abort()
		c.Header("Content-Type", "application/json")
		c.Status(http.StatusInternalServerError)
		body := types.NewErrorV1(types.CodeInternal, types.MsgEvaluationError).WithError(builtinErr).Bytes()
		_, _ = c.Writer.Write(append(body, '\n'))
		return
	}
	if res.Failed != "" {
		httperr.Abort(c, http.StatusForbidden, httperr.Body{
			Code: "decision_failed", Message: "no decision could be made, so the answer is no",
			Errors: []string{res.Failed}, DecisionID: res.ID,
		})
		return
	}
	out := dataResponse{DecisionID: res.ID}
	if m != nil {
		out.Metrics = m.All()
	}
	if params.provenance {
		out.Provenance = provenance(d.eval.engine.Info())
	}
	if res.Defined {
		out.Result = &res.Value
	}
	// As OPA's server: an undefined result is explained only in full.
	if trace != nil && (res.Defined || params.explain == types.ExplainFullV1) {
		out.Explanation = explanation(params.explain, *trace, params.pretty)
	}
	if rules != nil && len(rules.Labels) > 0 {
		out.RuleLabels = rules.Labels
	}
	if missingInput {
		out.Warning = types.NewWarning(types.CodeAPIUsageWarn, types.MsgInputKeyMissing)
	}
	// encoding/json, as OPA's server writes it, so results compare byte for
	// byte.
	c.Status(http.StatusOK)
	c.Header("Content-Type", "application/json")
	enc := json.NewEncoder(c.Writer)
	if params.pretty {
		enc.SetIndent("", "  ")
	}
	_ = enc.Encode(out)
}

// provenance is OPA's: the version of OPA embedded and how this binary was
// built, and the revision of each activated bundle.
func provenance(info policy.Info) *types.ProvenanceV1 {
	p := &types.ProvenanceV1{
		Version: version.Version, Vcs: version.Vcs, Timestamp: version.Timestamp, Hostname: version.Hostname,
	}
	if len(info.Bundles) > 0 {
		p.Bundles = make(map[string]types.ProvenanceBundleV1, len(info.Bundles))
		for name, rev := range info.Bundles {
			p.Bundles[name] = types.ProvenanceBundleV1{Revision: rev}
		}
	}
	return p
}

// explanation is the trace filtered as OPA's server filters it for each
// explain mode; nil if it cannot be encoded, as there.
func explanation(mode types.ExplainModeV1, trace []*topdown.Event, pretty bool) types.TraceV1 {
	var events []*topdown.Event
	switch mode {
	case types.ExplainNotesV1:
		events = lineage.Notes(trace)
	case types.ExplainFailsV1:
		events = lineage.Fails(trace)
	case types.ExplainFullV1:
		events = lineage.Full(trace)
	case types.ExplainDebugV1:
		events = lineage.Debug(trace)
	}
	t, err := types.NewTraceV1(events, pretty)
	if err != nil {
		return nil
	}
	return t
}

// subject is the input's subject field when it names a principal.
func (d *DataAPI) subject(input any) string {
	obj, ok := input.(map[string]any)
	if !ok {
		return ""
	}
	s, _ := obj[d.subjectField].(string)
	p, err := workflow.Principal(s)
	if err != nil {
		return ""
	}
	return p
}
