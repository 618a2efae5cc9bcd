package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/client"
	"github.com/elevatepdp/elevate/internal/store"
	"github.com/elevatepdp/elevate/internal/workflow"
	"github.com/elevatepdp/elevate/test/elevatetest"
)

// roundTripFunc lets a test see whether a request left the client at all.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var errNotSent = errors.New("stopped by the test transport")

func TestNewRefusesUnsafeServers(t *testing.T) {
	tests := map[string]struct {
		server, token string
		refused       string // part of the error; "" when the request may go out
	}{
		"token over http to a remote host": {server: "http://elevate.example.com", token: "secret-token", refused: "plain http"},
		"token over http to a remote IP":   {server: "http://192.0.2.7:8181", token: "secret-token", refused: "plain http"},
		"token over https":                 {server: "https://elevate.example.com", token: "secret-token"},
		"token over http to 127.0.0.1":     {server: "http://127.0.0.1:8181", token: "secret-token"},
		"token over http to ::1":           {server: "http://[::1]:8181", token: "secret-token"},
		"token over http to localhost":     {server: "http://localhost:8181", token: "secret-token"},
		"no token over http":               {server: "http://elevate.example.com"},
		"path prefix":                      {server: "https://gw.example.com/elevate/", token: "secret-token"},
		"no scheme":                        {server: "elevate.example.com", token: "t", refused: "https://"},
		"other scheme":                     {server: "ftp://elevate.example.com", token: "t", refused: "https://"},
		"credentials in the URL":           {server: "https://u:pw@elevate.example.com", token: "t", refused: "no user or password"},
		"query":                            {server: "https://elevate.example.com?x=1", token: "t", refused: "query"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var sent atomic.Bool
			hc := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
				sent.Store(true)
				return nil, errNotSent
			})}
			c := client.New(tc.server, tc.token, hc)
			_, err := c.Roles(context.Background())
			if tc.refused == "" {
				if c.Err() != nil || !errors.Is(err, errNotSent) || !sent.Load() {
					t.Fatalf("Err %v, call error %v, sent %v; want the request sent", c.Err(), err, sent.Load())
				}
				return
			}
			if sent.Load() || err == nil || !strings.Contains(err.Error(), tc.refused) || c.Err() == nil {
				t.Fatalf("sent %v, error %v; want nothing sent and an error saying %q", sent.Load(), err, tc.refused)
			}
			if strings.Contains(err.Error(), "secret-token") || strings.Contains(err.Error(), "pw") {
				t.Fatalf("error %q shows a credential", err)
			}
		})
	}
}

func TestClientNeverPrintsItsToken(t *testing.T) {
	c := client.New("https://elevate.example.com", "secret-token", nil)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, c); strings.Contains(s, "secret-token") {
			t.Errorf("%s prints the token: %s", verb, s)
		}
	}
}

// The API never redirects; a redirect must not carry the token anywhere.
func TestRedirectIsNotFollowed(t *testing.T) {
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("Authorization") != "")
	}))
	defer elsewhere.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	defer redirector.Close()

	_, err := client.New(redirector.URL, "secret-token", nil).Roles(context.Background())
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusFound || leaked.Load() {
		t.Fatalf("error %v, token sent on %v; want a 302 error and no second request", err, leaked.Load())
	}
}

func TestAnswerSizeIsLimited(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"roles": "`)
		chunk := strings.Repeat("x", 1<<20)
		for range client.MaxAnswerBytes>>20 + 1 {
			fmt.Fprint(w, chunk)
		}
		fmt.Fprint(w, `"}`)
	}))
	defer big.Close()
	_, err := client.New(big.URL, "t", nil).Roles(context.Background())
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("error %v; want the answer refused as too large", err)
	}
}

func TestTimeout(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	start := time.Now()
	_, err := client.New(slow.URL, "t", &http.Client{Timeout: 100 * time.Millisecond}).Roles(context.Background())
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("error %v after %v; want a time-out", err, time.Since(start))
	}
}

func TestPathPrefixAndEscaping(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.EscapedPath() + "?" + r.URL.RawQuery)
		fmt.Fprint(w, `{"id": "x"}`)
	}))
	defer srv.Close()
	ctx := context.Background()
	c := client.New(srv.URL+"/elevate/", "t", nil)
	tests := map[string]struct {
		call func() error
		want string
	}{
		"id with a slash": {
			call: func() error { _, err := c.Activation(ctx, "a/b c"); return err },
			want: "/elevate/v1/activations/a%2Fb%20c?",
		},
		"query": {
			call: func() error {
				_, err := c.Audit(ctx, audit.Filter{Principal: "sophia+x@example.com", Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Limit: 2})
				return err
			},
			want: "/elevate/v1/audit?limit=2&principal=sophia%2Bx%40example.com&since=2026-01-02T03%3A04%3A05Z",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			if got.Load() != tc.want {
				t.Fatalf("requested %v, want %s", got.Load(), tc.want)
			}
		})
	}
}

