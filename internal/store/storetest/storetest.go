// Package storetest is the conformance suite every store.Store backend
// passes: the same behaviour, expiry and concurrency included, whether the
// state is in this process or in Redis.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/internal/store"
)

// Open returns an empty store for one test.
type Open func(t *testing.T) store.Store

// short is the lifetime of elevations the tests watch expire. Expiry is what
// they test, so they wait for it; the margins are generous.
const short = 300 * time.Millisecond

// Run runs the suite against the backend open makes.
func Run(t *testing.T, open Open) {
	tests := map[string]func(*testing.T, store.Store){
		"assignments":                  testAssignments,
		"activation lifecycle":         testLifecycle,
		"listing activations":          testListing,
		"expiry":                       testExpiry,
		"the end is one instant":       testEndIsOneInstant,
		"reads compare with now":       testReadsUseNow,
		"holdings":                     testHoldings,
		"deactivate":                   testDeactivate,
		"extend":                       testExtend,
		"delete assignment revokes":    testDeleteAssignment,
		"delete races activation":      testDeleteRacesActivation,
		"due pending and scheduled":    testDueRequests,
		"concurrent starts":            testConcurrentStarts,
		"concurrent updates":           testConcurrentUpdates,
		"concurrent claims":            testConcurrentClaims,
		"principals cannot collide":    testEscaping,
		"invalid activations":          testInvalid,
		"ids are unique per principal": testIDsAcrossPrincipals,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) { test(t, open(t)) })
	}
}

var ctx = context.Background()

