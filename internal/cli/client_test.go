// The API client commands, against a real in-process server. An external
// test package, because test/elevatetest itself imports package cli.
package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/cli"
	"github.com/elevatepdp/elevate/internal/demo"
	"github.com/elevatepdp/elevate/internal/store"
	"github.com/elevatepdp/elevate/internal/workflow"
	"github.com/elevatepdp/elevate/test/elevatetest"
)

type outcome struct {
	code           int
	stdout, stderr string
}

func elevate(args ...string) outcome {
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), args, &out, &errOut)
	return outcome{code, out.String(), errOut.String()}
}

// session runs commands against srv as a demo principal, and checks that
// no output ever shows a token or a TOTP secret.
type session struct {
	t   *testing.T
	srv *elevatetest.Server
}

func (s session) as(who string, args ...string) outcome {
	s.t.Helper()
	r := elevate(append(args, "--server", s.srv.URL, "--token", s.srv.Token(s.t, who))...)
	for _, p := range s.srv.Creds.Principals {
		for _, secret := range []string{p.Token, p.TOTPSecret} {
			if strings.Contains(r.stdout+r.stderr, secret) {
				s.t.Fatalf("elevate %v printed a secret of %s", args, p.Principal)
			}
		}
	}
	return r
}

func (r outcome) want(t *testing.T, code int) outcome {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// row is the table row holding cell, split into its cells.
func row(t *testing.T, table, cell string) []string {
	t.Helper()
	for line := range strings.SplitSeq(table, "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(line, cell) {
			return fields
		}
	}
	t.Fatalf("no row with %q in:\n%s", cell, table)
	return nil
}

var activationID = regexp.MustCompile(`act_[0-9a-f]+`)

// The product brief's story, as a user types it.
func TestStoryThroughTheCommandLine(t *testing.T) {
	s := session{t, elevatetest.Start(t, elevatetest.Options{Demo: true})}

	r := s.as("sophia", "authorize", "users.create").want(t, 1)
	if got := row(t, r.stdout, "users.create"); got[0] != "deny" {
		t.Fatalf("before activation: %q", r.stdout)
	}

	r = s.as("sophia", "activate", "user-administrator", "--justification", "Onboarding new hires",
		"--totp", s.srv.TOTP(t, "sophia", 0)).want(t, 0)
	id := activationID.FindString(r.stdout)
	got := row(t, r.stdout, id)
	// ID PRINCIPAL ROLE SCOPE STATUS DURATION APPROVALS START EXPIRES DEADLINE ENDED
	if len(got) != 11 || got[4] != string(store.Pending) || got[6] != "0/1" || got[8] != "-" || !isTime(got[9]) {
		t.Fatalf("activate printed %q; want pending with a deadline", r.stdout)
	}

	r = s.as("perparim", "requests", "--approvable").want(t, 0)
	if got := row(t, r.stdout, id); got[1] != s.srv.Principal(t, "sophia") || got[4] != string(store.Pending) {
		t.Fatalf("approvable requests: %q", r.stdout)
	}
	r = s.as("perparim", "approve", id, "--justification", "Onboarding confirmed").want(t, 0)
	if got := row(t, r.stdout, id); got[4] != string(store.Live) || !isTime(got[8]) {
		t.Fatalf("approve printed %q", r.stdout)
	}

	r = s.as("sophia", "authorize", "users.create").want(t, 0)
	if got := row(t, r.stdout, "user-administrator"); got[0] != "allow" {
		t.Fatalf("after approval: %q", r.stdout)
	}
	r = s.as("sophia", "my-roles").want(t, 0)
	if got := row(t, r.stdout, id); got[0] != "active" || !isTime(got[5]) {
		t.Fatalf("my-roles while active: %q", r.stdout)
	}

	s.as("sophia", "deactivate", id, "--justification", "Done").want(t, 0)
	s.as("sophia", "authorize", "users.create").want(t, 1)

	r = s.as("perparim", "audit", "--principal", "sophia.davis@perparims.example", "--type", string(audit.Approved)).want(t, 0)
	if got := row(t, r.stdout, id); got[1] != string(audit.Approved) || got[2] != s.srv.Principal(t, "perparim") {
		t.Fatalf("audit: %q", r.stdout)
	}
}

