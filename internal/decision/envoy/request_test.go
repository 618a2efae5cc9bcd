package envoy

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func checkRequest(path string, headers map[string]string, body string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: path, Host: "app.example", Headers: headers, Body: body, Size: 7,
		}},
	}}
}

func TestInput(t *testing.T) {
	jsonCT := map[string]string{"content-type": "application/json"}
	tests := map[string]struct {
		req       *authv3.CheckRequest
		path      []any
		query     map[string]any
		body      any
		truncated bool
		err       string
	}{
		"root": {
			req:  checkRequest("/", nil, ""),
			path: []any{""}, query: map[string]any{},
		},
		"segments and query": {
			req:  checkRequest("/api/v1/people?lang=en&id=1&id=2", nil, ""),
			path: []any{"api", "v1", "people"}, query: map[string]any{"lang": []any{"en"}, "id": []any{"1", "2"}},
		},
		"escaped segment": {
			req:  checkRequest("/files/a%20b", nil, ""),
			path: []any{"files", "a b"}, query: map[string]any{},
		},
		"double slash is a path, not a host": {
			req:  checkRequest("//admin/users", nil, ""),
			path: []any{"admin", "users"}, query: map[string]any{},
		},
		"no path": {
			req:  checkRequest("", nil, ""),
			path: []any{""}, query: map[string]any{},
		},
		"JSON body": {
			req:  checkRequest("/p", jsonCT, `{"n": 12345678901234567890, "s": "x"}`),
			path: []any{"p"}, query: map[string]any{},
			body: map[string]any{"n": json.Number("12345678901234567890"), "s": "x"},
		},
		"JSON body with charset": {
			req:  checkRequest("/p", map[string]string{"content-type": "application/json; charset=utf-8"}, `[1]`),
			path: []any{"p"}, query: map[string]any{}, body: []any{json.Number("1")},
		},
		// The plugin matches content types as case-sensitive substrings.
		"content type in capitals is not parsed": {
			req:  checkRequest("/p", map[string]string{"content-type": "Application/JSON"}, `[1]`),
			path: []any{"p"}, query: map[string]any{},
		},
		"content type as a parameter": {
			req:  checkRequest("/p", map[string]string{"content-type": "text/plain; x=application/json"}, `[1]`),
			path: []any{"p"}, query: map[string]any{}, body: []any{json.Number("1")},
		},
		"JSON raw_body": {
			req: func() *authv3.CheckRequest {
				r := checkRequest("/p", jsonCT, "")
				r.Attributes.Request.Http.RawBody = []byte(`{"a": true}`)
				return r
			}(),
			path: []any{"p"}, query: map[string]any{}, body: map[string]any{"a": true},
		},
		"truncated by content-length": {
			req:  checkRequest("/p", map[string]string{"content-type": "application/json", "content-length": "200"}, `{"a": `),
			path: []any{"p"}, query: map[string]any{}, truncated: true,
		},
		"truncated by Envoy's partial body header": {
			req:  checkRequest("/p", map[string]string{"content-type": "application/json", partialBodyHeader: "true"}, `{"a": 1}`),
			path: []any{"p"}, query: map[string]any{}, truncated: true,
		},
		"whole body with its content-length": {
			req:  checkRequest("/p", map[string]string{"content-type": "application/json", "content-length": "8", partialBodyHeader: "false"}, `{"a": 1}`),
			path: []any{"p"}, query: map[string]any{}, body: map[string]any{"a": json.Number("1")},
		},
		"form body": {
			req:  checkRequest("/p", map[string]string{"content-type": "application/x-www-form-urlencoded"}, "a=1&a=2&b=x+y"),
			path: []any{"p"}, query: map[string]any{}, body: map[string]any{"a": []any{"1", "2"}, "b": []any{"x y"}},
		},
		"multipart body": {
			req: checkRequest("/p", map[string]string{"content-type": `multipart/form-data; boundary="b"`},
				"--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nhello\r\n"+
					"--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nworld\r\n"+
					"--b\r\nContent-Disposition: form-data; name=\"j\"\r\nContent-Type: application/json\r\n\r\n{\"k\":1}\r\n--b--\r\n"),
			path: []any{"p"}, query: map[string]any{},
			body: map[string]any{"t": []any{"hello", "world"}, "j": []any{map[string]any{"k": json.Number("1")}}},
		},
		"other content type is not parsed": {
			req:  checkRequest("/p", map[string]string{"content-type": "text/plain"}, "{}"),
			path: []any{"p"}, query: map[string]any{},
		},
		"no content type is not parsed": {
			req:  checkRequest("/p", nil, "{}"),
			path: []any{"p"}, query: map[string]any{},
		},
		// The plugin reads the content type from the headers map only.
		"content type only in the header map is not parsed": {
			req: func() *authv3.CheckRequest {
				r := checkRequest("/p", nil, `{"a": 1}`)
				r.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
					{Key: "content-type", RawValue: []byte("application/json")},
				}}
				return r
			}(),
			path: []any{"p"}, query: map[string]any{},
		},
		"multipart without a boundary is not parsed": {
			req:  checkRequest("/p", map[string]string{"content-type": "multipart/form-data"}, "x"),
			path: []any{"p"}, query: map[string]any{},
		},
		"relative path": {
			req:  checkRequest("people", nil, ""),
			path: []any{"people"}, query: map[string]any{},
		},
		"nil request":               {req: nil, path: []any{""}, query: map[string]any{}},
		"no attributes":             {req: &authv3.CheckRequest{}, path: []any{""}, query: map[string]any{}},
		"no request in attributes":  {req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}, path: []any{""}, query: map[string]any{}},
		"malformed JSON":            {req: checkRequest("/p", jsonCT, `{"a": `), err: "parse JSON body"},
		"two JSON values":           {req: checkRequest("/p", jsonCT, `{} {}`), err: "after top-level value"},
		"malformed form":            {req: checkRequest("/p", map[string]string{"content-type": "application/x-www-form-urlencoded"}, "a=%zz"), err: "parse form body"},
		"multipart, bad media type": {req: checkRequest("/p", map[string]string{"content-type": "multipart/form-data; boundary"}, "x"), err: "multipart"},
		"malformed multipart":       {req: checkRequest("/p", map[string]string{"content-type": "multipart/form-data; boundary=b"}, "--b\r\nbroken"), err: "multipart"},
		"bad content-length":        {req: checkRequest("/p", map[string]string{"content-type": "application/json", "content-length": "many"}, "{}"), err: "content-length"},
		"malformed path":            {req: checkRequest("/a%zz", nil, ""), err: "parse path"},
		"escaped slash in a path":   {req: checkRequest("/files/a%2Fb", nil, ""), err: "ambiguous"},
		"semicolon in a query":      {req: checkRequest("/x?debug=1;a=2", nil, ""), err: "ambiguous"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			input, err := Input(tc.req, InputOptions{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(input["parsed_path"], tc.path) {
				t.Errorf("parsed_path = %#v, want %#v", input["parsed_path"], tc.path)
			}
			if !reflect.DeepEqual(input["parsed_query"], tc.query) {
				t.Errorf("parsed_query = %#v, want %#v", input["parsed_query"], tc.query)
			}
			if !reflect.DeepEqual(input["parsed_body"], tc.body) {
				t.Errorf("parsed_body = %#v, want %#v", input["parsed_body"], tc.body)
			}
			if input["truncated_body"] != tc.truncated {
				t.Errorf("truncated_body = %v, want %v", input["truncated_body"], tc.truncated)
			}
			want := map[string]any{"ext_authz": "v3", "encoding": "protojson"}
			if !reflect.DeepEqual(input["version"], want) {
				t.Errorf("version = %v", input["version"])
			}
		})
	}
}

