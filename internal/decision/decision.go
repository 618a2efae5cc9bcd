// Package decision answers gateways: OPA's Data API, forward-auth for
// nginx, Traefik and Caddy, and Envoy's external authorization in its HTTP
// mode (the gRPC mode is in decision/envoy). Each protocol turns a request
// into policy input; the Evaluator adds the subject's live elevations and
// the time, evaluates, and logs the decision. Any failure to decide denies.
package decision

import (
	"context"
	"errors"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/logging"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/workflow"
)

// Elevations reads what a subject holds now; the workflow implements it.
type Elevations interface {
	Elevations(ctx context.Context, subject string, now time.Time) ([]workflow.Elevation, error)
}

// Observer is told of every decision, for metrics.
type Observer interface {
	Decision(endpoint, outcome string, took time.Duration)
	FailedClosed(endpoint, reason string)
	Evaluation(query string, took time.Duration)
}

// DecisionLogger is told of every decision as OPA's server tells OPA's
// decision-log plugin (*logs.Plugin), which masks, drops, buffers and
// uploads it.
type DecisionLogger interface {
	Log(ctx context.Context, info *server.Info) error
}

// Evaluator evaluates gateway decisions.
type Evaluator struct {
	engine     *policy.Engine
	elevations Elevations
	log        logrus.FieldLogger
	now        func() time.Time
	obs        Observer
	decisions  DecisionLogger
}

// Observe reports every decision to o.
func (e *Evaluator) Observe(o Observer) { e.obs = o }

// LogDecisions sends every decision to l too.
func (e *Evaluator) LogDecisions(l DecisionLogger) { e.decisions = l }

// NewEvaluator returns an Evaluator.
func NewEvaluator(engine *policy.Engine, elevations Elevations, log logrus.FieldLogger) *Evaluator {
	return &Evaluator{engine: engine, elevations: elevations, log: log, now: time.Now}
}

// Result is one decision.
type Result struct {
	ID string
	// Value is the policy's answer; meaningful when Defined.
	Value   any
	Defined bool
	// Failed is the reason the decision could not be made, "" when it was.
	// A failed decision is a denial.
	Failed string
	Err    error
}

// Request is what a protocol asks.
type Request struct {
	Query policy.Query
	// Input is the policy input; an object gets "elevations" and "now"
	// (replacing any the caller sent: elevations come from the store
	// only). Nil means no input.
	Input any
	// Subject is whose elevations are read; "" for none.
	Subject string
	// Log are fields for the decision log (method, path, headers...).
	Log logrus.Fields
	// Refused, when set, is why the protocol could not build an input (a
	// path or query that does not parse in only one way): the request is
	// not evaluated, and fails closed as bad_input, recorded (log, metrics,
	// decision log) like any other decision.
	Refused error
	// RefusedAs is the reason a Refused request fails closed with;
	// reason.BadInput when empty.
	RefusedAs string
}

// Evaluate makes a decision. It never returns an error: a failure is a
// Result with Failed set, which every caller answers as a denial.
func (e *Evaluator) Evaluate(ctx context.Context, r Request) Result {
	return e.EvaluateWith(ctx, r, policy.EvalOptions{})
}

// EvaluateWith is Evaluate with OPA's per-evaluation options, which a Data
// API caller asks for with query parameters (metrics, explain...). The
// decision is recorded as every other is.
func (e *Evaluator) EvaluateWith(ctx context.Context, r Request, o policy.EvalOptions) Result {
	started := time.Now()
	res := Result{ID: policy.NewDecisionID()}
	var input ast.Value
	res.Value, res.Defined, res.Failed, input, res.Err = e.evaluate(ctx, r, o)
	level := logrus.InfoLevel
	if res.Failed != "" {
		level = logrus.WarnLevel
	}
	if logging.Enabled(e.log, level) {
		fields := logrus.Fields{
			"decision_id": res.ID, "query": r.Query.String(), "subject": r.Subject,
			"defined": res.Defined, "duration": time.Since(started).Seconds(),
		}
		for k, v := range r.Log {
			fields[k] = v
		}
		if res.Defined {
			fields["result"] = res.Value
		}
		if res.Failed != "" {
			fields["failed"], fields["error"] = res.Failed, res.Err.Error()
			e.log.WithFields(fields).Warn("decision failed closed")
		} else {
			e.log.WithFields(fields).Info("decision")
		}
	}
	if e.obs != nil {
		endpoint, _ := r.Log["endpoint"].(string)
		e.obs.Decision(endpoint, res.outcome(), time.Since(started))
		if res.Failed != "" {
			e.obs.FailedClosed(endpoint, res.Failed)
		}
	}
	if e.decisions != nil {
		e.logDecision(ctx, r, res, input)
	}
	return res
}

