package audit

import (
	"context"
	"encoding/json"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
)

// RedisSink appends events to one Redis Stream shared by every replica.
// Reads filter on the event's own time: the stream's ids come from the Redis
// server's clock, which need not agree with the replicas'.
type RedisSink struct {
	c   goredis.UniversalClient
	key string
	max int64
}

// NewRedisSink writes to the stream "elevate:audit", trimmed to about max
// entries (0: never trimmed).
func NewRedisSink(c goredis.UniversalClient, max int64) *RedisSink {
	return &RedisSink{c: c, key: "elevate:audit", max: max}
}

func (r *RedisSink) Append(ctx context.Context, e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	args := &goredis.XAddArgs{Stream: r.key, Values: []any{"event", b}}
	if r.max > 0 {
		args.MaxLen, args.Approx = r.max, true
	}
	return r.c.XAdd(ctx, args).Err()
}

// page is how many entries one XRANGE call reads.
const page = 500

func (r *RedisSink) Events(ctx context.Context, f Filter) ([]Event, error) {
	start := "-"
	out := []Event{}
	for {
		msgs, err := r.c.XRangeN(ctx, r.key, start, "+", page).Result()
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