func assignment(id, principal, role, scope string) store.Assignment {
	return store.Assignment{
		ID: id, Principal: principal, Role: role, Scope: scope, Type: store.Eligible,
		CreatedBy: "admin@x", CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
}

func ptr(t time.Time) *time.Time { return &t }

// pending is a request for a's role waiting for one approval. The times
// that end or start something are on the millisecond, the precision a store
// may keep them at (Redis does; testEndIsOneInstant has an end between two).
// RequestedAt, which only orders, is as precise as the clock.
func pending(id string, a store.Assignment) store.Activation {
	now := time.Now().UTC()
	return store.Activation{
		ID: id, Principal: a.Principal, Role: a.Role, Scope: a.Scope, AssignmentID: a.ID,
		Duration: "1h", Justification: "testing", Status: store.Pending,
		ApprovalsRequired: 1, Approvals: []store.Approval{}, RequestedAt: now,
		Deadline: ptr(now.Truncate(time.Millisecond).Add(time.Hour)),
	}
}

// live is a's role activated now for d.
func live(id string, a store.Assignment, d time.Duration) store.Activation {
	act := pending(id, a)
	act.Status = store.Live
	act.Deadline = nil
	act.ActivatedAt = ptr(act.RequestedAt.Truncate(time.Millisecond))
	act.ExpiresAt = ptr(act.ActivatedAt.Add(d))
	return act
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}

func sameIDs[T any](t *testing.T, what string, xs []T, id func(T) string, want ...string) {
	t.Helper()
	got := make([]string, len(xs))
	for i, x := range xs {
		got[i] = id(x)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func actID(a store.Activation) string { return a.ID }

func createErr(s store.Store, a store.Activation) error {
	_, err := s.CreateActivation(ctx, a)
	return err
}

// create stores a and checks it comes back as stored, at version 1. It
// returns a as stored: a store may keep its times at a coarser precision.
func create(t *testing.T, s store.Store, a store.Activation) store.Activation {
	t.Helper()
	got, err := s.CreateActivation(ctx, a)
	must(t, err)
	if got.Version != 1 || got.ID != a.ID || got.Status != a.Status {
		t.Fatalf("created %+v from %+v", got, a)
	}
	return got
}
func asgID(a store.Assignment) string { return a.ID }

// liveAt is principal's elevations live at at, as Holdings reads them.
func liveAt(s store.Store, principal string, at time.Time) ([]store.Activation, error) {
	h, err := s.Holdings(ctx, principal, at)
	return h.Elevations, err
}

func elevations(t *testing.T, s store.Store, principal string, want ...string) {
	t.Helper()
	got, err := liveAt(s, principal, time.Now())
	must(t, err)
	sameIDs(t, "elevations of "+principal, got, actID, want...)
}

func testAssignments(t *testing.T, s store.Store) {
	a1 := assignment("a1", "sophia@x", "user-administrator", "/")
	a2 := assignment("a2", "alex@x", "user-administrator", "/")
	a3 := assignment("a3", "sophia@x", "helpdesk-administrator", "/administrativeUnits/ny")
	a3.Type = store.Active
	a3.End = ptr(time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond))
	a2.CreatedAt = a1.CreatedAt.Add(time.Millisecond)
	a3.CreatedAt = a1.CreatedAt.Add(2 * time.Millisecond)
	for _, a := range []store.Assignment{a1, a2, a3} {
		must(t, s.CreateAssignment(ctx, a))
	}
	wantErr(t, s.CreateAssignment(ctx, a1), store.ErrConflict)
	dup := a1
	dup.Principal = "mallory@x"
	wantErr(t, s.CreateAssignment(ctx, dup), store.ErrConflict)
	wantErr(t, s.CreateAssignment(ctx, store.Assignment{ID: "bad"}), store.ErrInvalid)
	backwards := assignment("a4", "sophia@x", "r", "/")
	backwards.Start, backwards.End = ptr(time.Now()), ptr(time.Now().Add(-time.Hour))
	wantErr(t, s.CreateAssignment(ctx, backwards), store.ErrInvalid)

	got, err := s.Assignment(ctx, "a3")
	must(t, err)
	if got.Principal != "sophia@x" || got.Type != store.Active || got.Scope != a3.Scope || !got.CreatedAt.Equal(a3.CreatedAt) || got.End == nil || !got.End.Equal(*a3.End) || got.Start != nil {
		t.Fatalf("read back %+v, want %+v", got, a3)
	}
	if kept, _ := s.Assignment(ctx, "a1"); kept.Principal != "sophia@x" {
		t.Fatalf("a conflicting create changed a1: %+v", kept)
	}
	for name, tc := range map[string]struct {
		f    store.AssignmentFilter
		want []string
	}{
		"all":          {store.AssignmentFilter{}, []string{"a1", "a2", "a3"}},
		"by principal": {store.AssignmentFilter{Principal: "sophia@x"}, []string{"a1", "a3"}},
		"by role":      {store.AssignmentFilter{Role: "user-administrator"}, []string{"a1", "a2"}},
		"by type":      {store.AssignmentFilter{Type: store.Active}, []string{"a3"}},
		"none":         {store.AssignmentFilter{Principal: "nobody@x"}, []string{}},
	} {
		list, err := s.Assignments(ctx, tc.f)
		must(t, err)
		sameIDs(t, name, list, asgID, tc.want...)
	}
	deleted, revoked, err := s.DeleteAssignment(ctx, "a1", "admin@x", time.Now())
	must(t, err)
	if deleted.ID != "a1" || len(revoked) != 0 {
		t.Fatalf("deleted %+v, revoked %v", deleted, revoked)
	}
	_, err = s.Assignment(ctx, "a1")
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.DeleteAssignment(ctx, "a1", "admin@x", time.Now())
	wantErr(t, err, store.ErrNotFound)
}

func testLifecycle(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	req := pending("r1", a)
	create(t, s, req)
	wantErr(t, createErr(s, req), store.ErrConflict)
	elevations(t, s, "sophia@x")

	got, err := s.Activation(ctx, "r1")
	must(t, err)
	if got.Version != 1 || got.Status != store.Pending || got.Deadline == nil || !got.Deadline.Equal(*req.Deadline) || len(got.Approvals) != 0 {
		t.Fatalf("stored %+v", got)
	}

	// An approval that completes the request starts the elevation.
	now := time.Now().UTC().Truncate(time.Millisecond)
	approved := got
	approved.Approvals = []store.Approval{{Approver: "perparim@x", At: now, Justification: "ok"}}
	approved.Status, approved.Deadline = store.Live, nil
	approved.ActivatedAt, approved.ExpiresAt = ptr(now), ptr(now.Add(time.Hour))
	updated, err := s.UpdateActivation(ctx, approved)
	must(t, err)
	if updated.Version != 2 {
		t.Fatalf("version %d after one update", updated.Version)
	}
	elevations(t, s, "sophia@x", "r1")
	stored, err := s.Activation(ctx, "r1")
	must(t, err)
	if stored.Status != store.Live || len(stored.Approvals) != 1 || stored.Approvals[0].Approver != "perparim@x" || stored.Version != 2 {
		t.Fatalf("stored after approval %+v", stored)
	}

	// A change based on the old version is refused.
	_, err = s.UpdateActivation(ctx, approved)
	wantErr(t, err, store.ErrStale)

	// One live elevation per role and scope; another scope is fine.
	wantErr(t, createErr(s, live("r2", a, time.Hour)), store.ErrConflict)
	_, err = s.Activation(ctx, "r2")
	wantErr(t, err, store.ErrNotFound)
	elsewhere := live("r3", a, time.Hour)
	elsewhere.Scope = "/administrativeUnits/ny"
	create(t, s, elsewhere)
	elevations(t, s, "sophia@x", "r1", "r3")

	orphan := live("r4", assignment("gone", "sophia@x", "application-administrator", "/"), time.Hour)
	wantErr(t, createErr(s, orphan), store.ErrNotFound)
	_, err = s.UpdateActivation(ctx, store.Activation{ID: "nope", Principal: "p", Role: "r", Scope: "/", AssignmentID: "a"})
	wantErr(t, err, store.ErrNotFound)
	elevations(t, s, "alex@x")
}

func testListing(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	b := assignment("a2", "alex@x", "helpdesk-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	must(t, s.CreateAssignment(ctx, b))
	r1 := pending("r1", a)
	r2 := live("r2", b, time.Hour)
	r2.RequestedAt = r1.RequestedAt.Add(time.Millisecond)
	r3 := pending("r3", b)
	r3.RequestedAt = r1.RequestedAt.Add(2 * time.Millisecond)
	for _, r := range []store.Activation{r1, r2, r3} {
		create(t, s, r)
	}
	for name, tc := range map[string]struct {
		f    store.ActivationFilter
		want []string
	}{
		"all":          {store.ActivationFilter{}, []string{"r1", "r2", "r3"}},
		"by principal": {store.ActivationFilter{Principal: "alex@x"}, []string{"r2", "r3"}},
		"by status":    {store.ActivationFilter{Status: store.Pending}, []string{"r1", "r3"}},
		"by role":      {store.ActivationFilter{Role: "user-administrator"}, []string{"r1"}},
		"none":         {store.ActivationFilter{Status: store.Denied}, []string{}},
	} {
		list, err := s.Activations(ctx, tc.f)
		must(t, err)
		sameIDs(t, name, list, actID, tc.want...)
	}
}

// waitGone polls until the principal has no live elevation, failing when
// one outlives until.
func waitGone(t *testing.T, s store.Store, principal string, until time.Time) {
	t.Helper()
	for {
		live, err := liveAt(s, principal, time.Now())
		must(t, err)
		if len(live) == 0 {
			return
		}
		if time.Now().After(until) {
			t.Fatalf("still live past its end: %v", live)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testExpiry(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	act := create(t, s, live("r1", a, short))
	if due, _ := s.ClaimDue(ctx, time.Now(), time.Minute, 10); len(due) != 0 {
		t.Fatalf("due before its end: %v", due)
	}
	// Nothing but the store's own expiry ends it.
	waitGone(t, s, "sophia@x", act.ExpiresAt.Add(2*time.Second))
	if time.Now().Before(*act.ExpiresAt) {
		t.Fatal("gone before its end")
	}
	stored, err := s.Activation(ctx, "r1")
	must(t, err)
	deactivated := stored
	deactivated.Status = store.Deactivated
	_, err = s.UpdateActivation(ctx, deactivated)
	wantErr(t, err, store.ErrConflict)

	due, err := s.ClaimDue(ctx, time.Now(), time.Minute, 10)
	must(t, err)
	sameIDs(t, "due", due, actID, "r1")
	if again, _ := s.ClaimDue(ctx, time.Now(), time.Minute, 10); len(again) != 0 {
		t.Fatalf("claimed twice within the lease: %v", again)
	}
	expired := due[0]
	expired.Status, expired.EndedAt = store.Expired, ptr(time.Now())
	_, err = s.UpdateActivation(ctx, expired)
	must(t, err)
	if after, _ := s.ClaimDue(ctx, time.Now().Add(2*time.Minute), time.Minute, 10); len(after) != 0 {
		t.Fatalf("due after it was recorded expired: %v", after)
	}
	// The role can be activated again once the last use ended.
	create(t, s, live("r2", a, time.Hour))
}

// testEndIsOneInstant: an elevation ends at one instant for everything the
// store does, its stored ExpiresAt: reads stop granting it, ClaimDue finds
// it due and its expiry can be recorded, all from that instant on, even
// for an end that falls between two milliseconds.
func testEndIsOneInstant(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	// A second, so that the reads before the end are made before it even
	// on a loaded machine.
	act := live("r1", a, time.Second)
	act.ExpiresAt = ptr(act.ExpiresAt.Truncate(time.Millisecond).Add(700 * time.Microsecond))
	end := *create(t, s, act).ExpiresAt
	if end.After(*act.ExpiresAt) {
		t.Fatalf("stored end %s is after the end given, %s", end, act.ExpiresAt)
	}
	if got, _ := liveAt(s, "sophia@x", end.Add(-time.Nanosecond)); len(got) != 1 {
		t.Fatalf("not live just before its end: %v", got)
	}
	if got, _ := liveAt(s, "sophia@x", end); len(got) != 0 {
		t.Fatalf("live at its end: %v", got)
	}
	if due, _ := s.ClaimDue(ctx, end.Add(-time.Nanosecond), time.Minute, 10); len(due) != 0 {
		t.Fatalf("due before its end: %v", due)
	}
	due, err := s.ClaimDue(ctx, end, time.Minute, 10)
	must(t, err)
	sameIDs(t, "due at its end", due, actID, "r1")
	// As soon as the clock reaches the end, the expiry is recordable: no
	// part of the store still holds the elevation running.
	time.Sleep(time.Until(end) - 5*time.Millisecond)
	for time.Now().Before(end) {
	}
	expired := due[0]
	expired.Status, expired.EndedAt = store.Expired, ptr(end)
	_, err = s.UpdateActivation(ctx, expired)
	must(t, err)
}

func testHoldings(t *testing.T, s store.Store) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	forever := assignment("a1", "sophia@x", "privileged-role-administrator", "/")
	forever.Type = store.Active
	ended := assignment("a2", "sophia@x", "user-administrator", "/")
	ended.Type, ended.End = store.Active, ptr(now.Add(time.Second))
	eligible := assignment("a3", "sophia@x", "helpdesk-administrator", "/")
	for _, a := range []store.Assignment{forever, ended, eligible} {
		must(t, s.CreateAssignment(ctx, a))
	}
	create(t, s, live("r1", eligible, time.Hour))
	create(t, s, pending("r2", forever))
	h, err := s.Holdings(ctx, "sophia@x", time.Now())
	must(t, err)
	// Every assignment, whether it grants now or not; the caller asks Holds.
	sameIDs(t, "assignments", h.Assignments, asgID, "a1", "a2", "a3")
	sameIDs(t, "live elevations", h.Elevations, actID, "r1")
	later, err := s.Holdings(ctx, "sophia@x", now.Add(2*time.Second))
	must(t, err)
	sameIDs(t, "assignments later", later.Assignments, asgID, "a1", "a2", "a3")
	sameIDs(t, "live elevations later", later.Elevations, actID, "r1")
	if other, _ := s.Holdings(ctx, "alex@x", now); len(other.Assignments)+len(other.Elevations) != 0 {
		t.Fatalf("alex holds %+v", other)
	}
}

func testReadsUseNow(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	act := live("r1", a, time.Hour)
	create(t, s, act)
	for name, tc := range map[string]struct {
		at   time.Time
		live bool
	}{
		"just before the end": {act.ExpiresAt.Add(-time.Nanosecond), true},
		"at the end":          {*act.ExpiresAt, false},
		"before activation":   {act.ActivatedAt.Add(-time.Nanosecond), false},
	} {
		got, err := liveAt(s, "sophia@x", tc.at)
		must(t, err)
		if (len(got) == 1) != tc.live {
			t.Errorf("%s: live %v, want %v", name, got, tc.live)
		}
	}
}

func testDeactivate(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	act := live("r1", a, short)
	create(t, s, act)
	stored, err := s.Activation(ctx, "r1")
	must(t, err)
	early := stored
	early.Status = store.Expired
	_, err = s.UpdateActivation(ctx, early)
	wantErr(t, err, store.ErrConflict) // it has not run out
	ended := stored
	ended.Status, ended.EndedAt, ended.EndedBy = store.Deactivated, ptr(time.Now()), "sophia@x"
	_, err = s.UpdateActivation(ctx, ended)
	must(t, err)
	elevations(t, s, "sophia@x")
	// A deactivated activation never comes due for expiry.
	time.Sleep(time.Until(*act.ExpiresAt) + 50*time.Millisecond)
	due, err := s.ClaimDue(ctx, time.Now(), time.Minute, 10)
	must(t, err)
	sameIDs(t, "due after deactivation", due, actID)
	create(t, s, live("r2", a, time.Hour))
}

func testExtend(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	act := live("r1", a, short)
	create(t, s, act)
	stored, err := s.Activation(ctx, "r1")
	must(t, err)
	extended := stored
	extended.ExpiresAt = ptr(act.ExpiresAt.Add(time.Hour))
	extended, err = s.UpdateActivation(ctx, extended)
	must(t, err)
	time.Sleep(time.Until(*act.ExpiresAt) + 100*time.Millisecond)
	got, err := liveAt(s, "sophia@x", time.Now())
	must(t, err)
	if len(got) != 1 || !got[0].ExpiresAt.Equal(*extended.ExpiresAt) {
		t.Fatalf("after the original end: %v", got)
	}
	if due, _ := s.ClaimDue(ctx, time.Now(), time.Minute, 10); len(due) != 0 {
		t.Fatalf("an extended elevation came due at its old end: %v", due)
	}
	wantErr(t, createErr(s, live("r2", a, time.Hour)), store.ErrConflict)
	past := extended
	// Moved into the past but still after its start, so that no other rule
	// than "a live elevation ends in the future" refuses it.
	past.ExpiresAt = ptr(past.ActivatedAt.Add(time.Millisecond))
	if !past.ExpiresAt.Before(time.Now()) {
		t.Fatalf("the test's past end %s is not in the past", past.ExpiresAt)
	}
	_, err = s.UpdateActivation(ctx, past)
	wantErr(t, err, store.ErrInvalid)
}

func testDeleteAssignment(t *testing.T, s store.Store) {
	a1 := assignment("a1", "sophia@x", "user-administrator", "/")
	a2 := assignment("a2", "sophia@x", "helpdesk-administrator", "/")
	must(t, s.CreateAssignment(ctx, a1))
	must(t, s.CreateAssignment(ctx, a2))
	create(t, s, live("r1", a1, time.Hour))
	create(t, s, live("r2", a2, time.Hour))
	create(t, s, pending("p1", a1))
	create(t, s, pending("p2", a2))
	now := time.Now().UTC().Truncate(time.Millisecond)
	gone, revoked, err := s.DeleteAssignment(ctx, "a1", "perparim@x", now)
	must(t, err)
	if gone.ID != "a1" {
		t.Fatalf("deleted %+v", gone)
	}
	sameIDs(t, "revoked", revoked, actID, "r1", "p1")
	if p, _ := s.Activation(ctx, "p1"); p.Status != store.Revoked {
		t.Fatalf("a pending request of the deleted assignment is %s", p.Status)
	}
	if p, _ := s.Activation(ctx, "p2"); p.Status != store.Pending {
		t.Fatalf("a pending request of another assignment is %s", p.Status)
	}
	if r := revoked[0]; r.Status != store.Revoked || r.EndedBy != "perparim@x" || r.EndedAt == nil || !r.EndedAt.Equal(now) || r.Version != 2 {
		t.Fatalf("revoked %+v", r)
	}
	if stored, _ := s.Activation(ctx, "r1"); stored.Status != store.Revoked || stored.Version != 2 {
		t.Fatalf("stored %+v", stored)
	}
	elevations(t, s, "sophia@x", "r2")
	wantErr(t, createErr(s, live("r3", a1, time.Hour)), store.ErrNotFound)
}

func testDueRequests(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	now := time.Now().UTC().Truncate(time.Millisecond)
	req := pending("r1", a)
	req.Deadline = ptr(now.Add(time.Hour))
	sched := pending("r2", a)
	sched.Status, sched.Deadline, sched.StartAt = store.Scheduled, nil, ptr(now.Add(2*time.Hour))
	create(t, s, req)
	create(t, s, sched)
	due, err := s.ClaimDue(ctx, now.Add(90*time.Minute), time.Minute, 10)
	must(t, err)
	sameIDs(t, "due at 90m", due, actID, "r1")
	if again, _ := s.ClaimDue(ctx, now.Add(90*time.Minute), time.Minute, 10); len(again) != 0 {
		t.Fatalf("claimed twice within the lease: %v", again)
	}
	// r1 was not acted upon: its lease ran out, so it comes back.
	due, err = s.ClaimDue(ctx, now.Add(3*time.Hour), time.Minute, 10)
	must(t, err)
	sameIDs(t, "due at 3h", due, actID, "r1", "r2")
}

// An activation racing the deletion of its assignment either fails or is
// among the revoked: no elevation of a deleted assignment stays live.
func testDeleteRacesActivation(t *testing.T, s store.Store) {
	for round := range 20 {
		a := assignment(fmt.Sprintf("a%d", round), "sophia@x", fmt.Sprintf("role%d", round), "/")
		must(t, s.CreateAssignment(ctx, a))
		var wg sync.WaitGroup
		var revoked []store.Activation
		var delErr, actErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, revoked, delErr = s.DeleteAssignment(ctx, a.ID, "perparim@x", time.Now())
		}()
		go func() {
			defer wg.Done()
			actErr = createErr(s, live(fmt.Sprintf("r%d", round), a, time.Hour))
		}()
		wg.Wait()
		must(t, delErr)
		got, err := liveAt(s, "sophia@x", time.Now())
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("round %d: live after its assignment was deleted: %v (activation error %v, revoked %v)", round, got, actErr, revoked)
		}
		if actErr == nil && len(revoked) != 1 {
			t.Fatalf("round %d: the activation succeeded but was not revoked", round)
		}
	}
}

// Many replicas starting the same role at once produce one elevation.
func testConcurrentStarts(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	const n = 20
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- createErr(s, live(fmt.Sprintf("r%d", i), a, time.Hour))
		}()
	}
	wg.Wait()
	close(errs)
	countOne(t, errs, store.ErrConflict)
	got, err := liveAt(s, "sophia@x", time.Now())
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("%d live elevations, want 1", len(got))
	}
}

