package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The keys of the trail. They share the hash tag {audit}, so Redis Cluster
// keeps them in one slot and a script may touch all of them.
const (
	// streamKey is a Stream with one entry per event, id "<seq>-0", fields
	// "event" (its JSON form) and "hash".
	streamKey = "elevate:{audit}"
	// headKey is a hash {seq, hash} of the newest event: what the next one
	// chains to. It is the one thing writers race for.
	headKey = "elevate:{audit}:head"
	// anchorKey is a hash {seq, hash} of the newest event trimmed away.
	anchorKey = "elevate:{audit}:anchor"
)

const (
	// appendAttempts bounds the retries of a batch that lost the race for
	// the head to another writer. Each lost race means another event was
	// appended, so running out takes sustained contention from many
	// replicas; the event is then reported not stored (and is in the
	// process log).
	appendAttempts = 100
	// retryBase and retryMax bound the jittered wait before a retry: full
	// jitter over an exponentially growing window, so writers that lost
	// together do not collide again in lockstep.
	retryBase = 200 * time.Microsecond
	retryMax  = 20 * time.Millisecond
)

// ErrContended is returned when an append lost the race for the head
// appendAttempts times in a row.
var ErrContended = errors.New("audit append lost the race for the chain's head too many times")

// RedisSink keeps the trail in a Redis Stream shared by every replica.
// Redis has no SHA-256 in Lua, so an append reads the head in Go, hashes
// the events after it, and runs a script that, only if the head is still
// the one read, adds them and moves the head; else it retries on the new
// head. Concurrent appends of one sink go as one batch (see Append), so
// they do not race each other for the head. Reads filter on the event's own
// time: replicas' clocks need not agree, so events are ordered by seq, not
// time.
type RedisSink struct {
	c    goredis.UniversalClient
	keep Retention
	now  func() time.Time

	// qmu guards queue, the appends waiting for a batch, and busy, whether
	// some caller leads (runs a batch or is about to).
	qmu   sync.Mutex
	queue []*pending
	busy  bool

	// last is the head as this sink last saw it: it saves a read per batch;
	// when stale, the script answers the real one. Only the leader uses
	// it, and the lead passes under qmu, which orders the uses.
	last *Anchor
}

var (
	_ Sink    = (*RedisSink)(nil)
	_ Trimmer = (*RedisSink)(nil)
)

// NewRedisSink keeps up to max events (0: all).
func NewRedisSink(c goredis.UniversalClient, max int64) *RedisSink {
	return NewRedisSinkWith(c, Retention{MaxEvents: int(max)})
}

// NewRedisSinkWith keeps what keep says.
func NewRedisSinkWith(c goredis.UniversalClient, keep Retention) *RedisSink {
	return &RedisSink{c: c, keep: keep, now: time.Now}
}

// batchScript appends a batch of chained events if the head is still the
// one they were chained from. KEYS: stream, head. ARGV: head seq, head
// hash, the last event's seq, then for each event, oldest first, its
// stream id, hash and JSON. It answers {1} when added, or {0, seq, hash}
// of the current head. A missing head is seq 0 at the genesis. Redis does
// not undo a script's writes when a command fails part-way, but only the
// first XADD can be refused for its id (the others' ids rise from it), so
// a refusal writes nothing.
var batchScript = goredis.NewScript(`
local h = redis.call('HMGET', KEYS[2], 'seq', 'hash')
local seq, hash = h[1], h[2]
if not seq then seq, hash = '0', '` + Genesis + `' end
if seq ~= ARGV[1] or hash ~= ARGV[2] then return {0, seq, hash} end
for i = 4, #ARGV, 3 do
  redis.call('XADD', KEYS[1], ARGV[i], 'event', ARGV[i + 2], 'hash', ARGV[i + 1])
end
redis.call('HSET', KEYS[2], 'seq', ARGV[3], 'hash', ARGV[#ARGV - 1])
return {1}
`)

func streamID(seq int64) string { return strconv.FormatInt(seq, 10) + "-0" }

