// Package api is Elevate's HTTP API for people and services: roles,
// assignments, activations and their approval, TOTP enrolment, decisions
// and the audit trail. Every call is authenticated with a bearer token;
// every error is {"code", "message", "errors"} with a stable code.
package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/httperr"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/store"
	"github.com/elevatepdp/elevate/internal/workflow"
)

// Authenticator turns an Authorization header into a caller.
type Authenticator interface {
	Authenticate(ctx context.Context, authorization string) (identity.Identity, error)
}

// API serves the /v1 endpoints of the workflow.
type API struct {
	wf      *workflow.Service
	auth    Authenticator
	log     logrus.FieldLogger
	maxBody int64
}

// New returns the API. Request bodies above maxBody bytes are refused (413).
func New(wf *workflow.Service, auth Authenticator, log logrus.FieldLogger, maxBody int64) *API {
	return &API{wf: wf, auth: auth, log: log, maxBody: maxBody}
}

// Register adds the routes to r.
func (a *API) Register(r gin.IRouter) {
	v1 := r.Group("/v1", a.limitBody, a.authenticate)
	v1.GET("/roles", a.roles)
	v1.GET("/me/roles", a.myRoles)
	v1.POST("/assignments", a.createAssignment)
	v1.GET("/assignments", a.listAssignments)
	v1.DELETE("/assignments/:id", a.deleteAssignment)
	v1.POST("/activations", a.activate)
	v1.GET("/activations", a.listActivations)
	v1.GET("/activations/:id", a.getActivation)
	v1.POST("/activations/:id/:action", a.act)
	v1.GET("/approvals", a.approvals)
	v1.POST("/mfa/totp/enroll", a.enrollTOTP)
	v1.POST("/mfa/totp/invites", a.inviteTOTP)
	v1.DELETE("/mfa/totp/:principal", a.resetTOTP)
	v1.POST("/authorize", a.authorize)
	v1.GET("/audit", a.audit)
}

// fail answers err with its status and code. This is the one place domain
// errors become HTTP.
func (a *API) fail(c *gin.Context, err error) {
	var denied *workflow.DeniedError
	var bad *workflow.InvalidError
	switch {
	// First: its causes are kept (%w) and may be of the kinds below, but
	// the answer is that nothing could be decided.
	case errors.Is(err, workflow.ErrUnavailable):
		a.logError(c, err)
		httperr.Abort(c, http.StatusServiceUnavailable, httperr.New("unavailable", "a policy or the store could not answer; nothing was changed"))
	case errors.As(err, &bad):
		httperr.Abort(c, http.StatusUnprocessableEntity, httperr.New("invalid_value", "the request has invalid values", bad.Errors...))
	case errors.As(err, &denied):
		httperr.Abort(c, http.StatusForbidden, httperr.New("policy_denied", fmt.Sprintf("%s denied by policy", denied.What), denied.Violations...))
	case errors.Is(err, identity.ErrUnauthenticated):
		c.Header("WWW-Authenticate", `Bearer realm="elevate"`)
		httperr.Abort(c, http.StatusUnauthorized, httperr.New("unauthenticated", err.Error()))
	case errors.Is(err, workflow.ErrForbidden):
		httperr.Abort(c, http.StatusForbidden, httperr.New("forbidden", err.Error()))
	case errors.Is(err, store.ErrNotFound):
		httperr.Abort(c, http.StatusNotFound, httperr.New("not_found", err.Error()))
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrStale):
		httperr.Abort(c, http.StatusConflict, httperr.New("conflict", err.Error()))
	case errors.Is(err, store.ErrInvalid):
		httperr.Abort(c, http.StatusUnprocessableEntity, httperr.New("invalid_value", err.Error()))
	default:
		a.logError(c, err)
		httperr.Abort(c, http.StatusInternalServerError, httperr.New("internal", "internal error"))
	}
}

func (a *API) logError(c *gin.Context, err error) {
	a.log.WithFields(logrus.Fields{
		"request_id": c.GetString("X-Request-Id"), "path": c.FullPath(), "error": err.Error(),
	}).Error("request failed")
}

func (a *API) limitBody(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, a.maxBody)
	c.Next()
}

const callerKey = "elevate.caller"