func countOne(t *testing.T, errs <-chan error, loser error) {
	t.Helper()
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, loser):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d succeeded, want exactly 1", ok)
	}
}

// Concurrent approvals of one request, each based on the version it read:
// one wins, the others are told the request changed.
func testConcurrentUpdates(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	create(t, s, pending("r1", a))
	read, err := s.Activation(ctx, "r1")
	must(t, err)
	const n = 20
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := time.Now().UTC().Truncate(time.Millisecond)
			up := read
			up.Approvals = []store.Approval{{Approver: fmt.Sprintf("approver%d@x", i), At: now}}
			up.Status, up.Deadline = store.Live, nil
			up.ActivatedAt, up.ExpiresAt = ptr(now), ptr(now.Add(time.Hour))
			_, err := s.UpdateActivation(ctx, up)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	countOne(t, errs, store.ErrStale)
	got, err := s.Activation(ctx, "r1")
	must(t, err)
	if got.Version != 2 || len(got.Approvals) != 1 {
		t.Fatalf("after concurrent approvals: %+v", got)
	}
	elevations(t, s, "sophia@x", "r1")
}

// Several sweepers claiming at once each get a disjoint share.
func testConcurrentClaims(t *testing.T, s store.Store) {
	const n = 12
	var end time.Time
	for i := range n {
		a := assignment(fmt.Sprintf("a%d", i), fmt.Sprintf("p%d@x", i), "user-administrator", "/")
		must(t, s.CreateAssignment(ctx, a))
		act := live(fmt.Sprintf("r%d", i), a, short)
		create(t, s, act)
		end = *act.ExpiresAt
	}
	time.Sleep(time.Until(end) + 50*time.Millisecond)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				due, err := s.ClaimDue(ctx, time.Now(), time.Minute, 3)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, a := range due {
					seen[a.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if id := fmt.Sprintf("r%d", i); seen[id] != 1 {
			t.Errorf("%s claimed %d times", id, seen[id])
		}
	}
}

// Principal, role and scope names that look like key syntax stay apart.
func testEscaping(t *testing.T, s store.Store) {
	names := []string{"a}b@x", "a%7Db@x", "a:b@x", "a@x}:on:user-administrator", "{a@x}", "a@x"}
	for i, p := range names {
		a := assignment(fmt.Sprintf("a%d", i), p, "user-administrator", "/")
		must(t, s.CreateAssignment(ctx, a))
		create(t, s, live(fmt.Sprintf("r%d", i), a, time.Hour))
	}
	for i, p := range names {
		elevations(t, s, p, fmt.Sprintf("r%d", i))
		list, err := s.Assignments(ctx, store.AssignmentFilter{Principal: p})
		must(t, err)
		sameIDs(t, p, list, asgID, fmt.Sprintf("a%d", i))
	}
	// A scope or id that spells another key's suffix is just a name.
	a := assignment("ax", "a@x", "user", "/x")
	must(t, s.CreateAssignment(ctx, a))
	act := live("x:el:r5", a, time.Hour)
	act.Scope = "/x:on:user-administrator:/"
	create(t, s, act)
	elevations(t, s, "a@x", "r5", "x:el:r5")
}

func testInvalid(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	for name, mutate := range map[string]func(*store.Activation){
		"no id":                 func(x *store.Activation) { x.ID = "" },
		"no principal":          func(x *store.Activation) { x.Principal = "" },
		"no assignment":         func(x *store.Activation) { x.AssignmentID = "" },
		"ends before its start": func(x *store.Activation) { x.ExpiresAt = ptr(time.Now().Add(-time.Second)) },
		"ends at start":         func(x *store.Activation) { x.ExpiresAt = x.ActivatedAt },
		"live, no times":        func(x *store.Activation) { x.ActivatedAt, x.ExpiresAt = nil, nil },
		// Only "a live elevation ends in the future" is broken here.
		"ended a second ago, after its start": func(x *store.Activation) {
			x.ActivatedAt, x.ExpiresAt = ptr(time.Now().Add(-2*time.Hour)), ptr(time.Now().Add(-time.Second))
		},
	} {
		act := live("r1", a, time.Hour)
		mutate(&act)
		if err := createErr(s, act); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", name, err)
		}
	}
	create(t, s, pending("r1", a))
	moved, err := s.Activation(ctx, "r1")
	must(t, err)
	moved.Principal = "mallory@x"
	_, err = s.UpdateActivation(ctx, moved)
	if err == nil {
		t.Fatal("an update moved an activation to another principal")
	}
}

func testIDsAcrossPrincipals(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	b := assignment("a2", "alex@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	must(t, s.CreateAssignment(ctx, b))
	create(t, s, pending("r1", a))
	// The refused request would be due at once; the owner's is not.
	overdue := pending("r1", b)
	overdue.Deadline = ptr(time.Now().Add(-time.Minute))
	wantErr(t, createErr(s, overdue), store.ErrConflict)
	got, err := s.Activation(ctx, "r1")
	must(t, err)
	if got.Principal != "sophia@x" {
		t.Fatalf("r1 belongs to %s", got.Principal)
	}
	if due, err := s.ClaimDue(ctx, time.Now(), time.Minute, 10); err != nil || len(due) != 0 {
		t.Fatalf("a refused create made the owner's request due: %v, %v", due, err)
	}
	if due, err := s.ClaimDue(ctx, time.Now().Add(2*time.Hour), time.Minute, 10); err != nil || len(due) != 1 || due[0].ID != "r1" {
		t.Fatalf("the owner's request is not due at its deadline: %v, %v", due, err)
	}
}
