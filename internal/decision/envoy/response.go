package envoy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

// Headers Elevate sets on every answer.
const (
	// HeaderDecisionID carries the decision ID: on the request sent
	// upstream when allowed, on the response to the client when denied.
	// It is added to every answer unless the policy sets it itself or the
	// operator turns it off (Options.NoDecisionIDHeader).
	HeaderDecisionID = "x-elevate-decision-id"
	// HeaderDecisionFailed carries the reason a decision failed closed.
	HeaderDecisionFailed = "x-elevate-decision-failed"
)

// Header is one HTTP header.
type Header struct{ Key, Value string }

// Response is a decision as the gateway must apply it, in either mode.
type Response struct {
	DecisionID string
	Allowed    bool
	// Failed is why no decision could be made, "" when one was. A failed
	// decision is denied.
	Failed string
	// Status is the HTTP status sent to the client when denied: the
	// decision's http_status, else 403.
	Status int
	// Headers go to the upstream request when allowed, to the client's
	// response when denied (the decision's "headers").
	Headers []Header
	// ResponseHeadersToAdd go to the client's response when allowed.
	ResponseHeadersToAdd []Header
	// HeadersToRemove are removed from the upstream request when allowed
	// (the decision's "request_headers_to_remove").
	HeadersToRemove []string
	// QueryParametersToSet and QueryParametersToRemove change the upstream
	// request's query when allowed; gRPC mode only.
	QueryParametersToSet    []Header
	QueryParametersToRemove []string
	// Body is sent to the client when denied.
	Body string
	// DynamicMetadata is the decision's dynamic_metadata; gRPC mode only.
	DynamicMetadata *structpb.Struct
}

// fromResult maps an evaluation to a Response as the OPA-Envoy plugin maps
// its decisions: a boolean, or an object with a boolean "allowed" and
// optionally "headers", "response_headers_to_add",
// "request_headers_to_remove", "query_parameters_to_set",
// "query_parameters_to_remove", "body", "http_status" and
// "dynamic_metadata". An undefined decision is a denial. A decision of any
// other shape is an error, which the caller answers as a failed decision
// (where the plugin would answer Envoy with a gRPC error, leaving the
// outcome to Envoy's failure_mode_allow).
func fromResult(res EvalResult) (Response, error) {
	if res.Failed != "" {
		return failedResponse(res.ID, res.Failed, http.StatusForbidden), nil
	}
	r := Response{DecisionID: res.ID, Status: http.StatusForbidden}
	if !res.Defined {
		return r, nil
	}
	switch d := res.Value.(type) {
	case bool:
		r.Allowed = d
	case map[string]any:
		if err := r.fromObject(d); err != nil {
			return Response{}, err
		}
	default:
		return Response{}, fmt.Errorf("decision is %s, not a boolean or an object", kind(res.Value))
	}
	return r, nil
}

// withDecisionIDHeader adds the x-elevate-decision-id header, unless the
// policy set that header itself: a policy's header is never replaced.
func (r Response) withDecisionIDHeader() Response {
	for _, h := range slices.Concat(r.Headers, r.ResponseHeadersToAdd) {
		if strings.EqualFold(h.Key, HeaderDecisionID) {
			return r
		}
	}
	r.Headers = append(slices.Clip(r.Headers), Header{HeaderDecisionID, r.DecisionID})
	return r
}

func (r *Response) fromObject(d map[string]any) error {
	allowed, ok := d["allowed"].(bool)
	if !ok {
		return fmt.Errorf(`decision object: "allowed" is %s, not a boolean`, kind(d["allowed"]))
	}
	r.Allowed = allowed
	var err error
	if r.Headers, err = headersField(d, "headers"); err != nil {
		return err
	}
	if v, ok := d["dynamic_metadata"]; ok {
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf(`decision object: "dynamic_metadata" is %s, not an object`, kind(v))
		}
		if r.DynamicMetadata, err = structpb.NewStruct(plain(m).(map[string]any)); err != nil {
			return fmt.Errorf(`decision object: "dynamic_metadata": %w`, err)
		}
	}
	if allowed {
		if r.ResponseHeadersToAdd, err = headersField(d, "response_headers_to_add"); err != nil {
			return err
		}
		if r.HeadersToRemove, err = stringsField(d, "request_headers_to_remove"); err != nil {
			return err
		}
		if r.QueryParametersToRemove, err = stringsField(d, "query_parameters_to_remove"); err != nil {
			return err
		}
		r.QueryParametersToSet, err = queryParametersField(d, "query_parameters_to_set")
		return err
	}
	if r.Status, err = statusField(d); err != nil {
		return err
	}
	if v, ok := d["body"]; ok {
		if r.Body, ok = v.(string); !ok {
			return fmt.Errorf(`decision object: "body" is %s, not a string`, kind(v))
		}
	}
	return nil
}

