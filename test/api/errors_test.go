package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/test/harness"
)

// fixture is the state the error cases run against.
type fixture struct {
	pending  string // Sophia's User Administrator request, waiting for approval
	live     string // Perparim's live Application Administrator elevation
	denied   string // Alex's User Administrator request, denied
	alexAsg  string // Alex's eligible test-role assignment
	alexLive string // Alex's live test-role elevation
	usedCode string // Sophia's TOTP code, used for pending
}

func newFixture(t *testing.T, e *env) fixture {
	t.Helper()
	var f fixture
	f.usedCode = e.TOTP(t, "sophia", 0)
	f.pending = e.call(t, "POST", "/v1/activations", "sophia", map[string]any{
		"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": f.usedCode},
	}).Want(t, 202)["id"].(string)
	f.live = e.activateApp(t, 0, "")["id"].(string)
	f.denied = e.requestUserAdmin(t, "alex", 0)
	e.call(t, "POST", "/v1/activations/"+f.denied+"/deny", "perparim", map[string]any{"justification": "not this week"}).Want(t, 200)
	f.alexAsg = e.assign(t, e.Principal(t, "alex"), "test-role", "/", "eligible")
	f.alexLive = e.activateTestRole(t, "alex")
	return f
}

func (f fixture) expand(s string) string {
	return strings.NewReplacer("{pending}", f.pending, "{live}", f.live, "{denied}", f.denied,
		"{alexAsg}", f.alexAsg, "{alexLive}", f.alexLive, "{usedCode}", f.usedCode).Replace(s)
}

// errorCase is a request that must be refused, changing nothing.
type errorCase struct {
	who          string // demo principal or client
	method, path string
	body         any // a map's string values and a string body are expanded
	status       int
	code         string
	violation    string // a violation it must name (policy_denied) or an error (invalid_value)
	// bug, when set, skips the case: the product answers otherwise.
	bug string
}

func (f fixture) expandBody(b any) any {
	switch v := b.(type) {
	case string:
		return f.expand(v)
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			out[k] = f.expandBody(x)
		}
		return out
	}
	return b
}

func runErrorCases(t *testing.T, e *env, f fixture, tests map[string]errorCase) {
	t.Helper()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip("BUG: " + tc.bug)
			}
			before := e.state(t)
			r := e.call(t, tc.method, f.expand(tc.path), tc.who, f.expandBody(tc.body))
			errs := wantError(t, r, tc.status, tc.code)
			if tc.violation != "" {
				wantViolation(t, errs, tc.violation)
			}
			e.unchanged(t, before)
		})
	}
}

const (
	ua = "user-administrator"
	tr = "test-role"
)

func act(role string, more ...any) map[string]any {
	m := map[string]any{"role": role}
	for i := 0; i+1 < len(more); i += 2 {
		m[more[i].(string)] = more[i+1]
	}
	return m
}