// appendBatch stores the events of batch, chained one after another from
// the head, all or none, and sets each caller's out (or its own err when
// its event alone cannot be chained).
func (r *RedisSink) appendBatch(ctx context.Context, batch []*pending) error {
	head, err := r.head(ctx)
	if err != nil {
		return err
	}
	for attempt := range appendAttempts {
		if attempt > 0 {
			window := min(retryBase<<min(attempt-1, 16), retryMax)
			select {
			case <-time.After(rand.N(window)):
			case <-ctx.Done():
				r.last = nil
				return fmt.Errorf("append audit events: %w", ctx.Err())
			}
		}
		args, last := chainBatch(head, batch)
		if last == head {
			return nil // no event could be chained; each has its error
		}
		res, err := batchScript.Run(ctx, r.c, []string{streamKey, headKey}, args...).Slice()
		if err != nil {
			r.last = nil
			return fmt.Errorf("append audit events: %w", err)
		}
		if added, _ := res[0].(int64); added == 1 {
			r.last = &last
			return nil
		}
		if head, err = parseHead(res[1:]); err != nil {
			r.last = nil
			return err
		}
	}
	r.last = nil
	return ErrContended
}

// chainBatch chains the events of batch one after another from head,
// setting each caller's out, and returns batchScript's arguments and the
// new head. An event that cannot be chained (it has no canonical form)
// fails alone: its caller gets the error and it is left out.
func chainBatch(head Anchor, batch []*pending) ([]any, Anchor) {
	prev := head.Hash
	if head.Seq == 0 {
		prev = Genesis
	}
	args := make([]any, 3, 3+3*len(batch))
	args[0], args[1] = head.Seq, prev
	last := head
	for _, p := range batch {
		if p.err != nil {
			continue
		}
		e, err := chain(last, p.e)
		var raw []byte
		if err == nil {
			raw, err = json.Marshal(e)
		}
		if err != nil {
			p.err = err
			continue
		}
		p.out = e
		args = append(args, streamID(e.Seq), e.Hash, raw)
		last = Anchor{Seq: e.Seq, Hash: e.Hash}
	}
	args[2] = last.Seq
	return args, last
}

// head is the head this sink last saw, or Redis's.
func (r *RedisSink) head(ctx context.Context) (Anchor, error) {
	if r.last != nil {
		return *r.last, nil
	}
	h, err := r.c.HMGet(ctx, headKey, "seq", "hash").Result()
	if err != nil {
		return Anchor{}, fmt.Errorf("read the audit chain's head: %w", err)
	}
	if h[0] == nil {
		return Anchor{Hash: Genesis}, nil
	}
	return parseHead(h)
}

// parseHead reads {seq, hash} as Redis answers them.
func parseHead(v []any) (Anchor, error) {
	if len(v) != 2 {
		return Anchor{}, fmt.Errorf("audit chain head: %d values, want seq and hash", len(v))
	}
	s, _ := v[0].(string)
	h, _ := v[1].(string)
	seq, err := strconv.ParseInt(s, 10, 64)
	if err != nil || seq < 0 || !isHash(h) {
		return Anchor{}, fmt.Errorf("audit chain head is not a seq and a hash: %q, %q", s, h)
	}
	return Anchor{Seq: seq, Hash: h}, nil
}

// page is how many entries one XRANGE call reads.
const page = 500

