package workflow

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/store"
	"github.com/elevatepdp/elevate/internal/store/memory"
	storeredis "github.com/elevatepdp/elevate/internal/store/redis"
	"github.com/elevatepdp/elevate/test/harness"
)

// These tests drive the service on the shipped policies with a clock they
// move by hand, so time-outs of hours take no time.

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// roles of these tests: no MFA, so no TOTP codes are needed.
const roles = `{"pim": {"roles": {
  "ops": {"name": "Ops", "permissions": ["ops.*"], "settings": {
    "min_duration": "5m", "default_duration": "1h", "max_duration": "2h", "require_mfa": false,
    "require_justification": false, "require_approval": false, "allow_permanent_eligibility": true}},
  "guarded": {"name": "Guarded", "permissions": ["guarded.*"], "settings": {
    "min_duration": "5m", "default_duration": "1h", "max_duration": "2h", "require_mfa": false,
    "require_justification": false, "require_approval": true, "approvals_required": 2,
    "approvers": ["user:ann@x", "user:bob@x", "user:cat@x"], "pending_timeout": "4h",
    "allow_permanent_eligibility": true}},
  "mfa-ops": {"name": "MFA Ops", "permissions": ["mfa-ops.*"], "settings": {
    "min_duration": "5m", "default_duration": "1h", "max_duration": "2h", "require_mfa": true, "mfa_max_age": "10m",
    "require_justification": false, "require_approval": false, "allow_permanent_eligibility": true}},
  "privileged-role-administrator": {"name": "PRA", "permissions": [], "settings": {"allow_permanent_eligibility": true}}
}}}`

type env struct {
	svc    *Service
	engine *policy.Engine
	// roles is the roles.json the engine loads beside the built-in policies.
	roles string
	store store.Store
	clock *clock
	audit *audit.MemorySink
	flaky *flakySink
}

// flakySink fails the appends after the first ok more, from when armed: the
// audit trail going away between a state change and its event.
type flakySink struct {
	audit.Sink
	mu    sync.Mutex
	armed bool
	ok    int
}

func (f *flakySink) failAfter(ok int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed, f.ok = true, ok
}

func (f *flakySink) Append(ctx context.Context, e audit.Event) (audit.Event, error) {
	f.mu.Lock()
	fail := f.armed && f.ok == 0
	if f.armed && f.ok > 0 {
		f.ok--
	}
	f.mu.Unlock()
	if fail {
		return audit.Event{}, errors.New("audit trail unavailable")
	}
	return f.Sink.Append(ctx, e)
}

