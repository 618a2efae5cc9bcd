package policy

import "github.com/google/uuid"

// NewDecisionID is the ID of one decision in OPA's form, which the
// OPA-Envoy plugin and OPA's decision logs use: a random (version 4) UUID.
// Every decision endpoint takes its IDs from here.
func NewDecisionID() string { return uuid.NewString() }