func isTime(s string) bool {
	t, err := time.Parse(time.RFC3339, s)
	return err == nil && t.Location() == time.UTC
}

func TestTables(t *testing.T) {
	s := session{t, elevatetest.Start(t, elevatetest.Options{Demo: true})}
	tests := map[string]struct {
		who    string
		args   []string
		header string
		cell   string
		row    []string
	}{
		"roles": {
			who: "sophia", args: []string{"roles"},
			header: "ID NAME PERMISSIONS MIN DEFAULT MAX MFA JUSTIFICATION TICKET APPROVAL",
			cell:   "user-administrator",
			row:    []string{"user-administrator", "User", "Administrator", "users.*,groups.read", "5m", "1h", "8h", "yes", "yes", "(min", "10)", "no", "1", "of", "role:privileged-role-administrator"},
		},
		"my-roles": {
			who: "sophia", args: []string{"my-roles"},
			header: "STATE ROLE SCOPE ID FROM UNTIL",
			cell:   "user-administrator",
			row:    []string{"eligible", "user-administrator", "/", "demo-sophia.davis-user-administrator", "-", "-"},
		},
		"assignments": {
			who: "perparim", args: []string{"assignments", "--principal", "emma.smith@perparims.example"},
			header: "ID PRINCIPAL ROLE SCOPE TYPE START END CREATED BY CREATED AT",
			cell:   "helpdesk",
			row:    []string{"demo-emma.smith-helpdesk-administrator", "emma.smith@perparims.example", "helpdesk-administrator", "/administrativeUnits/new-york-office", "eligible", "-", "-", "demo"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := s.as(tc.who, tc.args...).want(t, 0)
			lines := strings.Split(r.stdout, "\n")
			if got := strings.Join(strings.Fields(lines[0]), " "); got != tc.header {
				t.Fatalf("header %q, want %q", got, tc.header)
			}
			got := row(t, r.stdout, tc.cell)
			if len(got) < len(tc.row) || strings.Join(got[:len(tc.row)], " ") != strings.Join(tc.row, " ") {
				t.Fatalf("row %q, want it to start %q", got, tc.row)
			}
			// Aligned: every row's second column starts where the header's does.
			col := strings.Index(lines[0], strings.Fields(lines[0])[1])
			for _, line := range lines[1:] {
				if line != "" && (line[col-1] != ' ' || line[col] == ' ') {
					t.Fatalf("column 2 is not at %d in %q", col, line)
				}
			}
		})
	}
}

func TestJSONOutput(t *testing.T) {
	s := session{t, elevatetest.Start(t, elevatetest.Options{Demo: true})}
	tests := map[string]struct {
		who   string
		args  []string
		code  int
		into  func() any
		check func(v any) bool
	}{
		"roles": {who: "sophia", args: []string{"roles"}, into: func() any { return &[]workflow.Role{} },
			check: func(v any) bool { return len(*v.(*[]workflow.Role)) == 4 }},
		"my-roles": {who: "sophia", args: []string{"my-roles"}, into: func() any { return &workflow.MyRoles{} },
			check: func(v any) bool { return len(v.(*workflow.MyRoles).Eligible) == 1 }},
		"assignments": {who: "perparim", args: []string{"assignments"}, into: func() any { return &[]store.Assignment{} },
			check: func(v any) bool { return len(*v.(*[]store.Assignment)) == 5 }},
		"requests": {who: "sophia", args: []string{"requests"}, into: func() any { return &[]store.Activation{} },
			check: func(v any) bool { return len(*v.(*[]store.Activation)) == 0 }},
		"audit": {who: "perparim", args: []string{"audit", "--limit", "3"}, into: func() any { return &[]audit.Event{} },
			check: func(v any) bool { return len(*v.(*[]audit.Event)) <= 3 }},
		"authorize deny": {who: "sophia", args: []string{"authorize", "users.create"}, code: 1, into: func() any { return &workflow.Decision{} },
			check: func(v any) bool { d := v.(*workflow.Decision); return !d.Allow && d.DecisionID != "" }},
		"authorize allow": {who: "perparim", args: []string{"authorize", "roles.read"}, into: func() any { return &workflow.Decision{} },
			check: func(v any) bool { return v.(*workflow.Decision).Allow }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := s.as(tc.who, append(tc.args, "-o", "json")...).want(t, tc.code)
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			v := tc.into()
			if err := dec.Decode(v); err != nil || dec.More() {
				t.Fatalf("output is not one %T (%v):\n%s", v, err, r.stdout)
			}
			if !tc.check(v) {
				t.Fatalf("unexpected %T:\n%s", v, r.stdout)
			}
		})
	}
}