var ctx = context.Background()

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith runs on st, or on a memory store reading the test's clock.
func newEnvWith(t *testing.T, st store.Store) *env {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "roles.json"), []byte(roles), 0o644); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	engine, err := policy.New(ctx, policy.Options{Source: policy.Source{Paths: []string{"../../policies", dir}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)}
	if st == nil {
		st = memory.New(c.Now)
	} else {
		c.now = time.Now().UTC()
	}
	sink := audit.NewMemorySink(1000)
	flaky := &flakySink{Sink: sink}
	e := &env{
		svc: New(Options{Engine: engine, Store: st, Audit: audit.New(flaky, log),
			TOTP: identity.NewTOTP(memory.New(c.Now), identity.TOTPConfig{}), Logger: log, Now: c.Now}),
		engine: engine, roles: filepath.Join(dir, "roles.json"), store: st, clock: c, audit: sink, flaky: flaky,
	}
	for _, a := range []store.Assignment{
		{ID: "admin", Principal: "root@x", Role: "privileged-role-administrator", Scope: "/", Type: store.Active},
		{ID: "a-ops", Principal: "sam@x", Role: "ops", Scope: "/", Type: store.Eligible},
		{ID: "a-guarded", Principal: "sam@x", Role: "guarded", Scope: "/", Type: store.Eligible},
	} {
		if err := st.CreateAssignment(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func user(p string) Caller {
	return Caller{Identity: identity.Identity{Principal: p, Kind: identity.User}}
}

func (e *env) events(t audit.Type) int {
	got, _ := e.audit.Events(ctx, audit.Filter{Type: t})
	return len(got)
}

func TestApprovalsRequiredAreDistinct(t *testing.T) {
	e := newEnv(t)
	act, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "guarded"})
	if err != nil || act.Status != store.Pending || act.ApprovalsRequired != 2 {
		t.Fatalf("activate: %+v, %v", act, err)
	}
	act, err = e.svc.Approve(ctx, user("ann@x"), act.ID, "first")
	if err != nil || act.Status != store.Pending || len(act.Approvals) != 1 {
		t.Fatalf("first approval: %+v, %v", act, err)
	}
	var denied *DeniedError
	if _, err := e.svc.Approve(ctx, user("ann@x"), act.ID, "again"); !errors.As(err, &denied) {
		t.Fatalf("the same approver twice: %v", err)
	}
	act, err = e.svc.Approve(ctx, user("bob@x"), act.ID, "second")
	if err != nil || act.Status != store.Live {
		t.Fatalf("second approval: %+v, %v", act, err)
	}
	if _, err := e.svc.Approve(ctx, user("cat@x"), act.ID, "late"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approving an active elevation: %v", err)
	}
	if e.events(audit.Approved) != 2 || e.events(audit.Activated) != 1 {
		t.Fatalf("%d approved, %d activated events", e.events(audit.Approved), e.events(audit.Activated))
	}
}

func TestPendingRequestTimesOut(t *testing.T) {
	e := newEnv(t)
	act, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "guarded"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(4*time.Hour - time.Second)
	if err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.store.Activation(ctx, act.ID); got.Status != store.Pending {
		t.Fatalf("timed out early: %s", got.Status)
	}
	e.clock.Add(time.Second)
	if err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.store.Activation(ctx, act.ID); got.Status != store.TimedOut {
		t.Fatalf("status %s after the pending timeout", got.Status)
	}
	if e.events(audit.TimedOut) != 1 {
		t.Fatal("no timed_out event")
	}
	if _, err := e.svc.Approve(ctx, user("ann@x"), act.ID, "too late"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approving a timed-out request: %v", err)
	}
}

func TestScheduledActivation(t *testing.T) {
	e := newEnv(t)
	at := e.clock.Now().Add(time.Hour)
	act, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "ops", Start: &at})
	if err != nil || act.Status != store.Scheduled {
		t.Fatalf("schedule: %+v, %v", act, err)
	}
	if h, _ := e.store.Holdings(ctx, "sam@x", e.clock.Now()); len(h.Elevations) != 0 {
		t.Fatal("live before its start")
	}
	e.clock.Add(time.Hour)
	if err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := e.store.Activation(ctx, act.ID)
	if got.Status != store.Live || !got.ActivatedAt.Equal(e.clock.Now()) || !got.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("at its start: %+v", got)
	}

	// Eligibility is checked again at the start: removed meanwhile, no start.
	later := e.clock.Now().Add(3 * time.Hour)
	if _, err := e.svc.Deactivate(ctx, user("sam@x"), act.ID, "done"); err != nil {
		t.Fatal(err)
	}
	second, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "ops", Start: &later})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.DeleteAssignment(ctx, user("root@x"), "a-ops"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(3 * time.Hour)
	if err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.store.Activation(ctx, second.ID); got.Status != store.Revoked {
		t.Fatalf("started without eligibility: %s", got.Status)
	}
}

// scheduled asks for role for d from at, as sam@x.
func (e *env) scheduled(t *testing.T, c Caller, role string, at time.Time, d string) store.Activation {
	t.Helper()
	act, err := e.svc.Activate(ctx, c, ActivationRequest{Role: role, Start: &at, Duration: d})
	if err != nil || act.Status != store.Scheduled {
		t.Fatalf("schedule %s at %s: %+v, %v", role, at, act, err)
	}
	return act
}

// sweepAt moves the clock to at and sweeps.
func (e *env) sweepAt(t *testing.T, at time.Time) {
	t.Helper()
	e.clock.Add(at.Sub(e.clock.Now()))
	if err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
}

// revokedEvent is the activation.revoked event of id, with its reason.
func (e *env) revokedEvent(t *testing.T, id string) audit.Event {
	t.Helper()
	got, _ := e.audit.Events(ctx, audit.Filter{Type: audit.Revoked})
	for _, ev := range got {
		if ev.ActivationID == id {
			return ev
		}
	}
	t.Fatalf("no revoked event of %s", id)
	return audit.Event{}
}

