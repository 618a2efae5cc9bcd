package policy

import (
	"testing"
	"time"
)

// These tests run the shipped policies and demo data through the engine with
// the input shapes documented in policies/README.md: the contract between the
// Go service and the Rego it evaluates.

var (
	wednesday = time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC).UnixNano()
	saturday  = time.Date(2025, 1, 18, 10, 0, 0, 0, time.UTC).UnixNano()
)

const (
	sophia   = "sophia.davis@perparims.example"
	perparim = "perparim.abdullahu@perparims.example"
	emma     = "emma.smith@perparims.example"
	nyOffice = "/administrativeUnits/new-york-office"
)

func shipped(t *testing.T, extra ...string) *Engine {
	t.Helper()
	return newEngine(t, Source{Paths: append([]string{"../../policies", "../../bundles/demo"}, extra...)},
		func(o *Options) { o.Prepare = Entrypoints })
}

func decide(t *testing.T, e *Engine, q Query, input map[string]any) map[string]any {
	t.Helper()
	v, err := eval(t, e, q, input)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: decision %v is not an object", q, v)
	}
	return d
}

func eligible(principal, role, scope string) map[string]any {
	return map[string]any{"id": "asg-" + role, "principal": principal, "role": role, "scope": scope, "type": "eligible", "start": nil, "end": nil}
}

func activation(now int64, principal string, request map[string]any, assignment map[string]any) map[string]any {
	return map[string]any{
		"now": now, "principal": principal, "request": request,
		"mfa":         map[string]any{"methods": []any{"pwd", "otp"}, "auth_time": now - int64(time.Minute)},
		"assignments": []any{assignment},
		"elevations":  []any{},
	}
}

func violations(d map[string]any) []any {
	v, _ := d["violations"].([]any)
	return v
}

func TestShippedActivation(t *testing.T) {
	e := shipped(t)
	sophiaAsks := activation(wednesday, sophia,
		map[string]any{"role": "user-administrator", "scope": "/", "justification": "Onboarding three new hires"},
		eligible(sophia, "user-administrator", "/"))
	d := decide(t, e, ActivationDecision, sophiaAsks)
	if d["allow"] != true || d["requires_approval"] != true || toString(d["approvals_required"]) != "1" || d["duration"] != "1h" || d["assignment"] != "asg-user-administrator" {
		t.Fatalf("Sophia's User Administrator activation: %v", d)
	}

	sophiaAsks["mfa"] = nil
	if d := decide(t, e, ActivationDecision, sophiaAsks); d["allow"] != false || len(violations(d)) != 1 {
		t.Fatalf("activation without MFA: %v", d)
	}

	emmaAsks := func(scope string) map[string]any {
		return activation(wednesday, emma,
			map[string]any{"role": "helpdesk-administrator", "scope": scope, "ticket": map[string]any{"system": "ServiceNow", "number": "INC0042"}},
			eligible(emma, "helpdesk-administrator", nyOffice))
	}
	if d := decide(t, e, ActivationDecision, emmaAsks(nyOffice)); d["allow"] != true || d["requires_approval"] != false {
		t.Fatalf("Emma's Helpdesk activation in New York: %v", d)
	}
	if d := decide(t, e, ActivationDecision, emmaAsks("/")); d["allow"] != false {
		t.Fatalf("Emma's Helpdesk activation for the directory: %v", d)
	}
}

func TestShippedApprovalAndAuthz(t *testing.T) {
	e := shipped(t)
	request := map[string]any{
		"id": "req-1", "principal": sophia, "role": "user-administrator", "scope": "/",
		"status": "pending_approval", "expires_at": wednesday + int64(time.Hour), "approvals": []any{},
	}
	praForever := map[string]any{"id": "el-p", "role": "privileged-role-administrator", "scope": "/", "activated_at": 0, "expires_at": nil}
	approve := func(approver string, elevations []any) map[string]any {
		return decide(t, e, ApprovalDecision, map[string]any{
			"now": wednesday, "approver": approver, "action": "approve", "justification": "ok, onboarding",
			"request": request, "elevations": elevations,
		})
	}
	if d := approve(perparim, []any{praForever}); d["allow"] != true {
		t.Fatalf("Perparim approving: %v", d)
	}
	if d := approve(sophia, []any{praForever}); d["allow"] != false {
		t.Fatalf("Sophia approving her own request: %v", d)
	}

	authz := func(now int64, expires any) map[string]any {
		return decide(t, e, AuthzDecision, map[string]any{
			"subject": sophia, "action": "users.create", "scope": "/", "now": now,
			"elevations": []any{map[string]any{"id": "el-1", "role": "user-administrator", "scope": "/", "activated_at": wednesday, "expires_at": expires}},
		})
	}
	end := wednesday + int64(time.Hour)
	if d := authz(wednesday, end); d["allow"] != true {
		t.Fatalf("active elevation: %v", d)
	}
	if d := authz(end, end); d["allow"] != false {
		t.Fatalf("elevation at its end: %v", d)
	}
	if v, err := eval(t, e, AdminAllow, map[string]any{"principal": perparim, "action": "assignments.create", "scope": "/", "now": wednesday, "elevations": []any{praForever}}); err != nil || v != true {
		t.Fatalf("Perparim as admin: %v %v", v, err)
	}
}

// A file with one more deny rule, loaded beside the shipped policies,
// changes the decision: the extension point needs no Go change.
func TestShippedExtensionPoint(t *testing.T) {
	ask := func(e *Engine, now int64) map[string]any {
		return decide(t, e, ActivationDecision, activation(now, perparim,
			map[string]any{"role": "privileged-role-administrator", "justification": "Quarterly role review"},
			eligible(perparim, "privileged-role-administrator", "/")))
	}
	plain := shipped(t)
	extended := shipped(t, "../../test/testdata/extensions/business_hours.rego")
	if d := ask(plain, saturday); d["allow"] != true {
		t.Fatalf("without the extension: %v", d)
	}
	if d := ask(extended, wednesday); d["allow"] != true {
		t.Fatalf("with the extension, inside hours: %v", d)
	}
	d := ask(extended, saturday)
	if d["allow"] != false || len(violations(d)) != 1 {
		t.Fatalf("with the extension, on Saturday: %v", d)
	}
}
