package policy

import "github.com/elevatepdp/elevate/internal/ids"

// NewDecisionID is the ID of one decision in OPA's form, which the
// OPA-Envoy plugin and OPA's decision logs use: a random (version 4) UUID.
// Every decision endpoint takes its IDs from here.
func NewDecisionID() string { return ids.UUID() }
