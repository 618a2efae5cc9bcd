// Package workflow runs Elevate's core loop: assignments make principals
// eligible, principals activate roles with justification and MFA, approvers
// decide, elevations end by themselves, and every step is audited. Each
// step gathers the facts, asks the policy engine, changes the store
// atomically, then records the audit event.
package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/store"
)

var (
	// ErrForbidden: the caller may not do this (not a policy violation of
	// the request itself, but of who asks).
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: a policy or the store could not answer; nothing was
	// changed and nothing was allowed.
	ErrUnavailable = errors.New("unavailable")
)

// DeniedError is a policy's no, with every violation it gave.
type DeniedError struct {
	What       string
	Violations []string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s denied: %s", e.What, strings.Join(e.Violations, "; "))
}

// InvalidError is a request whose values cannot be used.
type InvalidError struct {
	Errors []string
}

func (e *InvalidError) Error() string { return "invalid request: " + strings.Join(e.Errors, "; ") }

func invalid(format string, args ...any) error {
	return &InvalidError{Errors: []string{fmt.Sprintf(format, args...)}}
}

// Caller is who makes a call, and the id of the request it came in.
type Caller struct {
	identity.Identity
	RequestID string
}

// Observer is told of what the service does, for metrics.
type Observer interface {
	Event(typ, role string)
	Decision(endpoint, outcome string, took time.Duration)
	FailedClosed(endpoint, reason string)
}

// Options configure a Service.
type Options struct {
	Engine *policy.Engine
	Store  store.Store
	Audit  *audit.Log
	TOTP   *identity.TOTP
	Logger logrus.FieldLogger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Observer, when set, is told of events and decisions.
	Observer Observer
	// Limits bound what callers send; a zero field is its default
	// (DefaultLimits).
	Limits Limits
}

// Service is the workflow. It holds no state of its own: replicas share
// everything through the store.
type Service struct {
	engine *policy.Engine
	store  store.Store
	audit  *audit.Log
	totp   *identity.TOTP
	log    logrus.FieldLogger
	now    func() time.Time
	obs    Observer
	limits Limits
	roles  atomic.Pointer[rolesAt]
}

// New returns the workflow service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Observer == nil {
		o.Observer = unobserved{}
	}
	return &Service{engine: o.Engine, store: o.Store, audit: o.Audit, totp: o.TOTP, log: o.Logger, now: o.Now, obs: o.Observer, limits: o.Limits.orDefault()}
}

type unobserved struct{}

func (unobserved) Event(string, string)                   {}
func (unobserved) Decision(string, string, time.Duration) {}
func (unobserved) FailedClosed(string, string)            {}

// Actor of what the service does by itself.
const system = "elevate"

// record writes an audit event of something that changed no state (a
// request, a denial). Losing it is logged loudly by the audit log.
func (s *Service) record(ctx context.Context, e audit.Event) {
	s.obs.Event(string(e.Type), e.Role)
	_ = s.audit.Record(ctx, e)
}

// commit writes the audit event of a state change that has been made. When
// the event cannot be kept, undo (when not nil) puts the state back and the
// caller gets ErrUnavailable: no API call succeeds, and no elevation stays,
// without its audit event.
func (s *Service) commit(ctx context.Context, e audit.Event, undo func(context.Context) error) error {
	err := s.audit.Record(ctx, e)
	if err == nil {
		s.obs.Event(string(e.Type), e.Role)
		return nil
	}
	if undo != nil {
		if uerr := undo(context.WithoutCancel(ctx)); uerr != nil {
			s.log.WithFields(logrus.Fields{"type": string(e.Type), "activation_id": e.ActivationID,
				"assignment_id": e.AssignmentID, "error": uerr.Error()}).Error("a change whose audit event was lost could not be undone")
		}
	}
	return fmt.Errorf("%w: the audit trail could not be written, so nothing was changed: %w", ErrUnavailable, err)
}

// restore undoes a change of an activation: before, stored again over
// after.
func (s *Service) restore(before, after store.Activation) func(context.Context) error {
	return func(ctx context.Context) error {
		before.Version = after.Version
		_, err := s.store.UpdateActivation(ctx, before)
		return err
	}
}

// Role is a role of data.pim.roles, settings merged over their defaults.
type Role struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Permissions []string     `json:"permissions"`
	Settings    RoleSettings `json:"settings"`
}