// A scheduled activation is decided again at its start, by the activation
// policy as it is then: allowed, it starts (its second factor judged as at
// the request, since its requester is not there); refused, it ends saying
// why.
func TestScheduledStartDecidedAgain(t *testing.T) {
	e := newEnv(t)
	if err := e.store.CreateAssignment(ctx, store.Assignment{ID: "a-mfa", Principal: "sam@x", Role: "mfa-ops", Scope: "/", Type: store.Eligible}); err != nil {
		t.Fatal(err)
	}
	t0 := e.clock.Now()
	withMFA := user("sam@x")
	withMFA.MFA = identity.MFA{Methods: []string{"otp"}, AuthTime: t0}
	mfa := e.scheduled(t, withMFA, "mfa-ops", t0.Add(time.Hour), "1h")
	ops := e.scheduled(t, user("sam@x"), "ops", t0.Add(time.Hour), "1h")

	// Meanwhile Ops comes to need a justification, which the request has not.
	changed := strings.Replace(roles, `"max_duration": "2h", "require_mfa": false,
    "require_justification": false, "require_approval": false, "allow_permanent_eligibility": true}},
  "guarded"`, `"max_duration": "2h", "require_mfa": false,
    "require_justification": true, "require_approval": false, "allow_permanent_eligibility": true}},
  "guarded"`, 1)
	if changed == roles {
		t.Fatal("the test's role edit matched nothing")
	}
	if err := os.WriteFile(e.roles, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.engine.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	e.sweepAt(t, t0.Add(time.Hour))

	got, _ := e.store.Activation(ctx, mfa.ID)
	if got.Status != store.Live || !got.ExpiresAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("the MFA role, allowed again, at its start: %+v", got)
	}
	got, _ = e.store.Activation(ctx, ops.ID)
	if got.Status != store.Revoked || !strings.Contains(got.EndReason, "a justification is required to activate Ops") {
		t.Fatalf("ops, which the policy now refuses, at its start: %+v", got)
	}
	if ev := e.revokedEvent(t, ops.ID); ev.Actor != system || !slices.Contains(ev.Violations, "a justification is required to activate Ops") {
		t.Fatalf("the refusal's event: %+v", ev)
	}
}

// Item 26: a sweep that comes after the eligible assignment ended (the
// assignment is still there, its window over) starts nothing.
func TestScheduledStartAfterEligibilityEndsIsRefused(t *testing.T) {
	e := newEnv(t)
	t0 := e.clock.Now()
	if err := e.store.CreateAssignment(ctx, store.Assignment{ID: "a-window", Principal: "sam@x", Role: "mfa-ops", Scope: "/",
		Type: store.Eligible, End: ptr(t0.Add(3 * time.Hour))}); err != nil {
		t.Fatal(err)
	}
	withMFA := user("sam@x")
	withMFA.MFA = identity.MFA{Methods: []string{"otp"}, AuthTime: t0}
	act := e.scheduled(t, withMFA, "mfa-ops", t0.Add(time.Hour), "2h")

	e.sweepAt(t, t0.Add(3*time.Hour+time.Minute))
	got, _ := e.store.Activation(ctx, act.ID)
	if got.Status != store.Revoked {
		t.Fatalf("started after its eligibility ended: %+v", got)
	}
	if _, err := e.store.Assignment(ctx, "a-window"); err != nil {
		t.Fatalf("the assignment: %v", err)
	}
	if h, _ := e.store.Holdings(ctx, "sam@x", e.clock.Now()); len(h.Elevations) != 0 {
		t.Fatalf("live: %+v", h.Elevations)
	}
	if e.events(audit.Activated) != 0 {
		t.Fatal("an activated event")
	}
	e.revokedEvent(t, act.ID)
}

// A scheduled activation whose start comes while the role is live at the
// scope (activated after it was scheduled) is refused then, not started
// when the other one ends: it never runs past the end it was approved for.
// A late sweep starts one for what is left of its time only.
func TestScheduledBlockedNeverRunsPastItsEnd(t *testing.T) {
	e := newEnv(t)
	t0 := e.clock.Now()
	act := e.scheduled(t, user("sam@x"), "ops", t0.Add(time.Hour), "1h")
	e.clock.Add(30 * time.Minute)
	blocker, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "ops", Duration: "1h"})
	if err != nil || blocker.Status != store.Live {
		t.Fatalf("the blocking activation: %+v, %v", blocker, err)
	}
	for _, at := range []time.Duration{time.Hour, time.Hour + 31*time.Second, 90*time.Minute + time.Second, 2 * time.Hour} {
		e.sweepAt(t, t0.Add(at))
		got, _ := e.store.Activation(ctx, act.ID)
		if got.Status == store.Live || got.ActivatedAt != nil {
			t.Fatalf("at +%s: started: %+v", at, got)
		}
	}
	if got, _ := e.store.Activation(ctx, act.ID); got.Status != store.Revoked || !strings.Contains(got.EndReason, "already active") {
		t.Fatalf("blocked at its start: %+v", got)
	}

	// Late, inside its time: it ends at its start plus its duration.
	late := e.scheduled(t, user("sam@x"), "ops", t0.Add(3*time.Hour), "1h")
	e.sweepAt(t, t0.Add(3*time.Hour+20*time.Minute))
	got, _ := e.store.Activation(ctx, late.ID)
	if got.Status != store.Live || !got.ExpiresAt.Equal(t0.Add(4*time.Hour)) {
		t.Fatalf("a late start: %+v", got)
	}
}

