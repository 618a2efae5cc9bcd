package memory

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/elevatepdp/elevate/internal/identity"
)

var _ identity.Secrets = (*Store)(nil)

// TOTP state lives beside the rest, under the same lock.
type totpState struct {
	secrets  map[string]string
	used     map[string]time.Time    // principal and counter -> forgotten after
	failures map[string]totpFailures // attempts: wrong codes and codes being checked
	wrong    map[string]totpFailures // wrong codes only
	invites  map[string]totpInvite
}

// totpInvite is the hash of an enrolment invite and when it expires.
type totpInvite struct {
	sum   string
	until time.Time
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

func (s *Store) DeleteTOTPSecret(_ context.Context, principal string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.totp.secrets[principal]
	delete(s.totp.secrets, principal)
	return ok, nil
}

func (s *Store) PutTOTPInvite(_ context.Context, principal, sum string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.totp.invites[principal] = totpInvite{sum: sum, until: s.now().Add(ttl)}
	return nil
}

// ConsumeTOTPInvite checks and removes under the lock: of two concurrent
// uses only one finds the invite.
func (s *Store) ConsumeTOTPInvite(_ context.Context, principal, sum string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.totp.invites[principal]
	if !ok {
		return false, nil
	}
	if !s.now().Before(inv.until) {
		delete(s.totp.invites, principal)
		return false, nil
	}
	if subtle.ConstantTimeCompare([]byte(inv.sum), []byte(sum)) != 1 {
		return false, nil
	}
	delete(s.totp.invites, principal)
	return true, nil
}

func (s *Store) TOTPFailure(_ context.Context, principal string, window time.Duration) (int, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.countIn(s.totp.wrong, principal, window)
	return f.n, f.until, nil
}

// countIn counts one more for principal in m, in a window of length window
// that starts anew once the last has ended. s.mu must be held.
func (s *Store) countIn(m map[string]totpFailures, principal string, window time.Duration) totpFailures {
	f := m[principal]
	if !s.now().Before(f.until) {
		f = totpFailures{until: s.now().Add(window)}
	}
	f.n++
	m[principal] = f
	return f
}

func (s *Store) TOTPFailures(_ context.Context, principal string) (int, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.totp.wrong[principal]
	if !s.now().Before(f.until) {
		return 0, time.Time{}, nil
	}
	return f.n, f.until, nil
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
	return s.countIn(s.totp.failures, principal, window).n, nil
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
