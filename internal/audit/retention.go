package audit

import (
	"fmt"
	"time"
)

// Retention says how much of the trail a sink keeps. Zero fields keep
// everything. Trimming removes the oldest events and moves the anchor to
// the newest removed one, so what remains still verifies from its first
// event.
//
// When it is applied: MemorySink on every append; RedisSink when Trim is
// called, which Log.Record does at its first record and then every 100th
// (per process), since Redis trimming reads the oldest events. Between two
// trims a Redis trail may hold up to 99 events per replica more than
// MaxEvents, or events somewhat older than MaxAge.
type Retention struct {
	// MaxAge removes events whose time is older than this. Events are
	// removed oldest seq first and removal stops at the first event young
	// enough, so an event stamped by a replica with a slow clock is kept
	// until those before it go (the chain cannot have holes).
	MaxAge time.Duration
	// MaxEvents keeps at most this many of the newest events.
	MaxEvents int
}

// Validate refuses negative values, naming the field.
func (r Retention) Validate() error {
	switch {
	case r.MaxAge < 0:
		return fmt.Errorf("max_age %s: give a positive duration, or 0 to keep events of any age", r.MaxAge)
	case r.MaxEvents < 0:
		return fmt.Errorf("max_events %d: give a positive number, or 0 to keep any number", r.MaxEvents)
	}
	return nil
}

func (r Retention) keepsAll() bool { return r.MaxAge <= 0 && r.MaxEvents <= 0 }