// Every refusal has its status, its code, a message, an errors array, and
// leaves every assignment, activation and success event as it was.
func TestErrors(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	f := newFixture(t, e)
	alex, sophia := e.Principal(t, "alex"), e.Principal(t, "sophia")
	soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	later := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	ticket := map[string]any{"system": "ServiceNow", "number": "INC0042"}

	t.Run("400", func(t *testing.T) {
		runErrorCases(t, e, f, map[string]errorCase{
			"malformed JSON, assignment":   {who: "perparim", method: "POST", path: "/v1/assignments", body: `{"principal":`, status: 400, code: "malformed_json"},
			"malformed JSON, activation":   {who: "alex", method: "POST", path: "/v1/activations", body: `{role: "test-role"}`, status: 400, code: "malformed_json"},
			"malformed JSON, authorize":    {who: "sophia", method: "POST", path: "/v1/authorize", body: `not json`, status: 400, code: "malformed_json"},
			"malformed JSON, approve":      {who: "perparim", method: "POST", path: "/v1/activations/{pending}/approve", body: `{"justification": "ok"`, status: 400, code: "malformed_json"},
			"malformed JSON, deny":         {who: "perparim", method: "POST", path: "/v1/activations/{pending}/deny", body: `justification=no`, status: 400, code: "malformed_json"},
			"malformed JSON, cancel":       {who: "sophia", method: "POST", path: "/v1/activations/{pending}/cancel", body: `{`, status: 400, code: "malformed_json"},
			"malformed JSON, deactivate":   {who: "perparim", method: "POST", path: "/v1/activations/{live}/deactivate", body: `{]`, status: 400, code: "malformed_json"},
			"malformed JSON, extend":       {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/extend", body: `{"duration": 30m}`, status: 400, code: "malformed_json"},
			"malformed JSON, enrolment":    {who: "sophia", method: "POST", path: "/v1/mfa/totp/enroll", body: `{"totp":`, status: 400, code: "malformed_json"},
			"two JSON values":              {who: "perparim", method: "POST", path: "/v1/assignments", body: `{"principal":"` + alex + `","role":"helpdesk-administrator"} {}`, status: 400, code: "malformed_json"},
			"trailing garbage":             {who: "perparim", method: "POST", path: "/v1/activations/{pending}/approve", body: `{"justification": "fine"} x`, status: 400, code: "malformed_json"},
			"unknown field, assignment":    {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": alex, "role": "helpdesk-administrator", "expires": soon}, status: 400, code: "unknown_field"},
			"unknown field, activation":    {who: "sophia", method: "POST", path: "/v1/activations", body: act(ua, "justification", why, "mfa", map[string]any{"totp": "123456"}, "reason", "x"), status: 400, code: "unknown_field"},
			"unknown field, nested":        {who: "emma", method: "POST", path: "/v1/activations", body: act("helpdesk-administrator", "scope", nyOffice, "ticket", map[string]any{"system": "SN", "number": "INC1", "url": "x"}), status: 400, code: "unknown_field"},
			"unknown field, approve":       {who: "perparim", method: "POST", path: "/v1/activations/{pending}/approve", body: map[string]any{"justification": "Confirmed", "comment": "x"}, status: 400, code: "unknown_field"},
			"unknown field, authorize":     {who: "gateway", method: "POST", path: "/v1/authorize", body: map[string]any{"subject": alex, "action": "test.run", "resource": "x"}, status: 400, code: "unknown_field"},
			"unknown field, extend":        {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/extend", body: map[string]any{"duration": "30m", "reason": "x"}, status: 400, code: "unknown_field"},
			"unknown field, enrolment":     {who: "sophia", method: "POST", path: "/v1/mfa/totp/enroll", body: map[string]any{"code": "123456"}, status: 400, code: "unknown_field"},
			"empty body, assignment":       {who: "perparim", method: "POST", path: "/v1/assignments", body: "", status: 400, code: "malformed_json"},
			"empty body, activation":       {who: "alex", method: "POST", path: "/v1/activations", body: "", status: 400, code: "malformed_json"},
			"empty body, authorize":        {who: "gateway", method: "POST", path: "/v1/authorize", body: "", status: 400, code: "malformed_json"},
			"empty body, extend":           {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/extend", body: "", status: 400, code: "malformed_json"},
			"white space body, activation": {who: "alex", method: "POST", path: "/v1/activations", body: "  \n ", status: 400, code: "malformed_json"},
		})
	})

	t.Run("403 policy_denied", func(t *testing.T) {
		runErrorCases(t, e, f, map[string]errorCase{
			"justification too short":         {who: "sophia", method: "POST", path: "/v1/activations", body: act(ua, "justification", "short"), status: 403, code: "policy_denied", violation: "at least 10 characters"},
			"no justification":                {who: "sophia", method: "POST", path: "/v1/activations", body: act(ua), status: 403, code: "policy_denied", violation: "a justification is required"},
			"no MFA":                          {who: "sophia", method: "POST", path: "/v1/activations", body: act(ua, "justification", why), status: 403, code: "policy_denied", violation: "multi-factor authentication is required"},
			"missing ticket":                  {who: "emma", method: "POST", path: "/v1/activations", body: act("helpdesk-administrator", "scope", nyOffice), status: 403, code: "policy_denied", violation: "a ticket (system and number) is required"},
			"ticket not matching its pattern": {who: "emma", method: "POST", path: "/v1/activations", body: act("helpdesk-administrator", "scope", nyOffice, "ticket", map[string]any{"system": "SN", "number": "CHG0042"}), status: 403, code: "policy_denied", violation: "does not match the pattern"},
			"TOTP code already used":          {who: "sophia", method: "POST", path: "/v1/activations", body: act(ua, "justification", why, "mfa", map[string]any{"totp": "{usedCode}"}), status: 403, code: "policy_denied", violation: "already used"},
			"TOTP code malformed":             {who: "sophia", method: "POST", path: "/v1/activations", body: act(ua, "justification", why, "mfa", map[string]any{"totp": "12345x"}), status: 403, code: "policy_denied", violation: "TOTP code is wrong"},
			"no eligible assignment":          {who: "sophia", method: "POST", path: "/v1/activations", body: act(tr), status: 403, code: "policy_denied", violation: "has no eligible assignment"},
			"scope outside the eligibility":   {who: "emma", method: "POST", path: "/v1/activations", body: act("helpdesk-administrator", "scope", "/", "ticket", ticket), status: 403, code: "policy_denied", violation: "has no eligible assignment"},
			"duration over the maximum":       {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "duration", "9h", "scope", "/administrativeUnits/x"), status: 403, code: "policy_denied", violation: "exceeds the maximum"},
			"duration under the minimum":      {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "duration", "1m", "scope", "/administrativeUnits/x"), status: 403, code: "policy_denied", violation: "below the minimum"},
			"start in the past":               {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "scope", "/x", "start", "2020-01-01T00:00:00Z"), status: 403, code: "policy_denied", violation: "in the past"},
			"approval by a non-approver":      {who: "alex", method: "POST", path: "/v1/activations/{pending}/approve", body: map[string]any{"justification": "Looks fine to me"}, status: 403, code: "policy_denied", violation: "is not an approver"},
			"denial by a non-approver":        {who: "emma", method: "POST", path: "/v1/activations/{pending}/deny", body: map[string]any{"justification": "No"}, status: 403, code: "policy_denied", violation: "is not an approver"},
			"approval without justification":  {who: "perparim", method: "POST", path: "/v1/activations/{pending}/approve", status: 403, code: "policy_denied", violation: "a justification is required"},
			"extension over the maximum":      {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/extend", body: map[string]any{"duration": "20h"}, status: 403, code: "policy_denied", violation: "exceeds the maximum"},
			"re-enrolment without a code":     {who: "sophia", method: "POST", path: "/v1/mfa/totp/enroll", status: 403, code: "policy_denied", violation: "already enrolled"},
			"re-enrolment with a used code":   {who: "sophia", method: "POST", path: "/v1/mfa/totp/enroll", body: map[string]any{"totp": "{usedCode}"}, status: 403, code: "policy_denied", violation: "already enrolled"},
			"re-enrolment with a bad code":    {who: "sophia", method: "POST", path: "/v1/mfa/totp/enroll", body: map[string]any{"totp": "abcdef"}, status: 403, code: "policy_denied", violation: "already enrolled"},
		})
	})

	t.Run("403 forbidden", func(t *testing.T) {
		runErrorCases(t, e, f, map[string]errorCase{
			"non-admin creates an assignment":                       {who: "sophia", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": sophia, "role": ua, "type": "active"}, status: 403, code: "forbidden"},
			"decision client creates an assignment":                 {who: "gateway", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": sophia, "role": ua, "type": "active"}, status: 403, code: "forbidden"},
			"non-admin deletes an assignment":                       {who: "sophia", method: "DELETE", path: "/v1/assignments/{alexAsg}", status: 403, code: "forbidden"},
			"non-admin deactivates another's (answered as unknown)": {who: "alex", method: "POST", path: "/v1/activations/{live}/deactivate", status: 404, code: "not_found"},
			"decision client deactivates":                           {who: "gateway", method: "POST", path: "/v1/activations/{alexLive}/deactivate", status: 403, code: "forbidden"},
			"decision client activates":                             {who: "gateway", method: "POST", path: "/v1/activations", body: act(tr), status: 403, code: "forbidden"},
			"decision client approves":                              {who: "gateway", method: "POST", path: "/v1/activations/{pending}/approve", body: map[string]any{"justification": "Approved by the gateway"}, status: 403, code: "forbidden"},
			"decision client reads my roles":                        {who: "gateway", method: "GET", path: "/v1/me/roles", status: 403, code: "forbidden"},
			"decision client reads approvals":                       {who: "gateway", method: "GET", path: "/v1/approvals", status: 403, code: "forbidden"},
			"decision client enrols":                                {who: "gateway", method: "POST", path: "/v1/mfa/totp/enroll", status: 403, code: "forbidden"},
			"decision client cancels":                               {who: "gateway", method: "POST", path: "/v1/activations/{pending}/cancel", status: 403, code: "forbidden"},
			"cancel another's request (answered as unknown)":        {who: "alex", method: "POST", path: "/v1/activations/{pending}/cancel", status: 404, code: "not_found"},
			"extend another's elevation (answered as unknown)":      {who: "sophia", method: "POST", path: "/v1/activations/{alexLive}/extend", body: map[string]any{"duration": "30m"}, status: 404, code: "not_found"},
			"non-admin lists another's assignments":                 {who: "sophia", method: "GET", path: "/v1/assignments" + q("principal", alex), status: 403, code: "forbidden"},
			"non-admin lists another's activations":                 {who: "sophia", method: "GET", path: "/v1/activations" + q("principal", alex), status: 403, code: "forbidden"},
			"non-admin reads another's audit":                       {who: "sophia", method: "GET", path: "/v1/audit" + q("principal", alex), status: 403, code: "forbidden"},
			"non-admin asks about another":                          {who: "sophia", method: "POST", path: "/v1/authorize", body: map[string]any{"subject": alex, "action": "test.run"}, status: 403, code: "forbidden"},
		})
	})

	t.Run("404", func(t *testing.T) {
		runErrorCases(t, e, f, map[string]errorCase{
			"unknown activation":                  {who: "perparim", method: "GET", path: "/v1/activations/" + noSuchActivation, status: 404, code: "not_found"},
			"approve an unknown activation":       {who: "perparim", method: "POST", path: "/v1/activations/" + noSuchActivation + "/approve", body: map[string]any{"justification": "Confirmed"}, status: 404, code: "not_found"},
			"deactivate an unknown activation":    {who: "perparim", method: "POST", path: "/v1/activations/" + noSuchActivation + "/deactivate", status: 404, code: "not_found"},
			"extend an unknown activation":        {who: "alex", method: "POST", path: "/v1/activations/" + noSuchActivation + "/extend", body: map[string]any{"duration": "30m"}, status: 404, code: "not_found"},
			"another's activation, to a stranger": {who: "alex", method: "GET", path: "/v1/activations/{pending}", status: 404, code: "not_found"},
			"unknown role, activation":            {who: "alex", method: "POST", path: "/v1/activations", body: act("global-administrator"), status: 404, code: "not_found"},
			"unknown role, assignment":            {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": alex, "role": "global-administrator"}, status: 404, code: "not_found"},
			"unknown assignment":                  {who: "perparim", method: "DELETE", path: "/v1/assignments/asg_000000000000000000000000", status: 404, code: "not_found"},
			"unknown route":                       {who: "perparim", method: "GET", path: "/v1/elevations", status: 404, code: "not_found"},
			"unknown action on an activation":     {who: "perparim", method: "POST", path: "/v1/activations/{pending}/escalate", body: map[string]any{"justification": "Confirmed"}, status: 404, code: "not_found"},
		})
	})

	t.Run("405", func(t *testing.T) {
		runErrorCases(t, e, f, map[string]errorCase{
			"PUT roles":            {who: "perparim", method: "PUT", path: "/v1/roles", body: map[string]any{}, status: 405, code: "method_not_allowed"},
			"DELETE an activation": {who: "perparim", method: "DELETE", path: "/v1/activations/{live}", status: 405, code: "method_not_allowed"},
		})
	})

	t.Run("409", func(t *testing.T) {
		runErrorCases(t, e, f, map[string]errorCase{
			"approve a request no longer pending": {who: "perparim", method: "POST", path: "/v1/activations/{denied}/approve", body: map[string]any{"justification": "Changed my mind"}, status: 409, code: "conflict"},
			"deny a request no longer pending":    {who: "perparim", method: "POST", path: "/v1/activations/{denied}/deny", body: map[string]any{"justification": "Again"}, status: 409, code: "conflict"},
			"approve a live elevation":            {who: "perparim", method: "POST", path: "/v1/activations/{alexLive}/approve", body: map[string]any{"justification": "Confirmed"}, status: 409, code: "conflict"},
			"cancel an active elevation":          {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/cancel", status: 409, code: "conflict"},
			"cancel a denied request":             {who: "alex", method: "POST", path: "/v1/activations/{denied}/cancel", status: 409, code: "conflict"},
			"deactivate a pending request":        {who: "sophia", method: "POST", path: "/v1/activations/{pending}/deactivate", status: 409, code: "conflict"},
			"extend a pending request":            {who: "sophia", method: "POST", path: "/v1/activations/{pending}/extend", body: map[string]any{"duration": "30m"}, status: 409, code: "conflict"},
			"activate a role already active":      {who: "alex", method: "POST", path: "/v1/activations", body: act(tr), status: 409, code: "conflict"},
		})
	})

	t.Run("422", func(t *testing.T) {
		runErrorCases(t, e, f, map[string]errorCase{
			"unparsable duration":              {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "scope", "/x", "duration", "forever"), status: 422, code: "invalid_value", violation: "forever"},
			"bad scope, activation":            {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "scope", "administrativeUnits"), status: 422, code: "invalid_value", violation: "administrativeUnits"},
			"dot-dot scope, activation":        {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "scope", "/a/../b"), status: 422, code: "invalid_value"},
			"trailing slash scope, assignment": {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": alex, "role": tr, "scope": nyOffice + "/"}, status: 422, code: "invalid_value"},
			"bad RFC 3339 end":                 {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": alex, "role": tr, "end": "next tuesday"}, status: 422, code: "invalid_value", violation: "RFC 3339"},
			"bad RFC 3339 start":               {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "scope", "/x", "start", "2026-13-01T00:00:00Z"), status: 422, code: "invalid_value", violation: "RFC 3339"},
			"end in the past":                  {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": alex, "role": tr, "end": "2020-01-01T00:00:00Z"}, status: 422, code: "invalid_value", violation: "in the past"},
			"end before start":                 {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": alex, "role": tr, "start": later, "end": soon}, status: 422, code: "invalid_value", violation: "not after start"},
			"eligibility beyond its maximum":   {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": alex, "role": tr, "end": time.Now().Add(9000 * time.Hour).UTC().Format(time.RFC3339)}, status: 422, code: "invalid_value", violation: "at most"},
			"unknown assignment type":          {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": alex, "role": tr, "type": "permanent"}, status: 422, code: "invalid_value", violation: "permanent"},
			"principal with white space":       {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": "alex johnson", "role": tr}, status: 422, code: "invalid_value"},
			"principal too long":               {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": strings.Repeat("a", 250) + "@perparims.example", "role": tr}, status: 422, code: "invalid_value"},
			"no principal":                     {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"role": tr}, status: 422, code: "invalid_value"},
			"value of the wrong type":          {who: "alex", method: "POST", path: "/v1/activations", body: map[string]any{"role": 5}, status: 422, code: "invalid_value", violation: "role"},
			"array body":                       {who: "alex", method: "POST", path: "/v1/activations", body: `["test-role"]`, status: 422, code: "invalid_value"},
			"bad state filter, assignments":    {who: "perparim", method: "GET", path: "/v1/assignments" + q("state", "pending"), status: 422, code: "invalid_value", violation: "pending"},
			"bad principal filter":             {who: "perparim", method: "GET", path: "/v1/assignments" + q("principal", "alex johnson"), status: 422, code: "invalid_value"},
			"bad time filter, audit":           {who: "perparim", method: "GET", path: "/v1/audit" + q("since", "yesterday"), status: 422, code: "invalid_value", violation: "since"},
			"bad limit, audit":                 {who: "perparim", method: "GET", path: "/v1/audit" + q("limit", "0"), status: 422, code: "invalid_value", violation: "limit"},
			"no action, authorize":             {who: "gateway", method: "POST", path: "/v1/authorize", body: map[string]any{"subject": alex}, status: 422, code: "invalid_value", violation: "action"},
			"bad subject, authorize":           {who: "gateway", method: "POST", path: "/v1/authorize", body: map[string]any{"subject": "alex\tjohnson", "action": "test.run"}, status: 422, code: "invalid_value"},
			"unparsable extension":             {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/extend", body: map[string]any{"duration": "soon"}, status: 422, code: "invalid_value", violation: "soon"},
			"negative extension":               {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/extend", body: map[string]any{"duration": "-30m"}, status: 422, code: "invalid_value"},
			"bad status filter, activations":   {who: "perparim", method: "GET", path: "/v1/activations" + q("status", "bogus"), status: 422, code: "invalid_value"},
			"bad type filter, audit":           {who: "perparim", method: "GET", path: "/v1/audit" + q("type", "activation.aproved"), status: 422, code: "invalid_value"},
			"no role, activation":              {who: "alex", method: "POST", path: "/v1/activations", body: map[string]any{}, status: 422, code: "invalid_value"},
		})
	})
}

// A body over --max-body-bytes is refused with 413 before anything is
// decided; a body of exactly the limit is accepted.
func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	const limit = 1024
	e := startEnv(t, harness.Redis(t), envOptions{Args: []string{"--max-body-bytes", "1024"}})
	f := newFixture(t, e)
	big := strings.Repeat("x", 2*limit)
	runErrorCases(t, e, f, map[string]errorCase{
		"activation":    {who: "sophia", method: "POST", path: "/v1/activations", body: act(ua, "justification", big), status: 413, code: "too_large"},
		"assignment":    {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": e.Principal(t, "alex"), "role": "helpdesk-administrator", "justification": big}, status: 413, code: "too_large"},
		"approve":       {who: "perparim", method: "POST", path: "/v1/activations/{pending}/approve", body: map[string]any{"justification": big}, status: 413, code: "too_large"},
		"deny":          {who: "perparim", method: "POST", path: "/v1/activations/{pending}/deny", body: map[string]any{"justification": big}, status: 413, code: "too_large"},
		"cancel":        {who: "sophia", method: "POST", path: "/v1/activations/{pending}/cancel", body: map[string]any{"justification": big}, status: 413, code: "too_large"},
		"deactivate":    {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/deactivate", body: map[string]any{"justification": big}, status: 413, code: "too_large"},
		"extend":        {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/extend", body: map[string]any{"duration": "30m", "justification": big}, status: 413, code: "too_large"},
		"enrolment":     {who: "sophia", method: "POST", path: "/v1/mfa/totp/enroll", body: map[string]any{"totp": big}, status: 413, code: "too_large"},
		"authorize":     {who: "gateway", method: "POST", path: "/v1/authorize", body: map[string]any{"action": big}, status: 413, code: "too_large"},
		"one byte over": {who: "alex", method: "POST", path: "/v1/activations", body: sized(t, limit+1, "/over"), status: 413, code: "too_large"},
	})
	t.Run("exactly the limit", func(t *testing.T) {
		e.call(t, "POST", "/v1/activations", "alex", sized(t, limit, "/at")).Want(t, 201)
	})
}

// sized is a test-role activation body at scope of exactly n bytes.
func sized(t *testing.T, n int, scope string) string {
	t.Helper()
	head, tail := `{"role":"test-role","scope":"`+scope+`","justification":"`, `"}`
	pad := n - len(head) - len(tail)
	if pad < 0 {
		t.Fatalf("%d bytes is too small", n)
	}
	return head + strings.Repeat("j", pad) + tail
}

// A pending request whose eligible assignment was removed can no longer be
// granted. Approving it is a conflict with its state; the activation is
// there (GET answers 200), so "not found" is wrong, and nothing starts.
func TestApproveAfterEligibilityRemoved(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	id := e.requestUserAdmin(t, "sophia", 0)
	e.call(t, "DELETE", "/v1/assignments/demo-sophia.davis-user-administrator", "perparim", nil).Want(t, 200)
	before := e.state(t)
	r := e.call(t, "POST", "/v1/activations/"+id+"/approve", "perparim", map[string]any{"justification": "Confirmed"})
	wantError(t, r, 409, "conflict")
	e.unchanged(t, before)
	if e.allowed(t, e.Principal(t, "sophia"), "users.create", "/") {
		t.Fatal("Sophia is allowed without an eligible assignment")
	}
}