func TestExtend(t *testing.T) {
	e := newEnv(t)
	act, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "ops", Duration: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(30 * time.Minute)
	ext, err := e.svc.Extend(ctx, user("sam@x"), act.ID, ExtendRequest{Duration: "1h"})
	if err != nil || !ext.ExpiresAt.Equal(act.ExpiresAt.Add(time.Hour)) {
		t.Fatalf("extend to the maximum: %+v, %v", ext, err)
	}
	var denied *DeniedError
	if _, err := e.svc.Extend(ctx, user("sam@x"), act.ID, ExtendRequest{Duration: "1ns"}); !errors.As(err, &denied) {
		t.Fatalf("extending past max_duration: %v", err)
	}
	if _, err := e.svc.Extend(ctx, user("root@x"), act.ID, ExtendRequest{Duration: "5m"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("extending someone else's: %v", err)
	}
	e.clock.Add(2 * time.Hour)
	if _, err := e.svc.Extend(ctx, user("sam@x"), act.ID, ExtendRequest{Duration: "5m"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("extending an ended elevation: %v", err)
	}
}

// Roles are evaluated once per policy generation; a reload that changes a
// role is what the next request sees.
func TestRolesFollowThePolicy(t *testing.T) {
	e := newEnv(t)
	permanent := AssignmentRequest{Principal: "pat@x", Role: "ops", Scope: "/", Type: store.Eligible}
	if _, err := e.svc.CreateAssignment(ctx, user("root@x"), permanent); err != nil {
		t.Fatalf("permanent eligibility while ops allows it: %v", err)
	}
	before, err := e.svc.Roles(ctx)
	if err != nil || !before["ops"].Settings.AllowPermanentEligibility {
		t.Fatalf("roles before the reload: %+v, %v", before["ops"], err)
	}
	changed := strings.Replace(roles, `"max_duration": "2h", "require_mfa": false,
    "require_justification": false, "require_approval": false, "allow_permanent_eligibility": true`,
		`"max_duration": "2h", "require_mfa": false,
    "require_justification": false, "require_approval": false, "allow_permanent_eligibility": false`, 1)
	if changed == roles {
		t.Fatal("the test's role edit matched nothing")
	}
	if err := os.WriteFile(e.roles, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.engine.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := e.svc.Roles(ctx)
	if err != nil || after["ops"].Settings.AllowPermanentEligibility {
		t.Fatalf("roles after the reload: %+v, %v", after["ops"], err)
	}
	permanent.Principal = "kim@x"
	var invalid *InvalidError
	if _, err := e.svc.CreateAssignment(ctx, user("root@x"), permanent); !errors.As(err, &invalid) {
		t.Fatalf("permanent eligibility after ops stopped allowing it: %v", err)
	}
}

func TestAdminDeactivatesAndRevokes(t *testing.T) {
	e := newEnv(t)
	act, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Deactivate(ctx, user("ann@x"), act.ID, "no"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a stranger deactivating (answered as unknown): %v", err)
	}
	if _, err := e.svc.Deactivate(ctx, user("root@x"), act.ID, "incident"); err != nil {
		t.Fatalf("an admin deactivating: %v", err)
	}
	again, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	_, revoked, err := e.svc.DeleteAssignment(ctx, user("root@x"), "a-ops")
	if err != nil || len(revoked) != 1 || revoked[0].ID != again.ID {
		t.Fatalf("removing the eligibility: %v, %v", revoked, err)
	}
	d, err := e.svc.Authorize(ctx, user("sam@x"), AuthorizeRequest{Action: "ops.run"})
	if err != nil || d.Allow {
		t.Fatalf("allowed after the eligibility was removed: %+v, %v", d, err)
	}
	if e.events(audit.Revoked) != 1 || e.events(audit.AssignmentRemoved) != 1 {
		t.Fatal("revocation not audited")
	}
}

// Item 27: an admin deactivates at the activation's scope: an admin of its
// unit may, an admin of a sibling unit may not (told, as a stranger is,
// that it does not exist), whatever the admin holds at "/".
func TestAdminDeactivatesAtTheActivationsScope(t *testing.T) {
	const unit, sibling = "/administrativeUnits/north", "/administrativeUnits/south"
	tests := map[string]struct {
		admin string
		scope string
		want  error
	}{
		"the unit's admin":       {"north-admin@x", unit, nil},
		"a sibling unit's admin": {"south-admin@x", sibling, store.ErrNotFound},
		"the directory's admin":  {"root@x", "/", nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			for _, a := range []store.Assignment{
				{ID: "a-unit-ops", Principal: "sam@x", Role: "ops", Scope: unit, Type: store.Eligible},
				{ID: "unit-admin", Principal: tc.admin, Role: "privileged-role-administrator", Scope: tc.scope, Type: store.Active},
			} {
				if err := e.store.CreateAssignment(ctx, a); err != nil && !errors.Is(err, store.ErrConflict) {
					t.Fatal(err)
				}
			}
			act, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "ops", Scope: unit})
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.svc.Deactivate(ctx, user(tc.admin), act.ID, "incident")
			if !errors.Is(err, tc.want) || (tc.want == nil && got.Status != store.Deactivated) {
				t.Fatalf("deactivation by %s: %+v, %v; want %v", tc.admin, got, err, tc.want)
			}
		})
	}
}

