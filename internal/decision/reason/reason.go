// Package reason is the one vocabulary of why a decision failed closed, for
// every decision endpoint (/v1/authorize, the Data API, forward-auth,
// ext_authz): stable strings that clients read in answers and that are the
// reason label of the metrics and the code of a decision-log error. It
// imports nothing, so the workflow and the decision packages share it.
package reason

const (
	// PolicyError: the policy failed, or answered something unusable.
	PolicyError = "policy_error"
	// PolicyTimeout: the evaluation ran past policy.eval_timeout.
	PolicyTimeout = "policy_timeout"
	// StoreUnavailable: the subject's holdings could not be read.
	StoreUnavailable = "store_unavailable"
	// BadInput: the request does not parse, or not in only one way.
	BadInput = "bad_input"
	// UnauthenticatedClient: decision clients must authenticate and the
	// caller (the gateway, not the end user) presented no valid client
	// token.
	UnauthenticatedClient = "unauthenticated_client"
	// Internal: a bug (a panic) on the decision path.
	Internal = "internal_error"
)