func TestAPIErrorsArePrintedWithTheirDetails(t *testing.T) {
	s := session{t, elevatetest.Start(t, elevatetest.Options{Demo: true})}
	r := s.as("sophia", "activate", "user-administrator", "--justification", "Onboarding new hires",
		"--totp", s.srv.TOTP(t, "sophia", 0), "-o", "json").want(t, 0)
	var act store.Activation
	if err := json.Unmarshal([]byte(r.stdout), &act); err != nil {
		t.Fatal(err)
	}

	r = s.as("sophia", "approve", act.ID, "--justification", "Approving my own").want(t, 1)
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if lines[0] != "elevate: policy_denied: approve denied by policy" {
		t.Fatalf("first line %q", lines[0])
	}
	if want := "  sophia.davis@perparims.example requested this elevation and cannot approve or deny it"; !strings.Contains(r.stderr, want+"\n") {
		t.Fatalf("stderr %q lacks the violation %q", r.stderr, want)
	}
	if r.stdout != "" {
		t.Fatalf("stdout %q; want nothing", r.stdout)
	}

	r = s.as("perparim", "assign", "not a principal", "user-administrator").want(t, 1)
	if !strings.HasPrefix(r.stderr, "elevate: invalid_value: the request has invalid values\n  principal \"not a principal\" is not") {
		t.Fatalf("stderr %q", r.stderr)
	}

	r = s.as("sophia", "cancel", act.ID).want(t, 0)
	if got := row(t, r.stdout, act.ID); got[4] != string(store.Cancelled) {
		t.Fatalf("cancel printed %q", r.stdout)
	}
}

func TestUnassignRevokesLiveElevations(t *testing.T) {
	s := session{t, elevatetest.Start(t, elevatetest.Options{Demo: true})}
	r := s.as("perparim", "activate", "application-administrator", "--justification", "Registering the HR app",
		"--duration", "30m", "--totp", s.srv.TOTP(t, "perparim", 0)).want(t, 0)
	id := activationID.FindString(r.stdout)
	if got := row(t, r.stdout, id); got[4] != string(store.Live) || got[5] != "30m" {
		t.Fatalf("activate printed %q; want live for 30m", r.stdout)
	}
	r = s.as("perparim", "unassign", "demo-perparim.abdullahu-application-administrator").want(t, 0)
	before, after, ok := strings.Cut(r.stdout, "Revoked:")
	if !ok || !strings.Contains(before, "demo-perparim.abdullahu-application-administrator") {
		t.Fatalf("unassign printed %q", r.stdout)
	}
	if got := row(t, after, id); got[4] != string(store.Revoked) {
		t.Fatalf("revoked %q", after)
	}
}

