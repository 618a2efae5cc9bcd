package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/elevatepdp/elevate/internal/identity"
)

var _ identity.Secrets = (*Store)(nil)

// TOTP state lives beside the rest, under the same lock.
type totpState struct {
	secrets  map[string]string
	used     map[string]time.Time // principal and counter -> forgotten after
	failures map[string]totpFailures
}

// totpFailures counts attempts that were not taken back, in a window
// ending at until.
type totpFailures struct {
	n     int
	until time.Time
}

func (s *Store) PutTOTPSecret(_ context.Context, principal, secret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.totp.secrets[principal] = secret
	return nil
}

func (s *Store) TOTPSecret(_ context.Context, principal string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	secret, ok := s.totp.secrets[principal]
	if !ok {
		return "", fmt.Errorf("%s: %w", principal, identity.ErrNotEnrolled)
	}
	return secret, nil
}

func (s *Store) MarkTOTPUsed(_ context.Context, principal string, counter uint64, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, until := range s.totp.used {
		if !now.Before(until) {
			delete(s.totp.used, k)
		}
	}
	key := fmt.Sprintf("%s\x00%d", principal, counter)
	if _, ok := s.totp.used[key]; ok {
		return false, nil
	}
	s.totp.used[key] = now.Add(ttl)
	return true, nil
}

func (s *Store) TOTPAttempt(_ context.Context, principal string, window time.Duration) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.totp.failures[principal]
	if !s.now().Before(f.until) {
		f = totpFailures{until: s.now().Add(window)}
	}
	f.n++
	s.totp.failures[principal] = f
	return f.n, nil
}

func (s *Store) TOTPAttemptOK(_ context.Context, principal string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.totp.failures[principal]; s.now().Before(f.until) && f.n > 0 {
		f.n--
		s.totp.failures[principal] = f
	}
	return nil
}
