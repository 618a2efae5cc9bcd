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
}