// TestInputAttributeEncodings: the attributes are encoded as the plugin
// encodes them: 64-bit integers and enums as numbers, a Timestamp as
// {"seconds", "nanos"}, bytes as base64 (not protojson's strings, enum
// names and RFC 3339).
func TestInputAttributeEncodings(t *testing.T) {
	req := checkRequest("/p", map[string]string{"x-a": "1"}, "")
	req.Attributes.Request.Time = &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 5}
	req.Attributes.Request.Http.RawBody = []byte{0xff}
	req.Attributes.Source.Address.GetSocketAddress().Protocol = corev3.SocketAddress_UDP
	input, err := Input(req, InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(input["attributes"])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"request":{"http":{"headers":{"x-a":"1"},"host":"app.example","method":"POST","path":"/p","rawBody":"/w==","size":7},` +
		`"time":{"nanos":5,"seconds":1700000000}},` +
		`"source":{"address":{"socketAddress":{"address":"10.0.0.1","portValue":51000,"protocol":1}}}}`
	if string(got) != want {
		t.Errorf("attributes =\n%s\nwant\n%s", got, want)
	}
}

func TestHTTPCheckRequest(t *testing.T) {
	r := httptest.NewRequest("PUT", "http://app.example/v1/ext_authz/orders/7?x=1", strings.NewReader("ignored"))
	r.Header.Add("Authorization", "Bearer t")
	r.Header.Add("X-Multi", "a")
	r.Header.Add("X-Multi", "b")
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Request-Id", "rid")

	got := HTTPCheckRequest(r, "/orders/7?x=1", []byte(`{"a":1}`), false).GetAttributes().GetRequest().GetHttp()
	if got.GetMethod() != "PUT" || got.GetPath() != "/orders/7?x=1" || got.GetHost() != "app.example" ||
		got.GetScheme() != "https" || got.GetId() != "rid" || got.GetBody() != `{"a":1}` || got.GetSize() != 7 {
		t.Errorf("http = %v", got)
	}
	wantHeaders := map[string]string{
		":authority": "app.example", ":method": "PUT", ":path": "/orders/7?x=1",
		"authorization": "Bearer t", "x-multi": "a,b", "x-forwarded-proto": "https", "x-request-id": "rid",
	}
	if !reflect.DeepEqual(got.GetHeaders(), wantHeaders) {
		t.Errorf("headers = %v, want %v", got.GetHeaders(), wantHeaders)
	}

	got = HTTPCheckRequest(r, "/", []byte{0xff, 0xfe}, true).GetAttributes().GetRequest().GetHttp()
	if got.GetBody() != "" || string(got.GetRawBody()) != "\xff\xfe" || got.GetSize() != -1 || got.GetHeaders()[partialBodyHeader] != "true" {
		t.Errorf("binary, truncated body: %v", got)
	}
	if _, err := Input(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: got}}}, InputOptions{}); err != nil {
		t.Errorf("Input of a binary body: %v", err)
	}
}

// FuzzInput: no request, however malformed, makes Input panic, and what it
// accepts is policy input (JSON).
func FuzzInput(f *testing.F) {
	f.Add("/a/b?c=d", "application/json", `{"a": [1, 2]}`, "")
	f.Add("//x/%2F?y", "application/x-www-form-urlencoded", "a=1&b", "3")
	f.Add("/u", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nv\r\n--b--\r\n", "")
	f.Fuzz(func(t *testing.T, path, contentType, body, contentLength string) {
		headers := map[string]string{"content-type": contentType}
		if contentLength != "" {
			headers["content-length"] = contentLength
		}
		req := checkRequest(path, headers, "")
		req.Attributes.Request.Http.RawBody = []byte(body)
		input, err := Input(req, InputOptions{})
		if err != nil {
			return
		}
		if _, err := json.Marshal(input); err != nil {
			t.Errorf("input is not JSON: %v", err)
		}
	})
}
