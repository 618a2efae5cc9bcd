// Package redis is the Store shared by every Elevate replica. A live
// elevation is a Redis key that expires when the elevation ends, so Redis
// revokes it even when no Elevate process runs. Keys are laid out for Redis
// Cluster: all of a principal's keys share a hash tag, so each change is one
// atomic script on one slot. Standalone, Sentinel and Cluster deployments all
// work through redis.UniversalClient.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/elevatepdp/elevate/internal/store"
)

// Store is a store.Store on Redis.
type Store struct {
	c      goredis.UniversalClient
	prefix string

	cache *cache // nil without WithCache
	stop  context.CancelFunc
	done  chan struct{}
}

var _ store.Store = (*Store)(nil)

// New returns a store using c, its keys starting with "elevate:".
func New(c goredis.UniversalClient, opts ...Option) *Store {
	s := &Store{c: c, prefix: "elevate:"}
	for _, o := range opts {
		o(s)
	}
	if s.cache != nil {
		ctx, stop := context.WithCancel(context.Background())
		s.stop, s.done = stop, make(chan struct{})
		go func() {
			defer close(s.done)
			s.subscribe(ctx)
		}()
	}
	return s
}

// escape makes user input safe inside a key: everything but letters, digits
// and ._@- becomes %XX. The mapping is one-to-one, and an escaped name holds
// no ':', '{' or '}', so no principal, role, scope or id can forge another's
// key or move it to another hash slot.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '@' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// keys of one principal, all under one hash tag (see scripts.go).
type keys struct{ tag string }

func (s *Store) principal(p string) keys { return keys{tag: s.prefix + "{" + escape(p) + "}"} }
func (k keys) assignments() string       { return k.tag + ":asg" }
func (k keys) activations() string       { return k.tag + ":act" }
func (k keys) live() string              { return k.tag + ":live" }
func (k keys) elPrefix() string          { return k.tag + ":el:" }
func (k keys) el(id string) string       { return k.elPrefix() + escape(id) }
func (k keys) lock(role, scope string) string {
	return k.tag + ":on:" + escape(role) + ":" + escape(scope)
}

// Keys across principals, in other slots. Each is written before the change
// it indexes and is harmless when that change does not happen: readers find
// nothing behind it, or a due time that is not due.
func (s *Store) ids() string        { return s.prefix + "ids" }        // hash id -> principal
func (s *Store) principals() string { return s.prefix + "principals" } // set
func (s *Store) due() string        { return s.prefix + "due" }        // zset activation id, score = Due (Unix ms)

// invalidations is the channel every change to a principal's holdings
// publishes the principal's tag on (see cache.go).
func (s *Store) invalidations() string { return s.prefix + "invalidate" }

// changed drops p's cached holdings after a write to them: this replica's
// next decision reads what it just wrote, without waiting for the message.
func (s *Store) changed(p string) {
	if s.cache != nil {
		s.cache.invalidate(s.principal(p).tag)
	}
}

// pxat is t in Unix milliseconds, rounded up: the scores of the due index.
func pxat(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
}

// keyEnd is the PXAT of an elevation's keys that end at t. Redis keeps a
// key through the millisecond of its PXAT and removes it from the next one,
// so for t on a millisecond (as atMillis stores it) the key exists exactly
// while the time is before t, the instant reads and EffectOf take as the
// end.
func keyEnd(t time.Time) int64 { return pxat(t) - 1 }

// atMillis is a with the times of its elevation at the precision of Redis
// key expiry. With a finer ExpiresAt the record and the key disagreed: an
// elevation was over by its ExpiresAt while its key and its lock lasted up
// to two milliseconds longer, so recording its expiry failed ("has not run
// out"). Truncated, so nothing lasts past the time given; ActivatedAt too,
// so that the elevation lasts exactly its duration.
func atMillis(a store.Activation) store.Activation {
	for _, t := range []**time.Time{&a.ActivatedAt, &a.ExpiresAt} {
		if *t != nil {
			ms := (*t).Truncate(time.Millisecond)
			*t = &ms
		}
	}
	return a
}