func TestAssignmentWindows(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	end := now.Add(9000 * time.Hour)
	tests := map[string]struct {
		r    AssignmentRequest
		want error
	}{
		"permanent allowed": {AssignmentRequest{Principal: "Zed@X", Role: "ops"}, nil},
		"past max":          {AssignmentRequest{Principal: "zed@x", Role: "ops", End: &end}, &InvalidError{}},
		"end before start":  {AssignmentRequest{Principal: "zed@x", Role: "ops", Start: &end, End: &now}, &InvalidError{}},
		"bad scope":         {AssignmentRequest{Principal: "zed@x", Role: "ops", Scope: "/a/"}, &InvalidError{}},
		"unknown role":      {AssignmentRequest{Principal: "zed@x", Role: "nope"}, store.ErrNotFound},
		"bad principal":     {AssignmentRequest{Principal: "z ed", Role: "ops"}, &InvalidError{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a, err := e.svc.CreateAssignment(ctx, user("root@x"), tc.r)
			var invalid *InvalidError
			switch want := tc.want.(type) {
			case nil:
				if err != nil || a.Principal != "zed@x" {
					t.Fatalf("%+v, %v", a, err)
				}
			case *InvalidError:
				if !errors.As(err, &invalid) {
					t.Fatalf("error %v, want invalid", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("error %v, want %v", err, want)
				}
			}
		})
	}
	if _, err := e.svc.CreateAssignment(ctx, user("sam@x"), AssignmentRequest{Principal: "zed@x", Role: "ops"}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a non-admin assigning: %v", err)
	}
}

// No state change outlives the loss of its audit event: the API call fails
// with ErrUnavailable and the change is undone (or never made).
func TestAuditLossUndoesTheChange(t *testing.T) {
	stores := map[string]func(t *testing.T) *env{
		"memory": newEnv,
		"redis":  func(t *testing.T) *env { return newEnvWith(t, storeredis.New(harness.Redis(t).Client(t))) },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			e := open(t)
			for _, a := range []store.Assignment{
				{ID: "admin", Principal: "root@x", Role: "privileged-role-administrator", Scope: "/", Type: store.Active},
				{ID: "a-ops", Principal: "sam@x", Role: "ops", Scope: "/", Type: store.Eligible},
			} {
				_ = e.store.CreateAssignment(ctx, a)
			}
			live := func() int {
				h, err := e.store.Holdings(ctx, "sam@x", e.clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				return len(h.Elevations)
			}

			// The request is kept, the activation's event is lost: undone.
			e.flaky.failAfter(1)
			if _, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "ops"}); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("activation with its event lost: %v", err)
			}
			if live() != 0 {
				t.Fatal("an elevation stayed without its audit event")
			}

			// Nothing is kept: nothing changes.
			e.flaky.failAfter(0)
			if _, err := e.svc.CreateAssignment(ctx, user("root@x"), AssignmentRequest{Principal: "zed@x", Role: "ops"}); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("assignment with its event lost: %v", err)
			}
			if got, _ := e.store.Assignments(ctx, store.AssignmentFilter{Principal: "zed@x"}); len(got) != 0 {
				t.Fatal("an assignment stayed without its audit event")
			}

			// A live elevation: removing its eligibility, then deactivating
			// it, each with the event lost, leaves it live.
			e.flaky.failAfter(1000)
			act, err := e.svc.Activate(ctx, user("sam@x"), ActivationRequest{Role: "ops"})
			if err != nil {
				t.Fatal(err)
			}
			e.flaky.failAfter(0)
			if _, _, err := e.svc.DeleteAssignment(ctx, user("root@x"), "a-ops"); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("removal with its event lost: %v", err)
			}
			if _, err := e.store.Assignment(ctx, "a-ops"); err != nil {
				t.Fatal("an assignment was removed without its audit event")
			}
			if live() != 1 {
				t.Fatal("the elevation of an assignment whose removal was undone stayed revoked")
			}
			e.flaky.failAfter(0)
			if _, err := e.svc.Deactivate(ctx, user("sam@x"), act.ID, "done"); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("deactivation with its event lost: %v", err)
			}
			if live() != 1 {
				t.Fatal("deactivated without its audit event")
			}
			e.flaky.failAfter(1000)
			if _, err := e.svc.Deactivate(ctx, user("sam@x"), act.ID, "done"); err != nil {
				t.Fatalf("deactivation once the trail is back: %v", err)
			}
			if live() != 0 {
				t.Fatal("still live after deactivation")
			}
		})
	}
}

