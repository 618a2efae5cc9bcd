package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/elevatepdp/elevate/internal/identity"
)

var _ identity.Secrets = (*Store)(nil)

func (k keys) totpSecret() string { return k.tag + ":totp" }
func (k keys) totpUsed(counter uint64) string {
	return k.tag + ":totp:" + strconv.FormatUint(counter, 10)
}
func (k keys) totpFailures() string { return k.tag + ":totp:fails" }

func (s *Store) PutTOTPSecret(ctx context.Context, principal, secret string) error {
	if err := s.c.Set(ctx, s.principal(principal).totpSecret(), secret, 0).Err(); err != nil {
		return fmt.Errorf("store TOTP secret: %w", err)
	}
	return nil
}

func (s *Store) TOTPSecret(ctx context.Context, principal string) (string, error) {
	secret, err := s.c.Get(ctx, s.principal(principal).totpSecret()).Result()
	if errors.Is(err, goredis.Nil) {
		return "", identity.ErrNotEnrolled
	}
	if err != nil {
		return "", fmt.Errorf("read TOTP secret: %w", err)
	}
	return secret, nil
}

// MarkTOTPUsed is one SET NX: of two replicas accepting the same code at
// once, only one is first.
func (s *Store) MarkTOTPUsed(ctx context.Context, principal string, counter uint64, ttl time.Duration) (bool, error) {
	first, err := s.c.SetNX(ctx, s.principal(principal).totpUsed(counter), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("record TOTP use: %w", err)
	}
	return first, nil
}

func (s *Store) TOTPFailures(ctx context.Context, principal string) (int, error) {
	n, err := s.c.Get(ctx, s.principal(principal).totpFailures()).Int()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read TOTP failures: %w", err)
	}
	return n, nil
}

// AddTOTPFailure counts in a key that expires a window after the first
// failure: created with its expiry, then incremented (INCR keeps the
// expiry), in one transaction, so a counter never outlives its window.
func (s *Store) AddTOTPFailure(ctx context.Context, principal string, window time.Duration) error {
	key := s.principal(principal).totpFailures()
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.SetNX(ctx, key, 0, window)
		p.Incr(ctx, key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("count TOTP failure: %w", err)
	}
	return nil
}