// owner finds the principal an id belongs to.
func (s *Store) owner(ctx context.Context, kind, id string) (string, error) {
	p, err := s.c.HGet(ctx, s.ids(), id).Result()
	if errors.Is(err, goredis.Nil) {
		return "", fmt.Errorf("%s %s: %w", kind, id, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("find %s %s: %w", kind, id, err)
	}
	return p, nil
}

// claim records that id belongs to principal, the principal in the list of
// principals and, when due is set, id's first due time (see schedule), in
// one round trip; ErrConflict when the id belongs to another principal.
// The due entry is added only if id has none, so a conflicting claim
// leaves the owner's entry as it was.
func (s *Store) claim(ctx context.Context, kind, id, principal string, due *time.Time) error {
	pipe := s.c.Pipeline()
	set := pipe.HSetNX(ctx, s.ids(), id, principal)
	pipe.SAdd(ctx, s.principals(), principal)
	if due != nil {
		pipe.ZAddNX(ctx, s.due(), goredis.Z{Score: float64(pxat(*due)), Member: id})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record %s %s: %w", kind, id, err)
	}
	if !set.Val() {
		if p, err := s.c.HGet(ctx, s.ids(), id).Result(); err != nil || p != principal {
			return fmt.Errorf("%s %s: %w", kind, id, store.ErrConflict)
		}
	}
	return nil
}

func (s *Store) CreateAssignment(ctx context.Context, a store.Assignment) error {
	if err := store.ValidateAssignment(a); err != nil {
		return err
	}
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := s.claim(ctx, "assignment", a.ID, a.Principal, nil); err != nil {
		return err
	}
	k := s.principal(a.Principal)
	defer s.changed(a.Principal)
	set, err := assignScript.Run(ctx, s.c, []string{k.assignments()}, a.ID, b, s.invalidations(), k.tag).Bool()
	if err != nil {
		return fmt.Errorf("store assignment %s: %w", a.ID, err)
	}
	if !set {
		return fmt.Errorf("assignment %s: %w", a.ID, store.ErrConflict)
	}
	return nil
}

func (s *Store) Assignment(ctx context.Context, id string) (store.Assignment, error) {
	p, err := s.owner(ctx, "assignment", id)
	if err != nil {
		return store.Assignment{}, err
	}
	var a store.Assignment
	if err := s.hget(ctx, s.principal(p).assignments(), id, "assignment", &a); err != nil {
		return store.Assignment{}, err
	}
	return a, nil
}

func (s *Store) hget(ctx context.Context, key, field, kind string, v any) error {
	b, err := s.c.HGet(ctx, key, field).Bytes()
	if errors.Is(err, goredis.Nil) {
		return fmt.Errorf("%s %s: %w", kind, field, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read %s %s: %w", kind, field, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s %s: %w", kind, field, err)
	}
	return nil
}

// hvals reads the JSON values of one hash of every principal in scope (one
// principal, or all of them), in one pipeline.
func (s *Store) hvals(ctx context.Context, principal string, key func(keys) string) ([]string, error) {
	principals := []string{principal}
	if principal == "" {
		var err error
		if principals, err = s.c.SMembers(ctx, s.principals()).Result(); err != nil {
			return nil, fmt.Errorf("list principals: %w", err)
		}
	}
	cmds := make([]*goredis.StringSliceCmd, len(principals))
	_, err := s.c.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for i, p := range principals {
			cmds[i] = pipe.HVals(ctx, key(s.principal(p)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, cmd := range cmds {
		out = append(out, cmd.Val()...)
	}
	return out, nil
}

func (s *Store) Assignments(ctx context.Context, f store.AssignmentFilter) ([]store.Assignment, error) {
	raw, err := s.hvals(ctx, f.Principal, keys.assignments)
	if err != nil {
		return nil, fmt.Errorf("list assignments: %w", err)
	}
	out := []store.Assignment{}
	for _, v := range raw {
		var a store.Assignment
		if err := json.Unmarshal([]byte(v), &a); err != nil {
			return nil, fmt.Errorf("decode assignment: %w", err)
		}
		if f.Match(a) {
			out = append(out, a)
		}
	}
	sortAssignments(out)
	return out, nil
}

// oldestFirst sorts xs by the time key gives, then by id.
func oldestFirst[T any](xs []T, key func(T) (time.Time, string)) {
	slices.SortFunc(xs, func(a, b T) int {
		ta, ida := key(a)
		tb, idb := key(b)
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return strings.Compare(ida, idb)
	})
}

func sortAssignments(as []store.Assignment) {
	oldestFirst(as, func(a store.Assignment) (time.Time, string) { return a.CreatedAt, a.ID })
}

// change is one activation to write in an apply.
type change struct {
	a      store.Activation // as it will be stored
	expect int              // stored version it replaces; 0 for a new one
	effect store.Effect
}

// apply writes changes of principal p atomically, deleting assignment
// deleteID ("" for none) in the same step. It returns the deleted
// assignment's JSON.
func (s *Store) apply(ctx context.Context, p, deleteID string, changes ...change) (string, error) {
	k := s.principal(p)
	// Invalidated whatever the answer: a timeout may hide a change made.
	defer s.changed(p)
	args := []any{deleteID, len(changes), k.elPrefix()}
	for _, c := range changes {
		b, err := json.Marshal(c.a)
		if err != nil {
			return "", err
		}
		var end int64
		if c.a.ExpiresAt != nil {
			end = keyEnd(*c.a.ExpiresAt)
		}
		args = append(args, escape(c.a.ID), c.expect, b, int(c.effect), end,
			k.lock(c.a.Role, c.a.Scope), k.el(c.a.ID), c.a.AssignmentID, c.a.ID)
	}
	args = append(args, s.invalidations(), k.tag)
	res, err := applyScript.Run(ctx, s.c, []string{k.activations(), k.live(), k.assignments()}, args...).Slice()
	if err != nil {
		return "", fmt.Errorf("write activations of %q: %w", p, err)
	}
	if res[0] == "ok" {
		deleted, _ := res[1].(string)
		return deleted, nil
	}
	what := "assignment " + deleteID
	if i, _ := res[1].(int64); i >= 0 && int(i) < len(changes) {
		what = "activation " + changes[i].a.ID
	}
	switch res[0] {
	case "exists":
		return "", fmt.Errorf("%s: %w", what, store.ErrConflict)
	case "missing", "no_assignment":
		return "", fmt.Errorf("%s (or its assignment): %w", what, store.ErrNotFound)
	case "stale":
		return "", fmt.Errorf("%s: %w", what, store.ErrStale)
	case "held":
		return "", fmt.Errorf("%s: the role is already active at that scope: %w", what, store.ErrConflict)
	case "ended":
		return "", fmt.Errorf("%s already ended: %w", what, store.ErrConflict)
	case "running":
		return "", fmt.Errorf("%s has not run out: %w", what, store.ErrConflict)
	}
	return "", fmt.Errorf("write activations of %q: unexpected answer %v", p, res)
}

// schedule indexes a's next due time before it is written, so nothing comes
// due unseen; unschedule drops the entry once a has nothing left to do.
func (s *Store) schedule(ctx context.Context, a store.Activation) error {
	if at := a.Due(); at != nil {
		if err := s.c.ZAdd(ctx, s.due(), goredis.Z{Score: float64(pxat(*at)), Member: a.ID}).Err(); err != nil {
			return fmt.Errorf("schedule %s: %w", a.ID, err)
		}
	}
	return nil
}

func (s *Store) unschedule(ctx context.Context, a store.Activation) {
	if a.Due() == nil {
		// A failure leaves an entry ClaimDue finds not due and drops.
		s.c.ZRem(ctx, s.due(), a.ID)
	}
}

func (s *Store) CreateActivation(ctx context.Context, a store.Activation) (store.Activation, error) {
	a = atMillis(a)
	a.Version = 1
	effect, err := store.EffectOf(nil, a, time.Now())
	if err != nil {
		return store.Activation{}, err
	}
	if err := s.claim(ctx, "activation", a.ID, a.Principal, a.Due()); err != nil {
		return store.Activation{}, err
	}
	if _, err := s.apply(ctx, a.Principal, "", change{a: a, effect: effect}); err != nil {
		return store.Activation{}, err
	}
	return a, nil
}

func (s *Store) UpdateActivation(ctx context.Context, a store.Activation) (store.Activation, error) {
	old, err := s.Activation(ctx, a.ID)
	if err != nil {
		return store.Activation{}, err
	}
	if old.Version != a.Version {
		return store.Activation{}, fmt.Errorf("activation %s: %w", a.ID, store.ErrStale)
	}
	a = atMillis(a)
	effect, err := store.EffectOf(&old, a, time.Now())
	if err != nil {
		return store.Activation{}, err
	}
	a.Version++
	if err := s.schedule(ctx, a); err != nil {
		return store.Activation{}, err
	}
	if _, err := s.apply(ctx, a.Principal, "", change{a: a, expect: old.Version, effect: effect}); err != nil {
		return store.Activation{}, err
	}
	s.unschedule(ctx, a)
	return a, nil
}

func (s *Store) Activation(ctx context.Context, id string) (store.Activation, error) {
	p, err := s.owner(ctx, "activation", id)
	if err != nil {
		return store.Activation{}, err
	}
	var a store.Activation
	if err := s.hget(ctx, s.principal(p).activations(), escape(id), "activation", &a); err != nil {
		return store.Activation{}, err
	}
	return a, nil
}

func decodeActivations(raw []string) ([]store.Activation, error) {
	out := make([]store.Activation, 0, len(raw))
	for _, v := range raw {
		var a store.Activation
		if err := json.Unmarshal([]byte(v), &a); err != nil {
			return nil, fmt.Errorf("decode activation: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

func sortActivations(as []store.Activation) {
	oldestFirst(as, func(a store.Activation) (time.Time, string) { return a.RequestedAt, a.ID })
}

func (s *Store) Activations(ctx context.Context, f store.ActivationFilter) ([]store.Activation, error) {
	raw, err := s.hvals(ctx, f.Principal, keys.activations)
	if err != nil {
		return nil, fmt.Errorf("list activations: %w", err)
	}
	all, err := decodeActivations(raw)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, a := range all {
		if f.Match(a) {
			out = append(out, a)
		}
	}
	sortActivations(out)
	return out, nil
}

// running returns the principal's activations whose elevation key exists.
func (s *Store) running(ctx context.Context, principal string) ([]store.Activation, error) {
	k := s.principal(principal)
	raw, err := liveScript.Run(ctx, s.c, []string{k.live(), k.activations()}, k.elPrefix()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("read elevations of %q: %w", principal, err)
	}
	return decodeActivations(raw)
}

func (s *Store) Holdings(ctx context.Context, principal string, now time.Time) (store.Holdings, error) {
	k := s.principal(principal)
	var gen uint64
	var keep bool
	if s.cache != nil {
		var h *holdings
		if h, gen, keep = s.cache.get(k.tag); h != nil {
			return h.at(now), nil
		}
	}
	h, err := s.holdings(ctx, k, principal)
	if err != nil {
		return store.Holdings{}, err
	}
	if keep {
		s.cache.put(k.tag, gen, h)
	}
	return h.at(now), nil
}

// holdings reads every assignment and running activation of principal, in
// one round trip, sorted as Holdings answers them.
func (s *Store) holdings(ctx context.Context, k keys, principal string) (*holdings, error) {
	res, err := holdingsScript.Run(ctx, s.c, []string{k.assignments(), k.live(), k.activations()}, k.elPrefix()).Slice()
	if err != nil {
		return nil, fmt.Errorf("read holdings of %q: %w", principal, err)
	}
	rawAsg, _ := res[0].([]any)
	rawEl, _ := res[1].([]any)
	h := &holdings{assignments: make([]store.Assignment, 0, len(rawAsg)), elevations: make([]store.Activation, 0, len(rawEl))}
	for _, v := range rawAsg {
		var a store.Assignment
		if err := json.Unmarshal([]byte(v.(string)), &a); err != nil {
			return nil, fmt.Errorf("decode assignment: %w", err)
		}
		h.assignments = append(h.assignments, a)
	}
	for _, v := range rawEl {
		var a store.Activation
		if err := json.Unmarshal([]byte(v.(string)), &a); err != nil {
			return nil, fmt.Errorf("decode activation: %w", err)
		}
		h.elevations = append(h.elevations, a)
	}
	sortAssignments(h.assignments)
	sortActivations(h.elevations)
	return h, nil
}

func (s *Store) DeleteAssignment(ctx context.Context, id, by string, now time.Time) (store.Assignment, []store.Activation, error) {
	p, err := s.owner(ctx, "assignment", id)
	if err != nil {
		return store.Assignment{}, nil, err
	}
	// The activations to revoke are read, then revoked with the deletion in
	// one script that checks nothing changed in between and that none was
	// started meanwhile; a race with an activation, an expiry or a
	// deactivation reads again.
	for range 10 {
		raw, err := s.c.HVals(ctx, s.principal(p).activations()).Result()
		if err != nil {
			return store.Assignment{}, nil, fmt.Errorf("read activations of %q: %w", p, err)
		}
		all, err := decodeActivations(raw)
		if err != nil {
			return store.Assignment{}, nil, err
		}
		running, err := s.running(ctx, p)
		if err != nil {
			return store.Assignment{}, nil, err
		}
		live := map[string]bool{}
		for _, a := range running {
			live[a.ID] = true
		}
		var changes []change
		var revoked []store.Activation
		for _, a := range all {
			effect := store.NoEffect
			switch {
			case a.AssignmentID != id:
				continue
			case live[a.ID]:
				effect = store.End
			case a.Status != store.Pending && a.Status != store.Scheduled:
				continue
			}
			r := store.Revoke(a, by, now)
			r.Version++
			changes = append(changes, change{a: r, expect: a.Version, effect: effect})
			revoked = append(revoked, r)
		}
		deleted, err := s.apply(ctx, p, id, changes...)
		if errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return store.Assignment{}, nil, err
		}
		var a store.Assignment
		if err := json.Unmarshal([]byte(deleted), &a); err != nil {
			return store.Assignment{}, nil, fmt.Errorf("decode assignment: %w", err)
		}
		s.c.HDel(ctx, s.ids(), id)
		for _, r := range revoked {
			s.unschedule(ctx, r)
		}
		if revoked == nil {
			revoked = []store.Activation{}
		}
		sortActivations(revoked)
		return a, revoked, nil
	}
	return store.Assignment{}, nil, fmt.Errorf("delete assignment %s: kept changing: %w", id, store.ErrStale)
}

func (s *Store) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.Activation, error) {
	if limit <= 0 {
		limit = -1
	}
	// Scores are due times rounded up to the millisecond, so now is too:
	// everything due by now is found (rounded down, a time due within
	// now's millisecond was missed until the next); one not due yet is
	// found due below and put back.
	ids, err := claimScript.Run(ctx, s.c, []string{s.due()},
		pxat(now), now.Add(lease).UnixMilli(), limit).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("claim due activations: %w", err)
	}
	out := []store.Activation{}
	for _, id := range ids {
		a, err := s.Activation(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			s.c.ZRem(ctx, s.due(), id)
			continue
		}
		if err != nil {
			return out, err
		}
		// The index may be ahead of or behind the record (see schedule):
		// the record decides.
		switch at := a.Due(); {
		case at == nil:
			s.c.ZRem(ctx, s.due(), id)
		case now.Before(*at):
			s.c.ZAdd(ctx, s.due(), goredis.Z{Score: float64(pxat(*at)), Member: id})
		default:
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *Store) Ping(ctx context.Context) error { return s.c.Ping(ctx).Err() }

func (s *Store) Close() error {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	return s.c.Close()
}
