package audit

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/ids"
)

// Type names what happened.
type Type string

// The events of the workflow.
const (
	AssignmentCreated   Type = "assignment.created"
	AssignmentRemoved   Type = "assignment.removed"
	ActivationRequested Type = "activation.requested"
	MFAFailed           Type = "mfa.failed"
	PolicyDenied        Type = "policy.denied"
	Approved            Type = "activation.approved"
	Denied              Type = "activation.denied"
	Cancelled           Type = "activation.cancelled"
	Activated           Type = "activation.activated"
	Deactivated         Type = "activation.deactivated"
	Extended            Type = "activation.extended"
	Expired             Type = "activation.expired"
	TimedOut            Type = "activation.timed_out"
	Revoked             Type = "activation.revoked"
	TOTPEnrolled        Type = "mfa.totp_enrolled"
	// TOTPInvited: an administrator issued an enrolment invite (Principal
	// is the invitee, ExpiresAt its end).
	TOTPInvited Type = "mfa.totp_invited"
	// TOTPReset: an administrator removed a principal's TOTP secret.
	TOTPReset Type = "mfa.totp_reset"
)

// Types are all the event types, so a filter naming another can be refused
// rather than silently match nothing.
var Types = []Type{
	AssignmentCreated, AssignmentRemoved, ActivationRequested, MFAFailed, PolicyDenied, Approved, Denied,
	Cancelled, Activated, Deactivated, Extended, Expired, TimedOut, Revoked, TOTPEnrolled,
	TOTPInvited, TOTPReset,
}

// Known reports whether t is one of Types.
func (t Type) Known() bool { return slices.Contains(Types, t) }

