// Package ids makes Elevate's random identifiers, each form in one place.
//
// Three forms, each for its own reason:
//   - record ids (audit events, activations, assignments): a prefix naming
//     the kind, then 96 random bits in hex, e.g. "act_" and 24 hex digits;
//   - request ids (X-Request-Id) when the caller sent none: 128 random bits
//     in hex, 32 digits;
//   - decision ids and the OPA manager's instance id: a random (version 4)
//     UUID, the form OPA and the OPA-Envoy plugin use.
package ids

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/google/uuid"
)

// New is a record id: prefix, then 96 random bits in hex.
func New(prefix string) string { return prefix + randomHex(12) }

// Request is a request id: 128 random bits in hex.
func Request() string { return randomHex(16) }

// UUID is a random (version 4) UUID in its usual 36-character form.
func UUID() string { return uuid.NewString() }

func randomHex(n int) string {
	b := make([]byte, n)
	// crypto/rand.Read never fails (Go 1.24+): it crashes the program
	// rather than return predictable bytes.
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