func (r *RedisSink) Events(ctx context.Context, f Filter) ([]Event, error) {
	start := "-"
	if f.AfterSeq > 0 {
		start = streamID(f.AfterSeq + 1)
	}
	out := []Event{}
	for first := true; ; first = false {
		var msgs []goredis.XMessage
		var err error
		if first && f.AnchorOut != nil {
			msgs, err = r.firstPage(ctx, start, f.AnchorOut)
		} else {
			msgs, err = r.c.XRangeN(ctx, streamKey, start, "+", page).Result()
		}
		if err != nil {
			return nil, fmt.Errorf("read audit events: %w", err)
		}
		for _, m := range msgs {
			raw, _ := m.Values["event"].(string)
			var e Event
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				return nil, fmt.Errorf("decode audit event %s: %w", m.ID, err)
			}
			if f.Match(e) {
				out = append(out, e)
				if f.Limit > 0 && len(out) == f.Limit {
					return out, nil
				}
			}
		}
		if len(msgs) < page {
			return out, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// firstPage reads the anchor and the first page in one MULTI, so a trim
// cannot fall between them and leave an anchor that does not fit.
func (r *RedisSink) firstPage(ctx context.Context, start string, anchor *Anchor) ([]goredis.XMessage, error) {
	var a *goredis.SliceCmd
	var x *goredis.XMessageSliceCmd
	_, err := r.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		a = p.HMGet(ctx, anchorKey, "seq", "hash")
		x = p.XRangeN(ctx, streamKey, start, "+", page)
		return nil
	})
	if err != nil {
		return nil, err
	}
	*anchor = Anchor{}
	if v := a.Val(); v[0] != nil {
		if *anchor, err = parseHead(v); err != nil {
			return nil, fmt.Errorf("audit anchor: %w", err)
		}
	}
	return x.Val(), nil
}

// trimScript trims the stream up to and including seq ARGV[1] and makes
// that event the anchor, unless the anchor is already there or beyond.
// KEYS: stream, anchor. ARGV: seq, its stream id, the next stream id. It
// answers how many entries it removed.
var trimScript = goredis.NewScript(`
local a = redis.call('HGET', KEYS[2], 'seq')
if a and tonumber(a) >= tonumber(ARGV[1]) then return 0 end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then return redis.error_reply('audit event ' .. ARGV[1] .. ' is missing: cannot anchor the trail there') end
local fields, hash = e[1][2], nil
for i = 1, #fields, 2 do if fields[i] == 'hash' then hash = fields[i + 1] end end
if not hash then return redis.error_reply('audit event ' .. ARGV[1] .. ' has no hash') end
local n = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[3])
redis.call('HSET', KEYS[2], 'seq', ARGV[1], 'hash', hash)
return n
`)

// Trim applies the retention now: it removes the events past MaxEvents and
// MaxAge, oldest first, and anchors the trail at the newest removed. It is
// safe to run on every replica at once: the script only ever moves the
// anchor forward.
func (r *RedisSink) Trim(ctx context.Context) (int, error) {
	if r.keep.keepsAll() {
		return 0, nil
	}
	var cut int64
	if r.keep.MaxEvents > 0 {
		h, err := r.c.HGet(ctx, headKey, "seq").Int64()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return 0, fmt.Errorf("read the audit chain's head: %w", err)
		}
		cut = h - int64(r.keep.MaxEvents)
	}
	if r.keep.MaxAge > 0 {
		old, err := r.oldUntil(ctx, r.now().Add(-r.keep.MaxAge))
		if err != nil {
			return 0, err
		}
		cut = max(cut, old)
	}
	if cut <= 0 {
		return 0, nil
	}
	n, err := trimScript.Run(ctx, r.c, []string{streamKey, anchorKey}, cut, streamID(cut), streamID(cut+1)).Int()
	if err != nil {
		return 0, fmt.Errorf("trim the audit trail up to seq %d: %w", cut, err)
	}
	return n, nil
}

// oldUntil is the seq of the last event, from the oldest on, stamped
// before cutoff; 0 when the oldest is young enough.
func (r *RedisSink) oldUntil(ctx context.Context, cutoff time.Time) (int64, error) {
	var last int64
	start := "-"
	for {
		msgs, err := r.c.XRangeN(ctx, streamKey, start, "+", page).Result()
		if err != nil {
			return 0, fmt.Errorf("read audit events: %w", err)
		}
		for _, m := range msgs {
			var e Event
			raw, _ := m.Values["event"].(string)
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				return 0, fmt.Errorf("decode audit event %s: %w", m.ID, err)
			}
			if !e.Time.Before(cutoff) {
				return last, nil
			}
			last = e.Seq
		}
		if len(msgs) < page {
			return last, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}
