package decision

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/elevatepdp/elevate/internal/decision/envoy"
	"github.com/elevatepdp/elevate/internal/httperr"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/workflow"
)

// Authenticator turns an Authorization header into a caller.
type Authenticator interface {
	Authenticate(ctx context.Context, authorization string) (identity.Identity, error)
}

// DataAPI is OPA's REST Data API (`/v1/data/{path}`), answering as OPA does
// for the same policy, with the subject's elevations and the time added to
// an object input.
type DataAPI struct {
	eval *Evaluator
	// auth, when set, requires a decision client's token.
	auth Authenticator
	// subjectField names the input field holding the subject.
	subjectField string
	maxBody      int64
}

// NewDataAPI returns the Data API. With auth set, only decision clients may
// call it; subjectField is the input field naming the subject ("subject").
func NewDataAPI(eval *Evaluator, auth Authenticator, subjectField string, maxBody int64) *DataAPI {
	return &DataAPI{eval: eval, auth: auth, subjectField: subjectField, maxBody: maxBody}
}

// Register adds the routes.
func (d *DataAPI) Register(r gin.IRouter) {
	for _, path := range []string{"/v1/data", "/v1/data/*path"} {
		r.GET(path, d.serve)
		r.POST(path, d.serve)
	}
}

// dataResponse is OPA's DataResponseV1: result is absent when undefined.
type dataResponse struct {
	DecisionID string `json:"decision_id"`
	Result     *any   `json:"result,omitempty"`
	Warning    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"warning,omitempty"`
}

func (d *DataAPI) serve(c *gin.Context) {
	if d.auth != nil {
		// The caller is the client itself: its token is in Authorization.
		values := c.Request.Header.Values("Authorization")
		cred := envoy.ClientCredential{Many: len(values) > 1}
		if len(values) > 0 {
			cred.Authorization = values[0]
		}
		if err := envoy.AuthenticateClient(c.Request.Context(), d.auth, cred); err != nil {
			c.Header("WWW-Authenticate", `Bearer realm="elevate"`)
			httperr.Abort(c, http.StatusUnauthorized, httperr.New("unauthorized", "a decision client's bearer token is required"))
			return
		}
	}
	var input any
	missingInput := false
	if c.Request.Method == http.MethodPost {
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, d.maxBody))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httperr.Abort(c, http.StatusRequestEntityTooLarge, httperr.New("invalid_parameter", "request body too large"))
			return
		}
		if err != nil {
			httperr.Abort(c, http.StatusBadRequest, httperr.New("invalid_parameter", err.Error()))
			return
		}
		var req struct {
			Input *any `json:"input"`
		}
		if len(body) > 0 {
			if err := util.UnmarshalJSON(body, &req); err != nil {
				httperr.Abort(c, http.StatusBadRequest, httperr.New("invalid_parameter", "body contains malformed input document: "+err.Error()))
				return
			}
		}
		if req.Input != nil {
			input = *req.Input
		} else {
			missingInput = true
		}
	}
	res := d.eval.Evaluate(c.Request.Context(), Request{
		Query: policy.PathQuery(c.Param("path")), Input: input, Subject: d.subject(input),
		Log: map[string]any{"endpoint": "data", "path": c.Param("path"), "request_id": c.GetString("X-Request-Id")},
	})
	if res.Failed != "" {
		httperr.Abort(c, http.StatusForbidden, httperr.Body{
			Code: "decision_failed", Message: "no decision could be made, so the answer is no",
			Errors: []string{res.Failed}, DecisionID: res.ID,
		})
		return
	}
	out := dataResponse{DecisionID: res.ID}
	if res.Defined {
		out.Result = &res.Value
	}
	if missingInput {
		out.Warning = &struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}{"api_usage_warning", "'input' key missing from the request"}
	}
	// encoding/json, as OPA's server writes it, so results compare byte for
	// byte.
	c.Status(http.StatusOK)
	c.Header("Content-Type", "application/json")
	_ = json.NewEncoder(c.Writer).Encode(out)
}

// subject is the input's subject field when it names a principal.
func (d *DataAPI) subject(input any) string {
	obj, ok := input.(map[string]any)
	if !ok {
		return ""
	}
	s, _ := obj[d.subjectField].(string)
	p, err := workflow.Principal(s)
	if err != nil {
		return ""
	}
	return p
}
