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

	if n, err := s.TOTPFailures(ctx, "sophia@x"); err != nil || n != 0 {
		t.Fatalf("failures before any: %d, %v", n, err)
	}
	for range 3 {
		must(t, s.AddTOTPFailure(ctx, "sophia@x", 300*time.Millisecond))
	}
	if n, err := s.TOTPFailures(ctx, "sophia@x"); err != nil || n != 3 {
		t.Fatalf("failures: %d, %v; want 3", n, err)
	}
	if n, _ := s.TOTPFailures(ctx, "alex@x"); n != 0 {
		t.Fatalf("alex has %d failures", n)
	}
	// The window starts at the first failure and then forgets them all.
	time.Sleep(400 * time.Millisecond)
	if n, err := s.TOTPFailures(ctx, "sophia@x"); err != nil || n != 0 {
		t.Fatalf("failures after the window: %d, %v", n, err)
	}
}