func (a *API) authenticate(c *gin.Context) {
	id, err := a.auth.Authenticate(c.Request.Context(), c.GetHeader("Authorization"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Set(callerKey, workflow.Caller{Identity: id, RequestID: c.GetString("X-Request-Id")})
	c.Next()
}

func caller(c *gin.Context) workflow.Caller {
	return c.MustGet(callerKey).(workflow.Caller)
}

// bind decodes a JSON body strictly: malformed JSON, a member name given
// twice (at any depth) and unknown members are 400, values of the wrong
// type 422, a body over the limit 413. Names match exactly: "SUBJECT" is
// not "subject". Last-wins duplicates and case-folded names would let a
// filter in front of Elevate read another value than Elevate does.
func (a *API) bind(c *gin.Context, v any) bool {
	raw, err := io.ReadAll(c.Request.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		httperr.Abort(c, http.StatusRequestEntityTooLarge, httperr.New("too_large", fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit)))
		return false
	case err != nil:
		httperr.Abort(c, http.StatusBadRequest, httperr.New("malformed_json", "the body could not be read: "+err.Error()))
		return false
	case len(bytes.TrimSpace(raw)) == 0:
		httperr.Abort(c, http.StatusBadRequest, httperr.New("malformed_json", "the body is empty; a JSON object is expected"))
		return false
	}
	// The whole body is checked as JSON first, so a syntax error is one
	// even after a value of the wrong type. json v2 refuses duplicate
	// names and invalid UTF-8 and matches names case-sensitively by
	// default; unknown members it must be told.
	err = syntax(raw)
	if err == nil {
		err = jsonv2.Unmarshal(raw, v, jsonv2.RejectUnknownMembers(true))
	}
	if err == nil {
		return true
	}
	var sem *jsonv2.SemanticError
	var syn *jsontext.SyntacticError
	var tm *time.ParseError
	switch {
	case errors.Is(err, errNotObject):
		httperr.Abort(c, http.StatusUnprocessableEntity, httperr.New("invalid_value", "the request has invalid values", "the body: expected a JSON object, got null"))
	case errors.Is(err, jsontext.ErrDuplicateName):
		httperr.Abort(c, http.StatusBadRequest, httperr.New("duplicate_key", "the body names a member more than once", pointer(err)))
	case errors.Is(err, jsonv2.ErrUnknownName):
		httperr.Abort(c, http.StatusBadRequest, httperr.New("unknown_field", fmt.Sprintf("unknown field %q", pointer(err))))
	case errors.As(err, &syn):
		httperr.Abort(c, http.StatusBadRequest, httperr.New("malformed_json", "the body is not valid JSON: "+syn.Error()))
	case errors.As(err, &tm):
		httperr.Abort(c, http.StatusUnprocessableEntity, httperr.New("invalid_value", "the request has invalid values", fmt.Sprintf("%s: %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", pointer(err), tm.Value)))
	case errors.As(err, &sem):
		httperr.Abort(c, http.StatusUnprocessableEntity, httperr.New("invalid_value", "the request has invalid values", fmt.Sprintf("%s: expected %s, got %s", pointer(err), typeName(sem.GoType), kindName(sem.JSONKind))))
	default:
		httperr.Abort(c, http.StatusBadRequest, httperr.New("malformed_json", "the body is not valid JSON: "+err.Error()))
	}
	return false
}

var errNotObject = errors.New("the body is null, not a JSON object")

// syntax checks that raw is one JSON value, not null, with unique names in
// each object.
func syntax(raw []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	val, err := dec.ReadValue()
	if err != nil {
		return err
	}
	if val.Kind() == 'n' {
		// null would decode into nothing, as if the body were {}; other
		// values that are no object are refused by Unmarshal.
		return errNotObject
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return errors.Join(errors.New("more than one JSON value"), err)
	}
	return nil
}

// pointer is where in the body a decoding error is, as a dotted path
// ("ticket.number"), "" at the top.
func pointer(err error) string {
	var p jsontext.Pointer
	var sem *jsonv2.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &syn):
		p = syn.JSONPointer
	case errors.As(err, &sem):
		p = sem.JSONPointer
	}
	if p == "" {
		return "body"
	}
	return strings.Join(slices.Collect(p.Tokens()), ".")
}