func TestNonElevateErrorAnswer(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer proxy.Close()
	_, err := client.New(proxy.URL, "t", nil).MyRoles(context.Background())
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "http_502" || apiErr.Status != http.StatusBadGateway {
		t.Fatalf("error %#v; want an APIError with code http_502", err)
	}
}

func wantAPIError(t *testing.T, err error, status int, code string) *client.APIError {
	t.Helper()
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != status || apiErr.Code != code {
		t.Fatalf("error %v; want an APIError %d %s", err, status, code)
	}
	if !strings.Contains(err.Error(), code) || !strings.Contains(err.Error(), apiErr.Message) {
		t.Fatalf("Error() = %q leaves out the code or message", err)
	}
	for _, e := range apiErr.Errors {
		if !strings.Contains(err.Error(), e) {
			t.Fatalf("Error() = %q leaves out %q", err, e)
		}
	}
	return apiErr
}

// The product brief's story, through the typed client.
func TestStory(t *testing.T) {
	srv := elevatetest.Start(t, elevatetest.Options{Demo: true})
	ctx := context.Background()
	sophia := client.New(srv.URL, srv.Token(t, "sophia"), nil)
	perparim := client.New(srv.URL, srv.Token(t, "perparim"), nil)
	usersCreate := workflow.AuthorizeRequest{Action: "users.create"}

	roles, err := sophia.Roles(ctx)
	if err != nil || !slices.ContainsFunc(roles, func(r workflow.Role) bool {
		return r.ID == "user-administrator" && r.Settings.RequireApproval && r.Name == "User Administrator"
	}) {
		t.Fatalf("roles %+v, %v", roles, err)
	}
	mine, err := sophia.MyRoles(ctx)
	if err != nil || len(mine.Eligible) != 1 || mine.Eligible[0].Role != "user-administrator" {
		t.Fatalf("my roles %+v, %v", mine, err)
	}
	if d, err := sophia.Authorize(ctx, usersCreate); err != nil || d.Allow || d.DecisionID == "" {
		t.Fatalf("before activation: %+v, %v; want a denial", d, err)
	}

	act, err := sophia.Activate(ctx, workflow.ActivationRequest{
		Role: "user-administrator", Justification: "Onboarding new hires",
		MFA: &workflow.MFAEvidence{TOTP: srv.TOTP(t, "sophia", 0)},
	})
	if err != nil || act.Status != store.Pending || act.Deadline == nil {
		t.Fatalf("activate: %+v, %v; want pending with a deadline", act, err)
	}

	denied := wantAPIError(t, ignoreFirst(sophia.Approve(ctx, act.ID, "I approve myself")), http.StatusForbidden, "policy_denied")
	if !slices.ContainsFunc(denied.Errors, func(e string) bool { return strings.Contains(e, "cannot approve") }) {
		t.Fatalf("violations %q do not say a requester cannot approve", denied.Errors)
	}

	pending, err := perparim.Approvals(ctx)
	if err != nil || len(pending) != 1 || pending[0].ID != act.ID {
		t.Fatalf("approvals %+v, %v; want %s", pending, err, act.ID)
	}
	approved, err := perparim.Approve(ctx, act.ID, "Onboarding confirmed")
	if err != nil || approved.Status != store.Live || approved.ExpiresAt == nil {
		t.Fatalf("approve: %+v, %v", approved, err)
	}
	if d, err := sophia.Authorize(ctx, usersCreate); err != nil || !d.Allow {
		t.Fatalf("after approval: %+v, %v; want allow", d, err)
	}
	got, err := sophia.Activation(ctx, act.ID)
	if err != nil || got.Status != store.Live {
		t.Fatalf("activation: %+v, %v", got, err)
	}
	if mine, err := sophia.MyRoles(ctx); err != nil || len(mine.Active) != 1 || mine.Active[0].ID != act.ID {
		t.Fatalf("my roles when active: %+v, %v", mine, err)
	}

	ended, err := sophia.Deactivate(ctx, act.ID, "done")
	if err != nil || ended.Status != store.Deactivated {
		t.Fatalf("deactivate: %+v, %v", ended, err)
	}
	if d, err := sophia.Authorize(ctx, usersCreate); err != nil || d.Allow {
		t.Fatalf("after deactivation: %+v, %v; want deny", d, err)
	}

	events, err := perparim.Audit(ctx, audit.Filter{Principal: srv.Principal(t, "sophia"), Type: audit.Approved, Since: time.Now().Add(-time.Hour)})
	if err != nil || len(events) != 1 || events[0].ActivationID != act.ID || events[0].Actor != srv.Principal(t, "perparim") {
		t.Fatalf("audit: %+v, %v", events, err)
	}
	if list, err := sophia.Activations(ctx, client.ActivationQuery{Status: store.Deactivated}); err != nil || len(list) != 1 {
		t.Fatalf("activations: %+v, %v", list, err)
	}
}

