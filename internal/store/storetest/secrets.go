package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/internal/identity"
)

// RunSecrets checks a backend's TOTP secrets and replay records.
func RunSecrets(t *testing.T, s identity.Secrets) {
	_, err := s.TOTPSecret(ctx, "sophia@x")
	if !errors.Is(err, identity.ErrNotEnrolled) {
		t.Fatalf("no secret yet: error %v, want ErrNotEnrolled", err)
	}
	must(t, s.PutTOTPSecret(ctx, "sophia@x", "FIRST"))
	must(t, s.PutTOTPSecret(ctx, "sophia@x", "SECOND"))
	if got, err := s.TOTPSecret(ctx, "sophia@x"); err != nil || got != "SECOND" {
		t.Fatalf("secret %q, %v; want the replacement", got, err)
	}
	if _, err := s.TOTPSecret(ctx, "sophia@x}"); !errors.Is(err, identity.ErrNotEnrolled) {
		t.Fatalf("a look-alike principal sees a secret: %v", err)
	}

	var firsts atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, err := s.MarkTOTPUsed(ctx, "sophia@x", 42, time.Minute)
			if err != nil {
				t.Error(err)
			}
			if first {
				firsts.Add(1)
			}
		}()
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Fatalf("%d concurrent uses of one code were first, want 1", firsts.Load())
	}
	for name, tc := range map[string]struct {
		principal string
		counter   uint64
	}{"another step": {"sophia@x", 43}, "another principal": {"alex@x", 42}} {
		if first, err := s.MarkTOTPUsed(ctx, tc.principal, tc.counter, time.Minute); err != nil || !first {
			t.Errorf("%s: first=%v, %v", name, first, err)
		}
	}

	// Attempts count one by one, concurrent ones included; taking one back
	// lowers the count; the window forgets them all.
	var counts sync.Map
	var wg2 sync.WaitGroup
	for range 10 {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			n, err := s.TOTPAttempt(ctx, "sophia@x", 400*time.Millisecond)
			if err != nil {
				t.Error(err)
			}
			if _, dup := counts.LoadOrStore(n, true); dup {
				t.Errorf("two attempts counted as %d", n)
			}
		}()
	}
	wg2.Wait()
	must(t, s.TOTPAttemptOK(ctx, "sophia@x"))
	if n, err := s.TOTPAttempt(ctx, "sophia@x", time.Minute); err != nil || n != 10 {
		t.Fatalf("after taking one back: %d, %v; want 10", n, err)
	}
	if n, _ := s.TOTPAttempt(ctx, "alex@x", time.Minute); n != 1 {
		t.Fatalf("alex's first attempt counted %d", n)
	}
	// The window's end is waited for by what it does: an attempt counted
	// after it is the first of a new window. Until then each probe is
	// taken back, so the count stays 10.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, err := s.TOTPAttempt(ctx, "sophia@x", 400*time.Millisecond)
		must(t, err)
		must(t, s.TOTPAttemptOK(ctx, "sophia@x"))
		if n == 1 {
			break
		}
		if n != 11 || time.Now().After(deadline) {
			t.Fatalf("probing the window: attempt %d, want 11 until it ends and then 1", n)
		}
	}
	must(t, s.TOTPAttemptOK(ctx, "sophia@x"))
	if n, err := s.TOTPAttempt(ctx, "sophia@x", time.Minute); err != nil || n != 1 {
		t.Fatalf("after the window: %d, %v; want 1", n, err)
	}

	runInvites(t, s)
	runFailures(t, s)
}

// runInvites checks enrolment invites and secret removal.
func runInvites(t *testing.T, s identity.Secrets) {
	const who, other = "invited@x", "invited@x}"
	if ok, err := s.ConsumeTOTPInvite(ctx, who, "sum"); err != nil || ok {
		t.Fatalf("no invite yet: consumed=%v, %v", ok, err)
	}
	must(t, s.PutTOTPInvite(ctx, who, "old", time.Minute))
	must(t, s.PutTOTPInvite(ctx, who, "sum", time.Minute))
	for name, tc := range map[string]struct{ principal, sum string }{
		"replaced invite":   {who, "old"},
		"wrong hash":        {who, "mus"},
		"look-alike":        {other, "sum"},
		"another principal": {"alex@x", "sum"},
	} {
		if ok, err := s.ConsumeTOTPInvite(ctx, tc.principal, tc.sum); err != nil || ok {
			t.Errorf("%s: consumed=%v, %v", name, ok, err)
		}
	}
	// Single use, also when raced.
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.ConsumeTOTPInvite(ctx, who, "sum")
			if err != nil {
				t.Error(err)
			}
			if ok {
				firsts.Add(1)
			}
		}()
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Fatalf("one invite consumed %d times, want 1", firsts.Load())
	}
	must(t, s.PutTOTPInvite(ctx, who, "short", 100*time.Millisecond))
	time.Sleep(300 * time.Millisecond) // the time itself is what is waited for
	if ok, err := s.ConsumeTOTPInvite(ctx, who, "short"); err != nil || ok {
		t.Fatalf("expired invite: consumed=%v, %v", ok, err)
	}

	must(t, s.PutTOTPSecret(ctx, who, "SECRET"))
	must(t, s.PutTOTPSecret(ctx, other, "OTHER"))
	if removed, err := s.DeleteTOTPSecret(ctx, who); err != nil || !removed {
		t.Fatalf("delete: removed=%v, %v", removed, err)
	}
	if _, err := s.TOTPSecret(ctx, who); !errors.Is(err, identity.ErrNotEnrolled) {
		t.Fatalf("after delete: %v, want ErrNotEnrolled", err)
	}
	if removed, err := s.DeleteTOTPSecret(ctx, who); err != nil || removed {
		t.Fatalf("second delete: removed=%v, %v", removed, err)
	}
	if got, err := s.TOTPSecret(ctx, other); err != nil || got != "OTHER" {
		t.Fatalf("a look-alike's secret after delete: %q, %v", got, err)
	}
}

// runFailures checks the count of wrong codes and its window.
func runFailures(t *testing.T, s identity.Secrets) {
	const who = "failing@x"
	if n, until, err := s.TOTPFailures(ctx, who); err != nil || n != 0 || !until.IsZero() {
		t.Fatalf("no failures yet: %d, %v, %v", n, until, err)
	}
	before := time.Now()
	var last time.Time
	for i := 1; i <= 3; i++ {
		n, until, err := s.TOTPFailure(ctx, who, time.Minute)
		if err != nil || n != i {
			t.Fatalf("failure %d counted %d, %v", i, n, err)
		}
		if until.Before(before.Add(time.Minute-time.Second)) || until.After(time.Now().Add(time.Minute+time.Second)) {
			t.Fatalf("failure window ends at %v, want about a minute after %v", until, before)
		}
		last = until
	}
	n, until, err := s.TOTPFailures(ctx, who)
	if err != nil || n != 3 || until.Sub(last).Abs() > time.Second {
		t.Fatalf("failures: %d until %v, %v; want 3 until %v", n, until, err, last)
	}
	if n, _, _ := s.TOTPFailures(ctx, "alex@x"); n != 0 {
		t.Fatalf("alex has %d failures", n)
	}
	if _, _, err := s.TOTPFailure(ctx, "short@x", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the time itself is what is waited for
	if n, _, err := s.TOTPFailures(ctx, "short@x"); err != nil || n != 0 {
		t.Fatalf("after the window: %d, %v", n, err)
	}
}