// typeName is what JSON a Go type is read from.
func typeName(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == nil:
		return "a value"
	case t == reflect.TypeFor[time.Time]():
		return "an RFC 3339 time"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	}
	return "number"
}

// kindName is the name of a JSON kind.
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "a value"
}

func (a *API) roles(c *gin.Context) {
	roles, err := a.wf.Roles(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	out := make([]workflow.Role, 0, len(roles))
	for _, r := range roles {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	c.JSON(http.StatusOK, gin.H{"roles": out})
}

func (a *API) myRoles(c *gin.Context) {
	mine, err := a.wf.MyRoles(c.Request.Context(), caller(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, mine)
}

func (a *API) createAssignment(c *gin.Context) {
	var r workflow.AssignmentRequest
	if !a.bind(c, &r) {
		return
	}
	asg, err := a.wf.CreateAssignment(c.Request.Context(), caller(c), r)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, asg)
}

func (a *API) listAssignments(c *gin.Context) {
	list, err := a.wf.ListAssignments(c.Request.Context(), caller(c),
		c.Query("principal"), c.Query("role"), workflow.AssignmentState(c.Query("state")))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"assignments": list})
}

func (a *API) deleteAssignment(c *gin.Context) {
	asg, revoked, err := a.wf.DeleteAssignment(c.Request.Context(), caller(c), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"assignment": asg, "revoked": revoked})
}

func (a *API) activate(c *gin.Context) {
	var r workflow.ActivationRequest
	if !a.bind(c, &r) {
		return
	}
	act, err := a.wf.Activate(c.Request.Context(), caller(c), r)
	if err != nil {
		a.fail(c, err)
		return
	}
	status := http.StatusAccepted
	if act.Status == store.Live {
		status = http.StatusCreated
	}
	c.JSON(status, act)
}

func (a *API) listActivations(c *gin.Context) {
	list, err := a.wf.Activations(c.Request.Context(), caller(c), c.Query("principal"), store.Status(c.Query("status")))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"activations": list})
}

func (a *API) getActivation(c *gin.Context) {
	act, err := a.wf.Activation(c.Request.Context(), caller(c), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, act)
}

// decisionBody is the body of approve, deny, cancel and deactivate.
type decisionBody struct {
	Justification string `json:"justification"`
}

func (a *API) act(c *gin.Context) {
	ctx, who, id := c.Request.Context(), caller(c), c.Param("id")
	var act store.Activation
	var err error
	if c.Param("action") == "extend" {
		var r workflow.ExtendRequest
		if !a.bind(c, &r) {
			return
		}
		act, err = a.wf.Extend(ctx, who, id, r)
	} else {
		var r decisionBody
		if c.Request.ContentLength != 0 && !a.bind(c, &r) {
			return
		}
		switch c.Param("action") {
		case "approve":
			act, err = a.wf.Approve(ctx, who, id, r.Justification)
		case "deny":
			act, err = a.wf.Deny(ctx, who, id, r.Justification)
		case "cancel":
			act, err = a.wf.Cancel(ctx, who, id, r.Justification)
		case "deactivate":
			act, err = a.wf.Deactivate(ctx, who, id, r.Justification)
		default:
			httperr.Abort(c, http.StatusNotFound, httperr.New("not_found", fmt.Sprintf("no action %q: use approve, deny, cancel, deactivate or extend", c.Param("action"))))
			return
		}
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, act)
}

func (a *API) approvals(c *gin.Context) {
	list, err := a.wf.PendingApprovals(c.Request.Context(), caller(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"activations": list})
}

func (a *API) enrollTOTP(c *gin.Context) {
	var r workflow.EnrollRequest
	if c.Request.ContentLength != 0 && !a.bind(c, &r) {
		return
	}
	en, err := a.wf.EnrollTOTP(c.Request.Context(), caller(c), r)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, gin.H{"secret": en.Secret, "url": en.URL})
}

// inviteBody is the body of POST /v1/mfa/totp/invites.
type inviteBody struct {
	Principal string `json:"principal"`
}