// RoleSettings is the settings schema of policies/README.md.
type RoleSettings struct {
	MinDuration               string   `json:"min_duration"`
	DefaultDuration           string   `json:"default_duration"`
	MaxDuration               string   `json:"max_duration"`
	RequireMFA                bool     `json:"require_mfa"`
	MFAMaxAge                 string   `json:"mfa_max_age"`
	RequireJustification      bool     `json:"require_justification"`
	JustificationMinLength    int      `json:"justification_min_length"`
	JustificationPattern      string   `json:"justification_pattern"`
	RequireTicket             bool     `json:"require_ticket"`
	TicketPattern             string   `json:"ticket_pattern"`
	RequireApproval           bool     `json:"require_approval"`
	Approvers                 []string `json:"approvers"`
	ApprovalsRequired         int      `json:"approvals_required"`
	AllowPermanentEligibility bool     `json:"allow_permanent_eligibility"`
	MaxEligibility            string   `json:"max_eligibility"`
	PendingTimeout            string   `json:"pending_timeout"`
}

var effectiveRoles = policy.MustQuery("data.pim.lib.effective_roles")

// rolesAt are the roles as the policy defined them at an engine generation.
type rolesAt struct {
	gen   uint64
	roles map[string]Role
}

// Roles returns the roles the policy defines, by id. The Role values are
// shared and must not be modified.
func (s *Service) Roles(ctx context.Context) (map[string]Role, error) {
	roles, err := s.roleMap(ctx)
	if err != nil {
		return nil, err
	}
	return maps.Clone(roles), nil
}

// roleMap is the roles as the policy defines them now, not to be modified.
// They depend on the policy and its data only, so they are evaluated once
// per policy generation rather than on every activation.
func (s *Service) roleMap(ctx context.Context) (map[string]Role, error) {
	// The generation is read before evaluating: roles evaluated across a
	// change carry the older generation, which is never current again.
	gen := s.engine.Generation()
	if m := s.roles.Load(); m != nil && m.gen == gen {
		return m.roles, nil
	}
	roles, err := s.evalRoles(ctx)
	if err != nil {
		return nil, err
	}
	s.roles.Store(&rolesAt{gen: gen, roles: roles})
	return roles, nil
}

func (s *Service) evalRoles(ctx context.Context) (map[string]Role, error) {
	v, err := s.engine.Eval(ctx, effectiveRoles, nil)
	if errors.Is(err, policy.ErrUndefined) {
		return map[string]Role{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read roles: %w", ErrUnavailable, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: read roles: %w", ErrUnavailable, err)
	}
	roles := map[string]Role{}
	if err := json.Unmarshal(b, &roles); err != nil {
		return nil, fmt.Errorf("%w: roles do not follow the settings schema: %w", ErrUnavailable, err)
	}
	for id, r := range roles {
		r.ID = id
		roles[id] = r
	}
	return roles, nil
}

func (s *Service) role(ctx context.Context, id string) (Role, error) {
	roles, err := s.roleMap(ctx)
	if err != nil {
		return Role{}, err
	}
	r, ok := roles[id]
	if !ok {
		return Role{}, fmt.Errorf("role %q: %w", id, store.ErrNotFound)
	}
	return r, nil
}

// decide evaluates a decision that must be an object. Any failure is
// ErrUnavailable: the caller changes nothing and allows nothing.
func (s *Service) decide(ctx context.Context, q policy.Query, input map[string]any) (map[string]any, error) {
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		return nil, fmt.Errorf("%w: build input of %s: %w", ErrUnavailable, q, err)
	}
	res, err := s.engine.Eval(ctx, q, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	d, ok := res.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s is %T, not an object", ErrUnavailable, q, res)
	}
	return d, nil
}

// allowed evaluates a decision whose answer is true or anything else.
func (s *Service) allowed(ctx context.Context, q policy.Query, input map[string]any) (bool, error) {
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		return false, fmt.Errorf("%w: build input of %s: %w", ErrUnavailable, q, err)
	}
	res, err := s.engine.Eval(ctx, q, v)
	if errors.Is(err, policy.ErrUndefined) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return res == true, nil
}

func violations(d map[string]any) []string {
	raw, _ := d["violations"].([]any)
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// storeErr maps a store failure other than the ones callers branch on to
// ErrUnavailable.
func storeErr(err error) error {
	for _, known := range []error{store.ErrNotFound, store.ErrConflict, store.ErrStale, store.ErrInvalid} {
		if errors.Is(err, known) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