func ignoreFirst[T any](_ T, err error) error { return err }

func TestAssignmentsAndExtend(t *testing.T) {
	srv := elevatetest.Start(t, elevatetest.Options{Demo: true})
	ctx := context.Background()
	perparim := client.New(srv.URL, srv.Token(t, "perparim"), nil)
	emma := srv.Principal(t, "emma")

	asg, err := perparim.CreateAssignment(ctx, workflow.AssignmentRequest{
		Principal: emma, Role: "application-administrator", Scope: "/", Type: store.Eligible,
		Justification: "Emma runs the app migration",
	})
	if err != nil || asg.ID == "" || asg.Principal != emma {
		t.Fatalf("assign: %+v, %v", asg, err)
	}
	list, err := perparim.Assignments(ctx, client.AssignmentQuery{Principal: emma, State: workflow.StateEligible})
	if err != nil || !slices.ContainsFunc(list, func(a store.Assignment) bool { return a.ID == asg.ID }) {
		t.Fatalf("assignments %+v, %v; want %s", list, err, asg.ID)
	}

	// application-administrator needs MFA but no approval: live at once.
	emmaClient := client.New(srv.URL, srv.Token(t, "emma"), nil)
	act, err := emmaClient.Activate(ctx, workflow.ActivationRequest{
		Role: "application-administrator", Duration: "1h", Justification: "Migrating the payroll app",
		MFA: &workflow.MFAEvidence{TOTP: srv.TOTP(t, "emma", 0)},
	})
	if err != nil || act.Status != store.Live {
		t.Fatalf("activate: %+v, %v", act, err)
	}
	longer, err := emmaClient.Extend(ctx, act.ID, workflow.ExtendRequest{
		Duration: "30m", Justification: "Migration takes longer",
		MFA: &workflow.MFAEvidence{TOTP: srv.TOTP(t, "emma", 1)},
	})
	if err != nil || !longer.ExpiresAt.Equal(act.ExpiresAt.Add(30*time.Minute)) {
		t.Fatalf("extend: %+v, %v; want 30m more than %v", longer, err, act.ExpiresAt)
	}

	removed, revoked, err := perparim.DeleteAssignment(ctx, asg.ID)
	if err != nil || removed.ID != asg.ID || len(revoked) != 1 || revoked[0].ID != act.ID {
		t.Fatalf("unassign: %+v, %+v, %v; want %s revoked", removed, revoked, err, act.ID)
	}
	wantAPIError(t, ignoreFirst(perparim.Activation(ctx, "act_nope")), http.StatusNotFound, "not_found")
}

func TestErrorAnswers(t *testing.T) {
	srv := elevatetest.Start(t, elevatetest.Options{Demo: true})
	ctx := context.Background()

	wantAPIError(t, ignoreFirst(client.New(srv.URL, "", nil).Roles(ctx)), http.StatusUnauthorized, "unauthenticated")
	wantAPIError(t, ignoreFirst(client.New(srv.URL, "not-a-token", nil).Roles(ctx)), http.StatusUnauthorized, "unauthenticated")

	sophia := client.New(srv.URL, srv.Token(t, "sophia"), nil)
	bad := wantAPIError(t, ignoreFirst(sophia.Audit(ctx, audit.Filter{Limit: -1})), http.StatusUnprocessableEntity, "invalid_value")
	if len(bad.Errors) != 1 || !strings.Contains(bad.Errors[0], "limit") {
		t.Fatalf("errors %q; want one about limit", bad.Errors)
	}
	// Enrolment needs the current code once enrolled; the demo enrols everyone.
	wantAPIError(t, ignoreFirst(sophia.EnrollTOTP(ctx, workflow.EnrollRequest{})), http.StatusForbidden, "policy_denied")
	en, err := sophia.EnrollTOTP(ctx, workflow.EnrollRequest{TOTP: srv.TOTP(t, "sophia", 0)})
	if err != nil || en.Secret == "" || !strings.HasPrefix(en.URL, "otpauth://totp/") {
		t.Fatalf("enrol: %+v, %v", en, err)
	}
}
