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
func (k keys) totpWrong() string    { return k.tag + ":totp:wrong" }
func (k keys) totpInvite() string   { return k.tag + ":totp:invite" }

func (s *Store) DeleteTOTPSecret(ctx context.Context, principal string) (bool, error) {
	n, err := s.c.Del(ctx, s.principal(principal).totpSecret()).Result()
	if err != nil {
		return false, fmt.Errorf("delete TOTP secret: %w", err)
	}
	return n == 1, nil
}

func (s *Store) PutTOTPInvite(ctx context.Context, principal, sum string, ttl time.Duration) error {
	if err := s.c.Set(ctx, s.principal(principal).totpInvite(), sum, ttl).Err(); err != nil {
		return fmt.Errorf("store TOTP invite: %w", err)
	}
	return nil
}

// consumeInvite deletes the invite only when it is the one presented, in one
// step: of two concurrent uses, one finds it and the other nothing.
var consumeInvite = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

func (s *Store) ConsumeTOTPInvite(ctx context.Context, principal, sum string) (bool, error) {
	n, err := consumeInvite.Run(ctx, s.c, []string{s.principal(principal).totpInvite()}, sum).Int()
	if err != nil {
		return false, fmt.Errorf("consume TOTP invite: %w", err)
	}
	return n == 1, nil
}

// countFailure counts a wrong code in a key that expires a window after the
// first one, and returns the count and the milliseconds left.
var countFailure = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {n, redis.call('PTTL', KEYS[1])}
`)

func (s *Store) TOTPFailure(ctx context.Context, principal string, window time.Duration) (int, time.Time, error) {
	now := time.Now()
	res, err := countFailure.Run(ctx, s.c, []string{s.principal(principal).totpWrong()}, window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count TOTP failure: %w", err)
	}
	if len(res) != 2 {
		return 0, time.Time{}, fmt.Errorf("count TOTP failure: script answered %v", res)
	}
	return int(res[0]), now.Add(time.Duration(res[1]) * time.Millisecond), nil
}

func (s *Store) TOTPFailures(ctx context.Context, principal string) (int, time.Time, error) {
	key := s.principal(principal).totpWrong()
	now := time.Now()
	pipe := s.c.Pipeline()
	get := pipe.Get(ctx, key)
	ttl := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return 0, time.Time{}, fmt.Errorf("read TOTP failures: %w", err)
	}
	n, err := get.Int()
	if errors.Is(err, goredis.Nil) || ttl.Val() <= 0 {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read TOTP failures: %w", err)
	}
	return n, now.Add(ttl.Val()), nil
}

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

// TOTPAttempt counts in a key that expires a window after the first
// attempt: created with its expiry, then incremented (INCR keeps the
// expiry), in one transaction, so a count never outlives its window and
// concurrent attempts each get their own number.
func (s *Store) TOTPAttempt(ctx context.Context, principal string, window time.Duration) (int, error) {
	key := s.principal(principal).totpFailures()
	var n *goredis.IntCmd
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.SetNX(ctx, key, 0, window)
		n = p.Incr(ctx, key)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count TOTP attempt: %w", err)
	}
	return int(n.Val()), nil
}

// takeBack decrements a counter only while it exists: a DECR after the
// window ended would create a counter without expiry.
var takeBack = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 and tonumber(redis.call('GET', KEYS[1])) > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
`)

func (s *Store) TOTPAttemptOK(ctx context.Context, principal string) error {
	if err := takeBack.Run(ctx, s.c, []string{s.principal(principal).totpFailures()}).Err(); err != nil {
		return fmt.Errorf("take back TOTP attempt: %w", err)
	}
	return nil
}