// Event is one audited fact, and a link of the chain (see the package doc):
// Seq, PrevHash and Hash are set by the sink that keeps it.
//
// Its JSON form is written by MarshalJSON: the canonical form plus "hash",
// so every rendering of an event (the API, exports, what Redis holds) can be
// checked with the shell recipe of the package doc.
type Event struct {
	// Seq numbers the events of the trail 1, 2, 3... without gaps.
	Seq int64 `json:"seq"`
	// PrevHash is the Hash of the event before (Genesis for the first).
	PrevHash string `json:"prev_hash"`
	// Hash is hex(SHA-256(PrevHash + "\n" + Canonical(event))).
	Hash string    `json:"hash"`
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Type Type      `json:"type"`
	// Actor did it: a principal, a client, or "elevate" for what the service
	// does by itself (expiry, time-outs).
	Actor string `json:"actor"`
	// Principal is whose access it concerns.
	Principal     string     `json:"principal,omitempty"`
	Role          string     `json:"role,omitempty"`
	Scope         string     `json:"scope,omitempty"`
	ActivationID  string     `json:"activation_id,omitempty"`
	AssignmentID  string     `json:"assignment_id,omitempty"`
	RequestID     string     `json:"request_id,omitempty"`
	Justification string     `json:"justification,omitempty"`
	Violations    []string   `json:"violations,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Reason        string     `json:"reason,omitempty"`
}

// MarshalJSON writes the canonical form with "hash" added (in its sorted
// place), so a stored or exported event re-encodes to exactly what was
// hashed.
func (e Event) MarshalJSON() ([]byte, error) {
	return appendEvent(nil, e, true)
}

// Filter selects events; zero fields match everything.
type Filter struct {
	Principal string
	Role      string
	Type      Type
	Since     time.Time
	Until     time.Time
	// AfterSeq skips the events up to and including this seq: the cursor of
	// paging (the next page starts after the last seq of this one).
	AfterSeq int64
	// Limit caps the number of events returned (the oldest first).
	Limit int
	// AnchorOut, when not nil, receives the trail's anchor (zero when
	// nothing was ever trimmed), read in the same snapshot as the first
	// events so the two agree. It is an out parameter rather than a result
	// because the filter passes unchanged through layers that only forward
	// it (workflow.Service.Audit).
	AnchorOut *Anchor
}

// Match reports whether e passes the filter (AfterSeq included; Limit and
// AnchorOut are not about one event).
func (f Filter) Match(e Event) bool {
	return e.Seq > f.AfterSeq &&
		(f.Principal == "" || f.Principal == e.Principal) &&
		(f.Role == "" || f.Role == e.Role) &&
		(f.Type == "" || f.Type == e.Type) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until))
}

// Sink keeps events for reading back. It owns the chain: Append sets the
// event's Seq, PrevHash and Hash so that appends from every writer sharing
// the sink (every replica, for Redis) form one chain without gaps or forks.
type Sink interface {
	// Append chains e after the newest event, keeps it and returns it as
	// kept (chained and normalised: times in UTC, strings valid UTF-8).
	Append(ctx context.Context, e Event) (Event, error)
	// Events returns the events passing f, oldest (lowest seq) first.
	Events(ctx context.Context, f Filter) ([]Event, error)
}

// Trimmer is a Sink with a retention to apply (see Retention).
type Trimmer interface {
	// Trim removes the events the retention no longer keeps, moves the
	// anchor to the newest of them, and returns how many it removed.
	Trim(ctx context.Context) (int, error)
}

// trimEvery is how many Records of one Log pass between two trims of its
// sink (the first Record trims too, so a restart with a shorter retention
// applies it at once). Trimming reads the oldest events, so it is not done
// on every append; a trail may hold up to trimEvery-1 events beyond its
// retention per replica in between.
const trimEvery = 100

// Log records events to the process log and a sink.
type Log struct {
	sink    Sink
	log     logrus.FieldLogger
	now     func() time.Time
	records atomic.Int64
}

// New returns a Log writing to sink and log.
func New(sink Sink, log logrus.FieldLogger) *Log {
	return &Log{sink: sink, log: log, now: time.Now}
}

// Record gives e an id and time when it has none, appends it to the sink
// (which chains it) and logs it. It outlives the caller's context, so a
// client hanging up does not lose the record of what it caused. The event
// is logged even when the sink fails, so it is not lost from both.
func (l *Log) Record(ctx context.Context, e Event) error {
	ctx = context.WithoutCancel(ctx)
	if e.ID == "" {
		e.ID = ids.New("evt_")
	}
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	kept, err := l.sink.Append(ctx, e)
	if err == nil {
		e = kept
	}
	fields := logrus.Fields{
		"audit": true, "event_id": e.ID, "type": string(e.Type), "actor": e.Actor,
		"principal": e.Principal, "role": e.Role, "scope": e.Scope,
	}
	for k, v := range map[string]string{
		"activation_id": e.ActivationID, "assignment_id": e.AssignmentID, "request_id": e.RequestID,
		"justification": e.Justification, "reason": e.Reason,
	} {
		if v != "" {
			fields[k] = v
		}
	}
	if len(e.Violations) > 0 {
		fields["violations"] = e.Violations
	}
	if e.ExpiresAt != nil {
		fields["expires_at"] = e.ExpiresAt.Format(time.RFC3339Nano)
	}
	if err == nil {
		// A second copy of the chain's links, for comparing the log with
		// the store.
		fields["seq"], fields["hash"] = e.Seq, e.Hash
	}
	l.log.WithFields(fields).Info("audit")
	if err != nil {
		l.log.WithFields(logrus.Fields{"event_id": e.ID, "type": string(e.Type), "error": err.Error()}).Error("audit event not stored")
		return fmt.Errorf("store audit event %s: %w", e.ID, err)
	}
	if t, ok := l.sink.(Trimmer); ok && l.records.Add(1)%trimEvery == 1 {
		if n, err := t.Trim(ctx); err != nil {
			l.log.WithField("error", err.Error()).Warn("audit retention not applied")
		} else if n > 0 {
			l.log.WithField("trimmed", n).Info("audit events past their retention removed")
		}
	}
	return nil
}

// Events reads events back.
func (l *Log) Events(ctx context.Context, f Filter) ([]Event, error) {
	return l.sink.Events(ctx, f)
}