func TestMissingOrWrongToken(t *testing.T) {
	srv := elevatetest.Start(t, elevatetest.Options{Demo: true})
	t.Setenv("ELEVATE_TOKEN", "")
	tests := map[string][]string{
		"no token":    {"my-roles", "--server", srv.URL},
		"wrong token": {"my-roles", "--server", srv.URL, "--token", "elv_not-a-token"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			r := elevate(args...).want(t, 1)
			if !strings.HasPrefix(r.stderr, "elevate: unauthenticated: ") {
				t.Fatalf("stderr %q", r.stderr)
			}
		})
	}
	t.Run("token from the environment", func(t *testing.T) {
		t.Setenv("ELEVATE_TOKEN", srv.Token(t, "emma"))
		t.Setenv("ELEVATE_SERVER", srv.URL)
		elevate("my-roles").want(t, 0)
	})
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Setenv("ELEVATE_TOTP_SECRET", "")
	// Were a check missing, the call would go to a closed port and exit 1.
	with := func(args ...string) []string { return append(args, "--server", "http://127.0.0.1:1", "--token", "t") }
	tests := map[string]struct {
		args []string
		says string
	}{
		"missing id":          {args: with("approve"), says: "accepts 1 arg"},
		"missing role":        {args: with("activate"), says: "accepts 1 arg"},
		"missing action":      {args: with("authorize"), says: "accepts 1 arg"},
		"one of two":          {args: with("assign", "sophia.davis@perparims.example"), says: "accepts 2 arg"},
		"bad output":          {args: with("roles", "-o", "yaml"), says: "--output"},
		"bad type":            {args: with("assign", "p", "r", "--type", "permanent"), says: "--type"},
		"bad state":           {args: with("assignments", "--state", "live"), says: "--state"},
		"bad status":          {args: with("requests", "--status", "live"), says: "--status"},
		"approvable filtered": {args: with("requests", "--approvable", "--status", "active"), says: "--approvable"},
		"bad start":           {args: with("activate", "r", "--start", "tomorrow"), says: "--start"},
		"bad ticket":          {args: with("activate", "r", "--ticket", "INC1"), says: "--ticket"},
		"bad duration":        {args: with("activate", "r", "--duration", "an hour"), says: "--duration"},
		"extend no duration":  {args: with("extend", "act_1"), says: "--duration"},
		"zero limit":          {args: with("audit", "--limit", "0"), says: "--limit"},
		"non-numeric limit":   {args: with("audit", "--limit", "many"), says: "limit"},
		"bad since":           {args: with("audit", "--since", "yesterday"), says: "--since"},
		"unknown flag":        {args: with("roles", "--colour"), says: "colour"},
		"token in clear":      {args: []string{"roles", "--server", "http://elevate.example.com", "--token", "t"}, says: "plain http"},
		"no TOTP secret":      {args: []string{"totp", "code"}, says: "no secret"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := elevate(tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.says) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tc.says)
			}
		})
	}
}

// code runs elevate and checks that it printed the TOTP code of secret at
// the time it ran (one of two, should a step end meanwhile).
func wantCode(t *testing.T, secret string, args ...string) {
	t.Helper()
	before := time.Now()
	r := elevate(args...).want(t, 0)
	after := time.Now()
	var want []string
	for _, at := range []time.Time{before, after} {
		c, err := totp.GenerateCode(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, c+"\n")
	}
	if r.stdout != want[0] && r.stdout != want[1] {
		t.Fatalf("printed %q, want %q", r.stdout, want[0])
	}
}

func TestTOTPCode(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	t.Run("flag", func(t *testing.T) { wantCode(t, secret, "totp", "code", "--secret", secret) })
	t.Run("environment", func(t *testing.T) {
		t.Setenv("ELEVATE_TOTP_SECRET", secret)
		wantCode(t, secret, "totp", "code")
	})
	t.Run("not base32", func(t *testing.T) {
		r := elevate("totp", "code", "--secret", "not-base-32!").want(t, 2)
		if strings.Contains(r.stderr, "not-base-32!") {
			t.Fatalf("the error repeats the secret: %q", r.stderr)
		}
	})
}

