package envoy

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/elevatepdp/elevate/internal/decision/reason"
)

func TestFromResult(t *testing.T) {
	id := "d1"
	tests := map[string]struct {
		res  EvalResult
		want Response
		err  string
	}{
		"true": {
			res:  EvalResult{ID: id, Defined: true, Value: true},
			want: Response{DecisionID: id, Allowed: true, Status: 403},
		},
		"false": {
			res:  EvalResult{ID: id, Defined: true, Value: false},
			want: Response{DecisionID: id, Status: 403},
		},
		"undefined": {
			res:  EvalResult{ID: id},
			want: Response{DecisionID: id, Status: 403},
		},
		"failed": {
			res: EvalResult{ID: id, Failed: "policy_timeout", Err: errors.New("slow")},
			want: Response{DecisionID: id, Failed: "policy_timeout", Status: 403, Body: `{"decision_id":"d1","reason":"policy_timeout"}`,
				Headers: []Header{{"content-type", "application/json"}, {HeaderDecisionFailed, "policy_timeout"}}},
		},
		"allowed object": {
			res: EvalResult{ID: id, Defined: true, Value: map[string]any{
				"allowed":                    true,
				"headers":                    []any{map[string]any{"b": "2", "a": []any{"1", "0"}}, map[string]any{"c": "3"}},
				"response_headers_to_add":    map[string]any{"x-foo": "bar"},
				"request_headers_to_remove":  []any{"cookie"},
				"query_parameters_to_set":    map[string]any{"q": []any{"1", "2"}},
				"query_parameters_to_remove": []any{"token"},
				"body":                       42.0, // ignored on allow, as by the plugin
				"http_status":                "ignored",
			}},
			want: Response{
				DecisionID: id, Allowed: true, Status: 403,
				Headers:                 []Header{{"a", "1"}, {"a", "0"}, {"b", "2"}, {"c", "3"}},
				ResponseHeadersToAdd:    []Header{{"x-foo", "bar"}},
				HeadersToRemove:         []string{"cookie"},
				QueryParametersToSet:    []Header{{"q", "1"}, {"q", "2"}},
				QueryParametersToRemove: []string{"token"},
			},
		},
		"denied object": {
			res: EvalResult{ID: id, Defined: true, Value: map[string]any{
				"allowed": false, "headers": map[string]any{"www-authenticate": "Bearer", HeaderDecisionID: "policy's"},
				"body": "no", "http_status": json.Number("401"),
				"response_headers_to_add": 7.0, // ignored on deny
			}},
			want: Response{DecisionID: id, Status: 401, Body: "no", Headers: []Header{{"www-authenticate", "Bearer"}, {HeaderDecisionID, "policy's"}}},
		},
		"denied object, redirect": {
			res:  EvalResult{ID: id, Defined: true, Value: map[string]any{"allowed": false, "http_status": 302.0, "headers": map[string]any{"location": "/login"}}},
			want: Response{DecisionID: id, Status: 302, Headers: []Header{{"location", "/login"}}},
		},
		"string":                    {res: EvalResult{ID: id, Defined: true, Value: "yes"}, err: "a string, not a boolean or an object"},
		"null":                      {res: EvalResult{ID: id, Defined: true, Value: nil}, err: "null"},
		"no allowed":                {res: EvalResult{ID: id, Defined: true, Value: map[string]any{}}, err: `"allowed" is null`},
		"allowed not boolean":       {res: EvalResult{ID: id, Defined: true, Value: map[string]any{"allowed": "true"}}, err: `"allowed" is a string`},
		"headers a string":          {res: obj(true, "headers", "x"), err: `"headers" is a string`},
		"header value a number":     {res: obj(true, "headers", map[string]any{"a": json.Number("1")}), err: `header "a"`},
		"header value with newline": {res: obj(false, "headers", map[string]any{"a": "1\r\nInjected: yes"}), err: "line break"},
		"header name invalid":       {res: obj(true, "headers", map[string]any{"a b": "1"}), err: "not a header name"},
		"headers to remove numbers": {res: obj(true, "request_headers_to_remove", []any{1.0}), err: "not a string"},
		"body a number":             {res: obj(false, "body", 1.0), err: `"body" is a number`},
		"status a string":           {res: obj(false, "http_status", "401"), err: `"http_status" is a string`},
		"status not integer":        {res: obj(false, "http_status", json.Number("401.5")), err: "not an integer"},
		"status unknown":            {res: obj(false, "http_status", json.Number("299")), err: "not an HTTP status"},
		"status not Envoy's":        {res: obj(false, "http_status", json.Number("102")), err: "not a status Envoy can send"},
		"metadata a list":           {res: obj(true, "dynamic_metadata", []any{}), err: `"dynamic_metadata" is a list`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := fromResult(tc.res)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func obj(allowed bool, field string, v any) EvalResult {
	return EvalResult{ID: "d1", Defined: true, Value: map[string]any{"allowed": allowed, field: v}}
}

func TestCheckResponse(t *testing.T) {
	ok := Response{DecisionID: "d1", Allowed: true, Headers: []Header{{"x-a", "1"}, {HeaderDecisionID, "d1"}}, HeadersToRemove: []string{"cookie"}}.CheckResponse()
	if codes.Code(ok.GetStatus().GetCode()) != codes.OK || ok.GetOkResponse() == nil ||
		len(ok.GetOkResponse().GetHeaders()) != 2 || ok.GetOkResponse().GetHeadersToRemove()[0] != "cookie" ||
		ok.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() != "d1" {
		t.Errorf("allowed: %v", ok)
	}
	denied := failedResponse("d2", reason.BadInput, 400).CheckResponse()
	d := denied.GetDeniedResponse()
	if codes.Code(denied.GetStatus().GetCode()) != codes.PermissionDenied || d == nil || d.GetStatus().GetCode() != 400 ||
		d.GetBody() != `{"decision_id":"d2","reason":"bad_input"}` || !strings.Contains(denied.GetStatus().GetMessage(), reason.BadInput) {
		t.Errorf("failed: %v", denied)
	}
	var _ *authv3.CheckResponse = denied
}

func TestWriteHTTP(t *testing.T) {
	tests := map[string]struct {
		resp    Response
		status  int
		headers http.Header
		body    string
	}{
		"allowed": {
			resp: Response{
				DecisionID: "d1", Allowed: true,
				Headers:              []Header{{"x-ext-auth-allow", "yes"}, {HeaderDecisionID, "d1"}},
				ResponseHeadersToAdd: []Header{{"x-foo", "bar"}},
				HeadersToRemove:      []string{"a", "b"},
				Body:                 "not sent",
			},
			status: 200,
			headers: http.Header{
				"X-Ext-Auth-Allow": {"yes"}, "X-Elevate-Decision-Id": {"d1"}, "X-Foo": {"bar"},
				"X-Envoy-Auth-Headers-To-Remove": {"a, b"},
			},
		},
		"denied": {
			resp:    Response{DecisionID: "d1", Status: 401, Body: "who?", Headers: []Header{{"www-authenticate", "Bearer"}, {HeaderDecisionID, "d1"}}},
			status:  401,
			headers: http.Header{"Www-Authenticate": {"Bearer"}, "X-Elevate-Decision-Id": {"d1"}},
			body:    "who?",
		},
		"a denial never reads as an allowance": {
			resp:    Response{DecisionID: "d1", Status: 200, Headers: []Header{{HeaderDecisionID, "d1"}}},
			status:  403,
			headers: http.Header{"X-Elevate-Decision-Id": {"d1"}},
		},
		"failed": {
			resp:   failedResponse("d1", "store_unavailable", 403).withDecisionIDHeader(),
			status: 403,
			headers: http.Header{
				"Content-Type": {"application/json"}, "X-Elevate-Decision-Failed": {"store_unavailable"}, "X-Elevate-Decision-Id": {"d1"},
			},
			body: `{"decision_id":"d1","reason":"store_unavailable"}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tc.resp.WriteHTTP(w)
			if w.Code != tc.status || w.Body.String() != tc.body {
				t.Errorf("status %d body %q, want %d %q", w.Code, w.Body.String(), tc.status, tc.body)
			}
			got := w.Header().Clone()
			got.Del("Content-Type")
			want := tc.headers.Clone()
			want.Del("Content-Type")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("headers = %v, want %v", w.Header(), tc.headers)
			}
			if ct := tc.headers.Get("Content-Type"); ct != "" && w.Header().Get("Content-Type") != ct {
				t.Errorf("content-type = %q, want %q", w.Header().Get("Content-Type"), ct)
			}
		})
	}
}