// A decision client and a user of the same name are different callers: the
// client cannot list, read, audit, cancel or deactivate the user's things
// (issue 11, item 3: before, the gateway client acted as the user gateway).
func TestClientCannotActAsSameNamedUser(t *testing.T) {
	e := newEnv(t)
	for _, a := range []store.Assignment{
		{ID: "gw-ops", Principal: "gateway", Role: "ops", Scope: "/", Type: store.Eligible},
		{ID: "gw-guarded", Principal: "gateway", Role: "guarded", Scope: "/", Type: store.Eligible},
	} {
		if err := e.store.CreateAssignment(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	person := user("gateway")
	client := Caller{Identity: identity.Identity{Principal: "gateway", Kind: identity.Client}}
	live, err := e.svc.Activate(ctx, person, ActivationRequest{Role: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := e.svc.Activate(ctx, person, ActivationRequest{Role: "guarded"})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"my roles":    func() error { _, err := e.svc.MyRoles(ctx, client); return err },
		"assignments": func() error { _, err := e.svc.ListAssignments(ctx, client, "", "", ""); return err },
		"own assignments": func() error {
			_, err := e.svc.ListAssignments(ctx, client, "gateway", "", "")
			return err
		},
		"activations":     func() error { _, err := e.svc.Activations(ctx, client, "", ""); return err },
		"own activations": func() error { _, err := e.svc.Activations(ctx, client, "gateway", ""); return err },
		"activation":      func() error { _, err := e.svc.Activation(ctx, client, live.ID); return err },
		"audit":           func() error { _, err := e.svc.Audit(ctx, client, audit.Filter{}); return err },
		"own audit":       func() error { _, err := e.svc.Audit(ctx, client, audit.Filter{Principal: "gateway"}); return err },
		"cancel":          func() error { _, err := e.svc.Cancel(ctx, client, pending.ID, "mine"); return err },
		"deactivate":      func() error { _, err := e.svc.Deactivate(ctx, client, live.ID, "mine"); return err },
		"extend": func() error {
			_, err := e.svc.Extend(ctx, client, live.ID, ExtendRequest{Duration: "5m"})
			return err
		},
		"approvals": func() error { _, err := e.svc.PendingApprovals(ctx, client); return err },
		"enrol":     func() error { _, err := e.svc.EnrollTOTP(ctx, client, EnrollRequest{}); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s as the client: %v, want ErrForbidden", name, err)
		}
	}
	for id, want := range map[string]store.Status{live.ID: store.Live, pending.ID: store.Pending} {
		if got, _ := e.store.Activation(ctx, id); got.Status != want {
			t.Errorf("%s is %s, want %s", id, got.Status, want)
		}
	}
	// The user still can.
	if _, err := e.svc.Cancel(ctx, person, pending.ID, "mine"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Deactivate(ctx, person, live.ID, "mine"); err != nil {
		t.Fatal(err)
	}
}