func TestTOTPEnroll(t *testing.T) {
	srv := elevatetest.Start(t, elevatetest.Options{Demo: true})
	r := elevate("totp", "enroll", "--server", srv.URL, "--token", srv.Token(t, "alex"),
		"--totp", srv.TOTP(t, "alex", 0), "-o", "json").want(t, 0)
	var en struct{ Secret, URL string }
	if err := json.Unmarshal([]byte(r.stdout), &en); err != nil || en.Secret == "" || !strings.Contains(en.URL, en.Secret) {
		t.Fatalf("enroll printed %q (%v)", r.stdout, err)
	}
	// The new secret works: its code is accepted by an activation. Used
	// codes are remembered per step, whatever the secret: take the next.
	code, err := totp.GenerateCode(en.Secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	elevate("activate", "user-administrator", "--justification", "Onboarding new hires", "--totp", code,
		"--server", srv.URL, "--token", srv.Token(t, "alex")).want(t, 0)
}

func TestDemoCredentials(t *testing.T) {
	srv := elevatetest.Start(t, elevatetest.Options{Demo: true})
	dir := t.TempDir()
	file := filepath.Join(dir, "demo-credentials.json")
	if err := demo.Write(file, srv.Creds); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.json")
	if err := os.WriteFile(junk, []byte("sophia: not JSON"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		args []string
		code int
		out  string
	}{
		"sophia's token":        {args: []string{"token", "sophia"}, out: srv.Token(t, "sophia") + "\n"},
		"by display name":       {args: []string{"token", "Emma"}, out: srv.Token(t, "emma") + "\n"},
		"the gateway's token":   {args: []string{"token", "gateway"}, out: srv.Token(t, "gateway") + "\n"},
		"no TOTP for a client":  {args: []string{"totp", "gateway"}, code: 2},
		"nobody":                {args: []string{"token", "mallory"}, code: 2},
		"missing who":           {args: []string{"token"}, code: 2},
		"missing file":          {args: []string{"token", "sophia", "--file", filepath.Join(dir, "none.json")}, code: 1},
		"not a credential file": {args: []string{"token", "sophia", "--file", junk}, code: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"demo"}, tc.args...)
			if !strings.Contains(strings.Join(args, " "), "--file") {
				args = append(args, "--file", file)
			}
			r := elevate(args...).want(t, tc.code)
			if r.stdout != tc.out {
				t.Fatalf("printed %q, want %q", r.stdout, tc.out)
			}
		})
	}
	t.Run("sophia's TOTP", func(t *testing.T) {
		for _, p := range srv.Creds.Principals {
			if p.Principal == srv.Principal(t, "sophia") {
				wantCode(t, p.TOTPSecret, "demo", "totp", "sophia", "--file", file)
			}
		}
	})
	t.Run("the token works", func(t *testing.T) {
		token := strings.TrimSpace(elevate("demo", "token", "perparim", "--file", file).want(t, 0).stdout)
		elevate("my-roles", "--server", srv.URL, "--token", token).want(t, 0)
	})
}

// An administrator resets a principal's TOTP and invites them back; the
// principal enrols with the invite, once.
func TestTOTPInviteAndReset(t *testing.T) {
	srv := elevatetest.Start(t, elevatetest.Options{Demo: true})
	admin := []string{"--server", srv.URL, "--token", srv.Token(t, "perparim")}
	alex := []string{"--server", srv.URL, "--token", srv.Token(t, "alex")}
	alexName := srv.Principal(t, "alex")
	elevate(append([]string{"totp", "reset", alexName}, admin...)...).want(t, 0)
	elevate(append([]string{"totp", "invite", alexName}, alex...)...).want(t, 1) // not an admin
	r := elevate(append([]string{"totp", "invite", alexName, "-o", "json"}, admin...)...).want(t, 0)
	var inv struct {
		Principal, Code string
	}
	if err := json.Unmarshal([]byte(r.stdout), &inv); err != nil || inv.Principal != alexName || !strings.HasPrefix(inv.Code, "elvinv_") {
		t.Fatalf("invite printed %q (%v)", r.stdout, err)
	}
	r = elevate(append([]string{"totp", "enroll", "--invite", inv.Code, "-o", "json"}, alex...)...).want(t, 0)
	var en struct{ Secret string }
	if err := json.Unmarshal([]byte(r.stdout), &en); err != nil || en.Secret == "" {
		t.Fatalf("enroll printed %q (%v)", r.stdout, err)
	}
	elevate(append([]string{"totp", "enroll", "--invite", inv.Code}, alex...)...).want(t, 1)
}
