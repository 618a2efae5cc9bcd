package policy_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/elevatepdp/elevate/bundles"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/test/bench/fixture"
)

// Policy evaluation per entrypoint, on the standard fixture (10 000
// principals, 0-3 live elevations each, five roles): each benchmark cycles
// through one input per principal, built once as a parsed AST value as the
// Evaluator hands it over, so ns/op is Eval alone. p50-ns and p99-ns are the
// median and 99th percentile of the individual evaluations.
//
//	go test -run '^$' -bench . -benchmem ./internal/policy

var (
	gatewayDecision = policy.MustQuery("data.pim.gateway.decision")
	envoyAllow      = policy.MustQuery("data.envoy.authz.allow")
	authzAllow      = policy.MustQuery("data.pim.authz.allow")
)

// inputs are one input per fixture principal for an entrypoint.
type inputs func(r fixture.Request, i int, now time.Time) map[string]any

var entrypoints = []struct {
	query policy.Query
	input inputs
}{
	{policy.AuthzDecision, fixture.AuthzInput},
	{authzAllow, fixture.AuthzInput},
	{gatewayDecision, gatewayInput},
	{envoyAllow, envoyInput},
	{policy.AdminAllow, adminInput},
	{policy.ActivationDecision, activationInput},
	{policy.ApprovalDecision, approvalInput},
}

func BenchmarkEval(b *testing.B) {
	engine := fixture.Engine(b, nil, gatewayDecision, envoyAllow, authzAllow)
	now := time.Now()
	checkAuthz(b, engine, now)
	for _, ep := range entrypoints {
		b.Run(ep.query.String(), func(b *testing.B) {
			timeEvals(b, engine, ep.query, astInputs(b, ep.input, now))
		})
	}
}

// timeEvals evaluates q over values in turn, reporting the median and 99th
// percentile of the individual evaluations beside ns/op.
func timeEvals(b *testing.B, engine *policy.Engine, q policy.Query, values []ast.Value) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		start := time.Now()
		if _, err := engine.Eval(ctx, q, values[n%len(values)]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	fixture.ReportLatencies(b, lat)
}

// floorRego is what any evaluation of a decision over this input costs on
// this machine, whatever the policy: "constant" is a rule that reads no
// input, "loop" the smallest rule that still iterates the elevations and
// asks the same three questions as pim.authz (live, scope, permission),
// without validating anything or explaining itself. They bound from below
// what a faster pim.authz could reach with OPA's evaluator.
const floorRego = `package floor

constant := {"allow": false, "elevation": null, "reason": "floor"}

loop := {"allow": count(_granting) > 0, "elevation": null, "reason": "floor"}

_granting := [e |
	some e in input.elevations
	e.expires_at > input.now
	startswith(input.scope, e.scope)
	some pattern in data.pim.roles[e.role].permissions
	glob.match(pattern, ["."], input.action)
]
`

func BenchmarkEvalFloor(b *testing.B) {
	fsys, err := policy.MergeFS(map[string]fs.FS{
		"bundles": bundles.Demo, "bench": fixture.RolesFile,
		"floor": fstest.MapFS{"floor.rego": {Data: []byte(floorRego)}},
	})
	if err != nil {
		b.Fatal(err)
	}
	queries := []policy.Query{policy.MustQuery("data.floor.constant"), policy.MustQuery("data.floor.loop")}
	engine, err := policy.New(context.Background(), policy.Options{
		Source: policy.Source{FS: fsys, Paths: []string{"bundles/demo", "bench", "floor"}},
		Logger: fixture.Log(), Timeout: fixture.EvalTimeout, Prepare: queries,
	})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	values := astInputs(b, fixture.AuthzInput, now)
	for _, q := range queries {
		b.Run(q.String(), func(b *testing.B) { timeEvals(b, engine, q, values) })
	}
}

// BenchmarkEvalParallel is data.pim.authz.decision from GOMAXPROCS
// goroutines: what one replica's cores give when every request evaluates.
func BenchmarkEvalParallel(b *testing.B) {
	engine := fixture.Engine(b, nil)
	now := time.Now()
	values := astInputs(b, fixture.AuthzInput, now)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			if _, err := engine.Eval(ctx, policy.AuthzDecision, values[n%len(values)]); err != nil {
				b.Error(err)
				return
			}
			n++
		}
	})
}

func astInputs(b *testing.B, build inputs, now time.Time) []ast.Value {
	b.Helper()
	reqs := fixture.Requests(fixture.Principals, fixture.Principals, now)
	out := make([]ast.Value, len(reqs))
	for k, r := range reqs {
		v, err := ast.InterfaceToValue(build(r, fixture.SubjectIndex(k, fixture.Principals), now))
		if err != nil {
			b.Fatal(err)
		}
		out[k] = v
	}
	return out
}