// headersField reads an object of header name → value or list of values,
// or a list of such objects.
func headersField(d map[string]any, field string) ([]Header, error) {
	v, ok := d[field]
	if !ok {
		return nil, nil
	}
	var objects []map[string]any
	switch v := v.(type) {
	case map[string]any:
		objects = []map[string]any{v}
	case []any:
		for _, o := range v {
			m, ok := o.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("decision object: %q holds %s, not an object", field, kind(o))
			}
			objects = append(objects, m)
		}
	default:
		return nil, fmt.Errorf("decision object: %q is %s, not an object", field, kind(v))
	}
	var out []Header
	for _, m := range objects {
		// Sorted, so that the answer does not depend on map order.
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !validHeaderName(k) {
				return nil, fmt.Errorf("decision object: %q: %q is not a header name", field, k)
			}
			values, err := headerValues(m[k])
			if err != nil {
				return nil, fmt.Errorf("decision object: %q: header %q: %w", field, k, err)
			}
			for _, v := range values {
				out = append(out, Header{k, v})
			}
		}
	}
	return out, nil
}

func headerValues(v any) ([]string, error) {
	var values []string
	switch v := v.(type) {
	case string:
		values = []string{v}
	case []any:
		for _, s := range v {
			str, ok := s.(string)
			if !ok {
				return nil, fmt.Errorf("value is %s, not a string", kind(s))
			}
			values = append(values, str)
		}
	default:
		return nil, fmt.Errorf("value is %s, not a string or a list of strings", kind(v))
	}
	for _, s := range values {
		if strings.ContainsAny(s, "\r\n\x00") {
			return nil, errors.New("value contains a line break or NUL")
		}
	}
	return values, nil
}

func stringsField(d map[string]any, field string) ([]string, error) {
	v, ok := d[field]
	if !ok {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("decision object: %q is %s, not a list of strings", field, kind(v))
	}
	out := make([]string, len(list))
	for i, s := range list {
		if out[i], ok = s.(string); !ok {
			return nil, fmt.Errorf("decision object: %q holds %s, not a string", field, kind(s))
		}
	}
	return out, nil
}

// queryParametersField reads an object of parameter → value or list of
// values.
func queryParametersField(d map[string]any, field string) ([]Header, error) {
	v, ok := d[field]
	if !ok {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decision object: %q is %s, not an object", field, kind(v))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Header
	for _, k := range keys {
		values, err := headerValues(m[k])
		if err != nil {
			return nil, fmt.Errorf("decision object: %q: parameter %q: %w", field, k, err)
		}
		for _, v := range values {
			out = append(out, Header{k, v})
		}
	}
	return out, nil
}

// statusField is the decision's http_status: an HTTP status Envoy knows,
// 403 when absent.
func statusField(d map[string]any) (int, error) {
	v, ok := d["http_status"]
	if !ok {
		return http.StatusForbidden, nil
	}
	var code int64
	switch n := v.(type) {
	case json.Number:
		var err error
		if code, err = n.Int64(); err != nil {
			return 0, fmt.Errorf(`decision object: "http_status" %s is not an integer`, n)
		}
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
			return 0, fmt.Errorf(`decision object: "http_status" %v is not an integer`, n)
		}
		code = int64(n)
	case int:
		code = int64(n)
	case int64:
		code = n
	default:
		return 0, fmt.Errorf(`decision object: "http_status" is %s, not a number`, kind(v))
	}
	if code < 0 || code > math.MaxInt32 || http.StatusText(int(code)) == "" {
		return 0, fmt.Errorf(`decision object: "http_status" %d is not an HTTP status`, code)
	}
	if _, ok := typev3.StatusCode_name[int32(code)]; !ok {
		return 0, fmt.Errorf(`decision object: "http_status" %d is not a status Envoy can send`, code)
	}
	return int(code), nil
}

