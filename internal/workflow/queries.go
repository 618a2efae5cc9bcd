package workflow

import (
	"context"
	"fmt"

	"github.com/elevatepdp/elevate/internal/store"
)

// Activations lists activations: everyone's for admins, the caller's own
// for other users, none for decision clients.
func (s *Service) Activations(ctx context.Context, c Caller, principal string, status store.Status) ([]store.Activation, error) {
	if err := s.user(c, "list activations"); err != nil {
		return nil, err
	}
	if !knownStatus(status) {
		return nil, invalid("status %q is not one of %v", status, statuses)
	}
	if principal != "" {
		var err error
		if principal, err = Principal(principal); err != nil {
			return nil, err
		}
	}
	if principal != c.Principal {
		ok, err := s.admin(ctx, c, "activations.read", "/", s.now())
		if err != nil {
			return nil, err
		}
		switch {
		case !ok && principal != "":
			return nil, fmt.Errorf("%w: %s may only list their own activations", ErrForbidden, c.Principal)
		case !ok:
			principal = c.Principal
		}
	}
	acts, err := s.store.Activations(ctx, store.ActivationFilter{Principal: principal, Status: status})
	return acts, storeErrOrNil(err)
}

func storeErrOrNil(err error) error {
	if err == nil {
		return nil
	}
	return storeErr(err)
}

// Activation returns one activation to its requester, to an admin, and to
// an approver who may decide it.
func (s *Service) Activation(ctx context.Context, c Caller, id string) (store.Activation, error) {
	if err := s.user(c, "read activations"); err != nil {
		return store.Activation{}, err
	}
	act, err := s.store.Activation(ctx, id)
	if err != nil {
		return store.Activation{}, storeErr(err)
	}
	if act.Principal == c.Principal {
		return act, nil
	}
	now := s.now()
	if ok, err := s.admin(ctx, c, "activations.read", act.Scope, now); err != nil || ok {
		return act, err
	}
	if ok, err := s.mayApprove(ctx, c, act); err != nil || ok {
		return act, err
	}
	// Not saying whether it exists is the point.
	return store.Activation{}, notFound(id)
}

// PendingApprovals lists the pending requests the caller may approve.
func (s *Service) PendingApprovals(ctx context.Context, c Caller) ([]store.Activation, error) {
	if err := s.user(c, "approve"); err != nil {
		return nil, err
	}
	pending, err := s.store.Activations(ctx, store.ActivationFilter{Status: store.Pending})
	if err != nil {
		return nil, storeErr(err)
	}
	out := []store.Activation{}
	for _, act := range pending {
		ok, err := s.mayApprove(ctx, c, act)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, act)
		}
	}
	return out, nil
}

var statuses = []store.Status{
	store.Pending, store.Scheduled, store.Live, store.Denied, store.Cancelled,
	store.TimedOut, store.Deactivated, store.Revoked, store.Expired,
}

func knownStatus(s store.Status) bool {
	if s == "" {
		return true
	}
	for _, known := range statuses {
		if s == known {
			return true
		}
	}
	return false
}