// inviteTOTP issues an enrolment invite; its code is in this answer only.
func (a *API) inviteTOTP(c *gin.Context) {
	var r inviteBody
	if !a.bind(c, &r) {
		return
	}
	inv, err := a.wf.InviteTOTP(c.Request.Context(), caller(c), r.Principal)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, inv)
}

func (a *API) resetTOTP(c *gin.Context) {
	p, err := a.wf.ResetTOTP(c.Request.Context(), caller(c), c.Param("principal"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"principal": p, "reset": true})
}

func (a *API) authorize(c *gin.Context) {
	var r workflow.AuthorizeRequest
	if !a.bind(c, &r) {
		return
	}
	d, err := a.wf.Authorize(c.Request.Context(), caller(c), r)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

// The bounds of the audit query's numbers. A page holds at most maxPage
// events (a bigger limit is 422, not quietly capped, so a client never
// takes a short page for the whole); a seq is at most 2^53-1, the largest
// integer every JSON reader holds exactly, and far beyond any trail.
const (
	maxPage = 1000
	maxSeq  = 1<<53 - 1
)

// audit answers GET /v1/audit: the events passing the filters, oldest
// first, a page of at most limit (1 to 1000, default 1000) after after_seq
// (0 to 2^53-1); since and until are RFC 3339 times. format is
// json (default; {"events", "next_after_seq" when more remain, "anchor"
// when the trail was trimmed}), jsonl (one event per line, after an anchor
// line when the page starts at the oldest retained event) or csv. Every
// format also says X-Next-After-Seq when more remain, so jsonl and csv can
// be paged as well.
func (a *API) audit(c *gin.Context) {
	f := audit.Filter{Principal: c.Query("principal"), Role: c.Query("role"), Type: audit.Type(c.Query("type")), Limit: maxPage}
	var errs []string
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := c.Query(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not an RFC 3339 time", name, v))
			} else if err := workflow.TimeField(name, t); err != nil {
				var bad *workflow.InvalidError
				errors.As(err, &bad)
				errs = append(errs, bad.Errors...)
			}
			*dst = t
		}
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			errs = append(errs, fmt.Sprintf("limit: %q is not a number from 1 to %d", v, maxPage))
		}
		f.Limit = n
	}
	if v := c.Query("after_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > maxSeq {
			errs = append(errs, fmt.Sprintf("after_seq: %q is not a seq (0 to %d)", v, int64(maxSeq)))
		}
		f.AfterSeq = n
	}
	format := audit.Format(c.DefaultQuery("format", string(audit.JSON)))
	if !format.Known() {
		errs = append(errs, fmt.Sprintf("format: %q is not one of json, jsonl, csv", format))
	}
	if errs != nil {
		sort.Strings(errs)
		httperr.Abort(c, http.StatusUnprocessableEntity, httperr.New("invalid_value", "the request has invalid values", errs...))
		return
	}
	// One event more than the page tells whether another page follows.
	limit := f.Limit
	f.Limit++
	var anchor audit.Anchor
	f.AnchorOut = &anchor
	events, err := a.wf.Audit(c.Request.Context(), caller(c), f)
	if err != nil {
		a.fail(c, err)
		return
	}
	var next int64
	if len(events) > limit {
		events = events[:limit]
		next = events[limit-1].Seq
		c.Header("X-Next-After-Seq", strconv.FormatInt(next, 10))
	}
	if format == audit.JSON {
		body := gin.H{"events": events}
		if next > 0 {
			body["next_after_seq"] = next
		}
		if !anchor.IsZero() {
			body["anchor"] = anchor
		}
		c.JSON(http.StatusOK, body)
		return
	}
	// The anchor belongs to a page that starts at the oldest retained
	// event; on a later page a reader gluing pages together would find it
	// in the middle.
	var withAnchor *audit.Anchor
	if f.AfterSeq <= anchor.Seq {
		withAnchor = &anchor
	}
	c.Header("Content-Type", format.ContentType())
	c.Status(http.StatusOK)
	x, err := audit.NewExportWriter(c.Writer, format, withAnchor)
	if err == nil {
		err = x.Write(events...)
	}
	if err == nil {
		err = x.Close()
	}
	if err != nil {
		// The status is sent; all that is left is to say so in the log.
		a.logError(c, fmt.Errorf("write the audit %s export: %w", format, err))
	}
}
