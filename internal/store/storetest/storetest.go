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
// they test, so they wait for it; the margins below are generous.
const short = 300 * time.Millisecond

// Run runs the suite against the backend open makes.
func Run(t *testing.T, open Open) {
	tests := map[string]func(*testing.T, store.Store){
		"assignments":                     testAssignments,
		"activate and read":               testActivate,
		"expiry":                          testExpiry,
		"reads compare with now":          testReadsUseNow,
		"deactivate":                      testDeactivate,
		"extend":                          testExtend,
		"delete assignment ends its uses": testDeleteAssignment,
		"concurrent activations":          testConcurrentActivations,
		"concurrent expiry claims":        testConcurrentClaims,
		"principals cannot collide":       testEscaping,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) { test(t, open(t)) })
	}
}

var ctx = context.Background()

func assignment(id, principal, role, scope string) store.Assignment {
	return store.Assignment{
		ID: id, Principal: principal, Role: role, Scope: scope, Type: store.Eligible,
		CreatedBy: "admin@example", CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
}

func elevation(id string, a store.Assignment, d time.Duration) store.Elevation {
	now := time.Now().UTC()
	return store.Elevation{
		ID: id, Principal: a.Principal, Role: a.Role, Scope: a.Scope, AssignmentID: a.ID,
		ActivatedAt: now, ExpiresAt: now.Add(d),
	}
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

func elevationIDs(es []store.Elevation) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func assignmentIDs(as []store.Assignment) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func sameIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func testAssignments(t *testing.T, s store.Store) {
	a1 := assignment("a1", "sophia@x", "user-administrator", "/")
	a2 := assignment("a2", "alex@x", "user-administrator", "/")
	a3 := assignment("a3", "sophia@x", "helpdesk-administrator", "/administrativeUnits/ny")
	a3.Type = store.Active
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

	got, err := s.Assignment(ctx, "a3")
	must(t, err)
	if got.Principal != "sophia@x" || got.Type != store.Active || got.Scope != a3.Scope || !got.CreatedAt.Equal(a3.CreatedAt) {
		t.Fatalf("read back %+v, want %+v", got, a3)
	}
	if sophia, _ := s.Assignment(ctx, "a1"); sophia.Principal != "sophia@x" {
		t.Fatalf("a conflicting create changed a1: %+v", sophia)
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
		sameIDs(t, name, assignmentIDs(list), tc.want...)
	}
	_, _, err = s.DeleteAssignment(ctx, "a1")
	must(t, err)
	_, err = s.Assignment(ctx, "a1")
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.DeleteAssignment(ctx, "a1")
	wantErr(t, err, store.ErrNotFound)
}

func testActivate(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	e := elevation("e1", a, time.Hour)
	must(t, s.Activate(ctx, e))

	live, err := s.Elevations(ctx, "sophia@x", time.Now())
	must(t, err)
	if len(live) != 1 || live[0].ID != "e1" || !live[0].ExpiresAt.Equal(e.ExpiresAt) || live[0].AssignmentID != "a1" {
		t.Fatalf("live elevations %+v", live)
	}
	one, err := s.Elevation(ctx, "e1", time.Now())
	must(t, err)
	if one.Role != "user-administrator" || one.Scope != "/" {
		t.Fatalf("elevation %+v", one)
	}

	again := elevation("e2", a, time.Hour)
	wantErr(t, s.Activate(ctx, again), store.ErrConflict)
	wantErr(t, s.Activate(ctx, e), store.ErrConflict)
	elsewhere := again
	elsewhere.Scope = "/administrativeUnits/ny"
	must(t, s.Activate(ctx, elsewhere))

	orphan := elevation("e3", assignment("gone", "sophia@x", "app-administrator", "/"), time.Hour)
	wantErr(t, s.Activate(ctx, orphan), store.ErrNotFound)
	past := elevation("e4", a, time.Hour)
	past.ExpiresAt = time.Now().Add(-time.Second)
	wantErr(t, s.Activate(ctx, past), store.ErrInvalid)

	live, err = s.Elevations(ctx, "sophia@x", time.Now())
	must(t, err)
	sameIDs(t, "after conflicts", elevationIDs(live), "e1", "e2")
	if others, _ := s.Elevations(ctx, "alex@x", time.Now()); len(others) != 0 {
		t.Fatalf("alex holds %v", others)
	}
	_, err = s.Elevation(ctx, "nope", time.Now())
	wantErr(t, err, store.ErrNotFound)
}

// waitGone polls until the principal has no live elevation.
func waitGone(t *testing.T, s store.Store, principal string, until time.Time) {
	t.Helper()
	for {
		live, err := s.Elevations(ctx, principal, time.Now())
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
	e := elevation("e1", a, short)
	must(t, s.Activate(ctx, e))
	if claimed, _ := s.ClaimExpired(ctx, time.Now(), 10); len(claimed) != 0 {
		t.Fatalf("claimed before its end: %v", claimed)
	}
	waitGone(t, s, "sophia@x", e.ExpiresAt.Add(2*time.Second))
	if time.Now().Before(e.ExpiresAt) {
		t.Fatal("gone before its end")
	}
	_, err := s.Elevation(ctx, "e1", time.Now())
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Deactivate(ctx, "e1")
	wantErr(t, err, store.ErrNotFound)

	claimed, err := s.ClaimExpired(ctx, time.Now(), 10)
	must(t, err)
	sameIDs(t, "first claim", elevationIDs(claimed), "e1")
	if claimed[0].Role != "user-administrator" || claimed[0].Principal != "sophia@x" {
		t.Fatalf("claimed %+v", claimed[0])
	}
	again, err := s.ClaimExpired(ctx, time.Now(), 10)
	must(t, err)
	sameIDs(t, "second claim", elevationIDs(again))

	// The role can be activated again once the last use ended.
	must(t, s.Activate(ctx, elevation("e2", a, time.Hour)))
}

func testReadsUseNow(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	e := elevation("e1", a, time.Hour)
	must(t, s.Activate(ctx, e))
	for name, tc := range map[string]struct {
		at   time.Time
		live bool
	}{
		"just before the end": {e.ExpiresAt.Add(-time.Nanosecond), true},
		"at the end":          {e.ExpiresAt, false},
		"before activation":   {e.ActivatedAt.Add(-time.Nanosecond), false},
	} {
		live, err := s.Elevations(ctx, "sophia@x", tc.at)
		must(t, err)
		if (len(live) == 1) != tc.live {
			t.Errorf("%s: live %v, want %v", name, live, tc.live)
		}
	}
}

func testDeactivate(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	e := elevation("e1", a, short)
	must(t, s.Activate(ctx, e))
	got, err := s.Deactivate(ctx, "e1")
	must(t, err)
	if got.ID != "e1" || got.Principal != "sophia@x" {
		t.Fatalf("deactivated %+v", got)
	}
	if live, _ := s.Elevations(ctx, "sophia@x", time.Now()); len(live) != 0 {
		t.Fatalf("live after deactivation: %v", live)
	}
	_, err = s.Deactivate(ctx, "e1")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Deactivate(ctx, "never")
	wantErr(t, err, store.ErrNotFound)
	// A deactivated elevation never expires as well.
	time.Sleep(time.Until(e.ExpiresAt) + 50*time.Millisecond)
	claimed, err := s.ClaimExpired(ctx, time.Now(), 10)
	must(t, err)
	sameIDs(t, "claims after deactivation", elevationIDs(claimed))
	must(t, s.Activate(ctx, elevation("e2", a, time.Hour)))
}

func testExtend(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	e := elevation("e1", a, short)
	must(t, s.Activate(ctx, e))
	later := e.ExpiresAt.Add(time.Hour)
	got, err := s.Extend(ctx, "e1", later)
	must(t, err)
	if !got.ExpiresAt.Equal(later) {
		t.Fatalf("extended to %v, want %v", got.ExpiresAt, later)
	}
	time.Sleep(time.Until(e.ExpiresAt) + 100*time.Millisecond)
	live, err := s.Elevations(ctx, "sophia@x", time.Now())
	must(t, err)
	if len(live) != 1 || !live[0].ExpiresAt.Equal(later) {
		t.Fatalf("after the original end: %v", live)
	}
	if claimed, _ := s.ClaimExpired(ctx, time.Now(), 10); len(claimed) != 0 {
		t.Fatalf("an extended elevation was claimed: %v", claimed)
	}
	wantErr(t, s.Activate(ctx, elevation("e2", a, time.Hour)), store.ErrConflict)
	_, err = s.Extend(ctx, "e1", time.Now().Add(-time.Second))
	wantErr(t, err, store.ErrInvalid)
	_, err = s.Extend(ctx, "nope", later)
	wantErr(t, err, store.ErrNotFound)
}

func testDeleteAssignment(t *testing.T, s store.Store) {
	a1 := assignment("a1", "sophia@x", "user-administrator", "/")
	a2 := assignment("a2", "sophia@x", "helpdesk-administrator", "/")
	must(t, s.CreateAssignment(ctx, a1))
	must(t, s.CreateAssignment(ctx, a2))
	must(t, s.Activate(ctx, elevation("e1", a1, time.Hour)))
	must(t, s.Activate(ctx, elevation("e2", a2, time.Hour)))
	gone, ended, err := s.DeleteAssignment(ctx, "a1")
	must(t, err)
	if gone.ID != "a1" {
		t.Fatalf("deleted %+v", gone)
	}
	sameIDs(t, "ended", elevationIDs(ended), "e1")
	live, err := s.Elevations(ctx, "sophia@x", time.Now())
	must(t, err)
	sameIDs(t, "still live", elevationIDs(live), "e2")
	wantErr(t, s.Activate(ctx, elevation("e3", a1, time.Hour)), store.ErrNotFound)
}

// Many replicas activating the same role at once produce one elevation.
func testConcurrentActivations(t *testing.T, s store.Store) {
	a := assignment("a1", "sophia@x", "user-administrator", "/")
	must(t, s.CreateAssignment(ctx, a))
	const n = 20
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Activate(ctx, elevation(fmt.Sprintf("e%d", i), a, time.Hour))
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("unexpected error: %v", err)
		}
	}
	live, err := s.Elevations(ctx, "sophia@x", time.Now())
	must(t, err)
	if ok != 1 || len(live) != 1 {
		t.Fatalf("%d activations succeeded, %d live; want 1 and 1", ok, len(live))
	}
}

// Several sweepers claiming at once each get a disjoint share, and together
// every expired elevation, once.
func testConcurrentClaims(t *testing.T, s store.Store) {
	const n = 12
	var end time.Time
	for i := range n {
		a := assignment(fmt.Sprintf("a%d", i), fmt.Sprintf("p%d@x", i), "user-administrator", "/")
		must(t, s.CreateAssignment(ctx, a))
		e := elevation(fmt.Sprintf("e%d", i), a, short)
		must(t, s.Activate(ctx, e))
		end = e.ExpiresAt
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
				claimed, err := s.ClaimExpired(ctx, time.Now(), 3)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, e := range claimed {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if id := fmt.Sprintf("e%d", i); seen[id] != 1 {
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
		must(t, s.Activate(ctx, elevation(fmt.Sprintf("e%d", i), a, time.Hour)))
	}
	for i, p := range names {
		live, err := s.Elevations(ctx, p, time.Now())
		must(t, err)
		sameIDs(t, p, elevationIDs(live), fmt.Sprintf("e%d", i))
		list, err := s.Assignments(ctx, store.AssignmentFilter{Principal: p})
		must(t, err)
		sameIDs(t, p, assignmentIDs(list), fmt.Sprintf("a%d", i))
	}
	// A scope that spells another key's suffix is just a scope.
	a := assignment("ax", "a@x", "user", "/x")
	must(t, s.CreateAssignment(ctx, a))
	e := elevation("ex", a, time.Hour)
	e.Scope = "/x:el:e5"
	must(t, s.Activate(ctx, e))
	live, err := s.Elevations(ctx, "a@x", time.Now())
	must(t, err)
	sameIDs(t, "a@x", elevationIDs(live), "e5", "ex")
}