// logDecision hands the decision to the decision logger as OPA's server
// does for a Data API call: path, the input the policy saw (with the
// elevations and time added), result or error. The logger evaluates the
// policy's mask and drop rules on it.
func (e *Evaluator) logDecision(ctx context.Context, r Request, res Result, input ast.Value) {
	info := &server.Info{
		DecisionID: res.ID,
		Path:       r.Query.Path(),
		Timestamp:  time.Now().UTC(),
		InputAST:   input,
	}
	if res.Failed != "" {
		info.Error = &loggedFailure{Code: res.Failed, Message: res.Err.Error(), err: res.Err}
	}
	if r.Input != nil {
		info.Input = &r.Input
	}
	if res.Defined {
		info.Results = &res.Value
	}
	if pi := e.engine.Info(); len(pi.Bundles) > 0 {
		info.Bundles = make(map[string]server.BundleInfo, len(pi.Bundles))
		for name, rev := range pi.Bundles {
			info.Bundles[name] = server.BundleInfo{Revision: rev}
		}
	}
	// Logged even when the caller has gone: the decision was made.
	if err := e.decisions.Log(context.WithoutCancel(ctx), info); err != nil {
		e.log.WithFields(logrus.Fields{"decision_id": res.ID, "error": err.Error()}).Error("decision log")
	}
}

// loggedFailure is a failed decision's error as the decision log uploads
// it: in the shape of OPA's evaluation errors ({"code", "message"}), its
// code the reason the decision failed closed (policy_timeout, bad_input...).
// The error itself would be uploaded as {}, saying nothing.
type loggedFailure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	err     error
}

func (f *loggedFailure) Error() string { return f.Message }
func (f *loggedFailure) Unwrap() error { return f.err }

// outcome names a result for metrics: failed, allow (true, or an object
// whose allow or allowed is true), or deny.
func (r Result) outcome() string {
	if r.Failed != "" {
		return "failed"
	}
	switch v := r.Value.(type) {
	case bool:
		if v && r.Defined {
			return "allow"
		}
	case map[string]any:
		if v["allow"] == true || v["allowed"] == true {
			return "allow"
		}
	}
	return "deny"
}

// evaluate returns the value, whether it is defined, why the decision
// failed, the input as the policy saw it (nil when none) and the error.
func (e *Evaluator) evaluate(ctx context.Context, r Request, o policy.EvalOptions) (any, bool, string, ast.Value, error) {
	if r.Refused != nil {
		why := r.RefusedAs
		if why == "" {
			why = reason.BadInput
		}
		return nil, false, why, nil, r.Refused
	}
	now := e.now()
	input := r.Input
	if obj, ok := input.(map[string]any); ok {
		var elevations []workflow.Elevation
		if r.Subject != "" {
			var err error
			if elevations, err = e.elevations.Elevations(ctx, r.Subject, now); err != nil {
				return nil, false, reason.StoreUnavailable, nil, err
			}
		}
		obj["elevations"] = workflow.ElevationsInput(elevations)
		obj["now"] = now.UnixNano()
	}
	var value ast.Value
	if input != nil {
		var err error
		if value, err = ast.InterfaceToValue(input); err != nil {
			return nil, false, reason.BadInput, nil, err
		}
	}
	started := time.Now()
	v, err := e.engine.EvalWith(ctx, r.Query, value, o)
	if e.obs != nil {
		e.obs.Evaluation(r.Query.String(), time.Since(started))
	}
	switch {
	case errors.Is(err, policy.ErrUndefined):
		return nil, false, "", value, nil
	case errors.Is(err, policy.ErrTimeout):
		return nil, false, reason.PolicyTimeout, value, err
	case err != nil:
		return nil, false, reason.PolicyError, value, err
	}
	return v, true, "", value, nil
}