// checkAuthz compares a sample of decisions with the fixture's reference
// answers: a benchmark of a policy that denies everything would be fast
// and meaningless.
func checkAuthz(b *testing.B, engine *policy.Engine, now time.Time) {
	b.Helper()
	allowed := 0
	for k, r := range fixture.Requests(1000, fixture.Principals, now) {
		i := fixture.SubjectIndex(k, fixture.Principals)
		v, err := ast.InterfaceToValue(fixture.AuthzInput(r, i, now))
		if err != nil {
			b.Fatal(err)
		}
		d, err := engine.Eval(context.Background(), policy.AuthzDecision, v)
		if err != nil {
			b.Fatal(err)
		}
		got := d.(map[string]any)["allow"] == true
		if want := fixture.Allowed(r, i, now); got != want {
			b.Fatalf("%+v: allow %v, the fixture says %v (%v)", r, got, want, d)
		}
		if got {
			allowed++
		}
	}
	if allowed == 0 || allowed == 1000 {
		b.Fatalf("%d of 1000 sample decisions allowed: the mix must hold both answers", allowed)
	}
}

// gatewayInput is the forward-auth request for r: GET of the collection of
// the action's resource, under the request's unit.
func gatewayInput(r fixture.Request, i int, now time.Time) map[string]any {
	in := fixture.AuthzInput(r, i, now)
	return map[string]any{
		"method": "GET", "path": gatewayPath(r), "host": "api.bench.example",
		"subject": r.Subject, "now": in["now"], "elevations": in["elevations"],
	}
}

func gatewayPath(r fixture.Request) string {
	resource, _, _ := strings.Cut(r.Action, ".")
	if r.Scope == "/" {
		return "/" + resource
	}
	return r.Scope + "/" + resource
}

// envoyInput is the OPA-Envoy plugin's input for the same request.
func envoyInput(r fixture.Request, i int, now time.Time) map[string]any {
	in := fixture.AuthzInput(r, i, now)
	path := gatewayPath(r)
	parsed := []any{}
	for _, s := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		parsed = append(parsed, s)
	}
	return map[string]any{
		"attributes": map[string]any{"request": map[string]any{"http": map[string]any{
			"method": "GET", "path": path, "host": "api.bench.example",
			"headers": map[string]any{":authority": "api.bench.example", "x-elevate-subject": r.Subject},
		}}},
		"parsed_path": parsed, "parsed_query": map[string]any{}, "parsed_body": nil, "truncated_body": false,
		"subject": r.Subject, "now": in["now"], "elevations": in["elevations"],
	}
}

func adminInput(r fixture.Request, i int, now time.Time) map[string]any {
	in := fixture.AuthzInput(r, i, now)
	return map[string]any{
		"principal": r.Subject, "action": "assignments.create", "scope": r.Scope,
		"now": in["now"], "elevations": in["elevations"],
	}
}

// activationInput asks to activate bench-operator at the request's scope,
// with MFA from a token, an eligible assignment at "/" beside the
// principal's others and its live elevations.
func activationInput(r fixture.Request, i int, now time.Time) map[string]any {
	es := fixture.Elevations(i, now)
	asgs := []any{}
	for _, e := range es {
		a := e.Assignment()
		asgs = append(asgs, map[string]any{
			"id": a.ID, "principal": a.Principal, "role": a.Role, "scope": a.Scope,
			"type": string(a.Type), "start": nil, "end": nil,
		})
	}
	asgs = append(asgs, map[string]any{
		"id": "asg_operator", "principal": r.Subject, "role": fixture.BenchRole, "scope": "/",
		"type": "eligible", "start": nil, "end": nil,
	})
	return map[string]any{
		"now": now.UnixNano(), "principal": r.Subject,
		"request":     map[string]any{"role": fixture.BenchRole, "scope": r.Scope, "duration": "1h", "justification": "", "ticket": nil},
		"mfa":         map[string]any{"methods": []any{"pwd", "mfa"}, "auth_time": now.Add(-time.Minute).UnixNano()},
		"assignments": asgs, "elevations": fixture.Inputs(es),
	}
}

// approvalInput has the principal approve another's pending User
// Administrator request, with its own elevations as the evidence.
func approvalInput(r fixture.Request, i int, now time.Time) map[string]any {
	return map[string]any{
		"now": now.UnixNano(), "approver": r.Subject, "action": "approve", "justification": "benchmark approval",
		"request": map[string]any{
			"id": "act_pending", "principal": fixture.Principal(i + 1), "role": "user-administrator", "scope": r.Scope,
			"status": "pending_approval", "expires_at": now.Add(time.Hour).UnixNano(), "approvals": []any{},
		},
		"elevations": fixture.Inputs(fixture.Elevations(i, now)),
	}
}
