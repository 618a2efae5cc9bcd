package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/logging"
	"github.com/elevatepdp/elevate/internal/policy"
)

// Decision answers whether a subject may take an action at a scope.
type Decision struct {
	Allow      bool   `json:"allow"`
	DecisionID string `json:"decision_id"`
	Reason     string `json:"reason"`
	// Elevation is what granted it.
	Elevation any `json:"elevation,omitempty"`
	// Error says why the decision failed closed, when it did.
	Error string `json:"error,omitempty"`
}

// AuthorizeRequest asks whether subject may take action at scope.
type AuthorizeRequest struct {
	Subject string `json:"subject"`
	Action  string `json:"action"`
	Scope   string `json:"scope"`
}

// Authorize asks data.pim.authz.decision, with the subject's live elevations
// read from the store. Anyone may ask about themselves; asking about someone
// else takes a decision client or an admin. Any failure to decide is a
// denial (the Error field says which), never an allowance.
func (s *Service) Authorize(ctx context.Context, c Caller, r AuthorizeRequest) (Decision, error) {
	started := time.Now()
	now := s.now()
	subject := c.Principal
	if r.Subject != "" {
		var err error
		if subject, err = Principal(r.Subject); err != nil {
			return Decision{}, err
		}
	}
	if r.Action == "" {
		return Decision{}, invalid("action is required, such as users.create")
	}
	if r.Subject == "" && c.Kind == identity.Client {
		return Decision{}, invalid("subject is required: a decision client asks about someone")
	}
	if subject != c.Principal && c.Kind != identity.Client {
		ok, err := s.admin(ctx, c, "decisions.read", "/", now)
		if err != nil {
			return Decision{}, err
		}
		if !ok {
			return Decision{}, fmt.Errorf("%w: only decision clients and admins may ask about %s", ErrForbidden, subject)
		}
	}
	sc := r.Scope
	if sc == "" {
		sc = "/"
	}
	d := Decision{DecisionID: policy.NewDecisionID()}
	failed := reason.StoreUnavailable
	held, err := s.Elevations(ctx, subject, now)
	if err == nil {
		var res map[string]any
		res, err = s.decide(ctx, policy.AuthzDecision, map[string]any{
			"subject": subject, "action": r.Action, "scope": sc,
			"now": now.UnixNano(), "elevations": ElevationsInput(held),
		})
		failed = policyFailure(err)
		if err == nil {
			d.Allow = res["allow"] == true
			d.Reason, _ = res["reason"].(string)
			d.Elevation = res["elevation"]
		}
	}
	outcome := "deny"
	switch {
	case err != nil:
		d.Allow, d.Reason, d.Error = false, "no decision could be made: denied", failed
		outcome = "failed"
		s.obs.FailedClosed("authorize", d.Error)
	case d.Allow:
		outcome = "allow"
	}
	s.obs.Decision("authorize", outcome, time.Since(started))
	if logging.Enabled(s.log, logrus.InfoLevel) {
		s.log.WithFields(logrus.Fields{
			"decision_id": d.DecisionID, "request_id": c.RequestID, "path": policy.AuthzDecision.String(),
			"caller": c.Principal, "subject": subject, "action": r.Action, "scope": sc,
			"allow": d.Allow, "reason": d.Reason, "error": d.Error, "duration": time.Since(started).Seconds(),
		}).Info("decision")
	}
	return d, nil
}

// policyFailure is why an evaluation that failed did, in the decision
// endpoints' one vocabulary: past its deadline, or any other failure of
// the policy (an undefined or unusable decision among them).
func policyFailure(err error) string {
	if errors.Is(err, policy.ErrTimeout) {
		return reason.PolicyTimeout
	}
	return reason.PolicyError
}
