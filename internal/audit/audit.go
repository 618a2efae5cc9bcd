// Package audit records every change of Elevate's state as one structured
// event: written through the process log (JSON, for collectors) and kept in
// a Sink that the API reads back (a Redis Stream shared by every replica, or
// a list in this process).
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
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
)

// Event is one audited fact.
type Event struct {
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

// Filter selects events; zero fields match everything.
type Filter struct {
	Principal string
	Role      string
	Type      Type
	Since     time.Time
	Until     time.Time
	// Limit caps the number of events returned (the oldest first).
	Limit int
}

// Match reports whether e passes the filter.
func (f Filter) Match(e Event) bool {
	return (f.Principal == "" || f.Principal == e.Principal) &&
		(f.Role == "" || f.Role == e.Role) &&
		(f.Type == "" || f.Type == e.Type) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until))
}

// Sink keeps events for reading back.
type Sink interface {
	Append(ctx context.Context, e Event) error
	Events(ctx context.Context, f Filter) ([]Event, error)
}

// Log records events to the process log and a sink.
type Log struct {
	sink Sink
	log  logrus.FieldLogger
	now  func() time.Time
}

// New returns a Log writing to sink and log.
func New(sink Sink, log logrus.FieldLogger) *Log {
	return &Log{sink: sink, log: log, now: time.Now}
}

// Record gives e an id and time when it has none, logs it and appends it to
// the sink. It outlives the caller's context, so a client hanging up does
// not lose the record of what it caused.
func (l *Log) Record(ctx context.Context, e Event) error {
	if e.ID == "" {
		e.ID = newID()
	}
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
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
	l.log.WithFields(fields).Info("audit")
	if err := l.sink.Append(context.WithoutCancel(ctx), e); err != nil {
		l.log.WithFields(logrus.Fields{"event_id": e.ID, "type": string(e.Type), "error": err.Error()}).Error("audit event not stored")
		return fmt.Errorf("store audit event %s: %w", e.ID, err)
	}
	return nil
}

// Events reads events back.
func (l *Log) Events(ctx context.Context, f Filter) ([]Event, error) {
	return l.sink.Events(ctx, f)
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}
