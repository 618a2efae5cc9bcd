// Package httperr is the one error body of Elevate's HTTP surface and the
// one function that writes it, as OPA's server has types.ErrorV1 and
// writer.Error. Every handler answers an error through Abort, so the shape
// cannot drift between the management API, the Data API, forward-auth and
// the router's own 404/405/500.
package httperr

import "github.com/gin-gonic/gin"

// Body is every error answer: a stable code (also what clients branch on),
// a message for people, and the details, never null so a client can range
// over them. DecisionID is set by the decision endpoints when a decision was
// recorded, so the answer can be found in the decision log.
type Body struct {
	Code       string   `json:"code"`
	Message    string   `json:"message"`
	Errors     []string `json:"errors"`
	DecisionID string   `json:"decision_id,omitempty"`
}

// New is the body for code and message with errs as its details.
func New(code, message string, errs ...string) Body {
	if errs == nil {
		errs = []string{}
	}
	return Body{Code: code, Message: message, Errors: errs}
}

// Abort answers status with b and stops the handler chain.
func Abort(c *gin.Context, status int, b Body) {
	if b.Errors == nil {
		b.Errors = []string{}
	}
	c.AbortWithStatusJSON(status, b)
}