// failedResponse denies a request no decision could be made for, saying
// why in a header and a JSON body.
func failedResponse(id, reason string, status int) Response {
	body, _ := json.Marshal(struct {
		DecisionID string `json:"decision_id"`
		Reason     string `json:"reason"`
	}{id, reason})
	return Response{
		DecisionID: id, Failed: reason, Status: status, Body: string(body),
		Headers: []Header{
			{"content-type", "application/json"},
			{HeaderDecisionFailed, reason},
		},
	}
}

// CheckResponse is r for the gRPC mode: status OK with an OkHttpResponse,
// or PERMISSION_DENIED with a DeniedHttpResponse. The decision ID is also in
// the dynamic metadata, as the plugin puts it.
func (r Response) CheckResponse() *authv3.CheckResponse {
	md := r.DynamicMetadata
	if md == nil {
		md = &structpb.Struct{}
	}
	if md.Fields == nil {
		md.Fields = map[string]*structpb.Value{}
	}
	md.Fields["decision_id"] = structpb.NewStringValue(r.DecisionID)
	if r.Allowed {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:                 headerOptions(r.Headers),
				HeadersToRemove:         r.HeadersToRemove,
				ResponseHeadersToAdd:    headerOptions(r.ResponseHeadersToAdd),
				QueryParametersToSet:    queryParameters(r.QueryParametersToSet),
				QueryParametersToRemove: r.QueryParametersToRemove,
			}},
			DynamicMetadata: md,
		}
	}
	msg := "denied"
	if r.Failed != "" {
		msg = "no decision could be made (" + r.Failed + "), so the answer is no"
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied), Message: msg},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(r.Status)},
			Headers: headerOptions(r.Headers),
			Body:    r.Body,
		}},
		DynamicMetadata: md,
	}
}

func headerOptions(hs []Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		out[i] = &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.Key, Value: h.Value}}
	}
	return out
}

func queryParameters(ps []Header) []*corev3.QueryParameter {
	if len(ps) == 0 {
		return nil
	}
	out := make([]*corev3.QueryParameter, len(ps))
	for i, p := range ps {
		out[i] = &corev3.QueryParameter{Key: p.Key, Value: p.Value}
	}
	return out
}

// headersToRemoveHeader tells Envoy's HTTP mode which request headers to
// remove before sending the request upstream.
const headersToRemoveHeader = "x-envoy-auth-headers-to-remove"

// WriteHTTP answers Envoy's HTTP mode (http_service) with r: 200 allows,
// with the decision's headers and response_headers_to_add as response
// headers (Envoy copies those listed in allowed_upstream_headers to the
// upstream request, and those in allowed_client_headers_on_success to the
// client's response) and request_headers_to_remove in
// x-envoy-auth-headers-to-remove. Any other status denies: Envoy sends it,
// the headers listed in allowed_client_headers and the body to the client.
// The query parameters and dynamic metadata cannot be expressed in this
// mode.
func (r Response) WriteHTTP(w http.ResponseWriter) {
	h := w.Header()
	for _, hd := range r.Headers {
		h.Add(hd.Key, hd.Value)
	}
	if r.Allowed {
		for _, hd := range r.ResponseHeadersToAdd {
			h.Add(hd.Key, hd.Value)
		}
		if len(r.HeadersToRemove) > 0 {
			h.Set(headersToRemoveHeader, strings.Join(r.HeadersToRemove, ", "))
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	status := r.Status
	if status < 300 {
		// Envoy allows on 200, and net/http would turn an informational
		// status into a 200: a denial must never read as either.
		status = http.StatusForbidden
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, r.Body)
}

// validHeaderName: an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// plain converts json.Number, which structpb does not take, to float64.
func plain(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, _ := v.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = plain(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	}
	return v
}

// kind names a decoded JSON value's type for error messages.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int, int64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}
