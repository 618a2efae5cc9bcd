package compat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/elevatepdp/elevate/internal/decision/envoy"
)

// envoyCase is one case of testdata/envoy_inputs.json: a whole request and
// the plugin's input for it, or (short form) a request's path, headers and
// body and the parsed parts of the plugin's input.
type envoyCase struct {
	Name    string          `json:"name"`
	Request json.RawMessage `json:"request"`
	Input   json.RawMessage `json:"input"`

	Path          string            `json:"path"`
	Headers       map[string]string `json:"headers"`
	Body          string            `json:"body"`
	ParsedPath    json.RawMessage   `json:"parsed_path"`
	ParsedQuery   json.RawMessage   `json:"parsed_query"`
	ParsedBody    json.RawMessage   `json:"parsed_body"`
	TruncatedBody bool              `json:"truncated_body"`

	// Refused: Elevate refuses what the plugin evaluates, on purpose (or,
	// "as the plugin", both refuse).
	Refused string `json:"refused"`
}

// request and want are the case's CheckRequest (protojson) and expected
// input (JSON).
func (c envoyCase) request(t *testing.T) (*authv3.CheckRequest, any) {
	t.Helper()
	raw, want := c.Request, c.Input
	if raw == nil {
		h := map[string]any{}
		if c.Path != "" {
			h["path"] = c.Path
		}
		if c.Headers != nil {
			h["headers"] = c.Headers
		}
		if c.Body != "" {
			h["body"] = c.Body
		}
		attrs := map[string]any{"request": map[string]any{"http": h}}
		raw, _ = json.Marshal(map[string]any{"attributes": attrs})
		or := func(v json.RawMessage, d string) json.RawMessage {
			if v == nil {
				return json.RawMessage(d)
			}
			return v
		}
		want, _ = json.Marshal(map[string]any{
			"attributes":     attrs,
			"parsed_path":    or(c.ParsedPath, `[""]`),
			"parsed_query":   or(c.ParsedQuery, `{}`),
			"parsed_body":    or(c.ParsedBody, `null`),
			"truncated_body": c.TruncatedBody,
			"version":        map[string]any{"ext_authz": "v3", "encoding": "protojson"},
		})
	}
	var req authv3.CheckRequest
	if err := protojson.Unmarshal(raw, &req); err != nil {
		t.Fatalf("request: %v", err)
	}
	var v any
	if c.Refused == "" {
		if err := util.UnmarshalJSON(want, &v); err != nil {
			t.Fatalf("input: %v", err)
		}
	}
	return &req, v
}

// TestInputMatchesOPAEnvoyPlugin: for the plugin's own test requests and
// the encodings it defines, Elevate's ext_authz input is the plugin's (as
// OPA values: what a policy sees), and what Elevate refuses beyond the
// plugin is listed, each with its reason. The plugin itself cannot be a
// test dependency (the module proxy does not serve it here), so the inputs
// are golden, derived from its RequestToInput and its tests.
func TestInputMatchesOPAEnvoyPlugin(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "envoy_inputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []envoyCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			req, want := c.request(t)
			input, err := envoy.Input(req, envoy.InputOptions{})
			if c.Refused != "" {
				if err == nil {
					t.Fatalf("accepted, want refused (%s): %v", c.Refused, input)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertSameValue(t, input, want)
		})
	}
}

// TestGRPCBodyMatchesOPAEnvoyPlugin: the plugin's gRPC body cases
// (TestGetParsedBodygRPC, the com.book.BookService requests), with a
// descriptor set of that service built here.
func TestGRPCBodyMatchesOPAEnvoyPlugin(t *testing.T) {
	files, err := envoy.LoadProtoSet(bookDescriptorSet(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path, rawBody string
		body          string // JSON
		truncated     bool
		refused       bool
	}{
		"valid_parsed_book":  {path: "/com.book.BookService/GetBooksViaAuthor", rawBody: "AAAAAAYKBEpvaG4=", body: `{"author": "John"}`},
		"unknown_service":    {path: "/com.book.SecondBookService/GetBooksViaAuthor", rawBody: "AAAAAAYKBEpvaG4=", body: `null`},
		"unknown_method":     {path: "/com.book.BookService/GetBooksViaSecondAuthor", rawBody: "AAAAAAYKBEpvaG4=", body: `null`},
		"empty_request":      {path: "/com.book.BookService/GetBooksViaAuthor", rawBody: "AAAAAAA=", body: `{}`},
		"compressed_payload": {path: "/com.book.BookService/GetBooksViaAuthor", rawBody: "AQAAADwfiwgAAAAAAAD/4hLkaOi4t49RoOHi+ll//////59RSJCj4dGiE4wCDau/LIYIAQIAAP//aJ9RpSYAAAA=", body: `null`},
		"truncated_payload":  {path: "/com.book.BookService/GetBooksViaAuthor", rawBody: "AAAAABEImqaMww==", body: `null`, truncated: true},
		"without_raw_body":   {path: "/com.book.BookService/GetBooksViaAuthor", body: `null`},
		"parsed_path_error":  {rawBody: "AAAAAAYKBEpvaG4=", refused: true},
	} {
		t.Run(name, func(t *testing.T) {
			h := map[string]any{"method": "POST", "protocol": "HTTP/2", "headers": map[string]string{"content-type": "application/grpc"}}
			if tc.path != "" {
				h["path"] = tc.path
			}
			if tc.rawBody != "" {
				h["rawBody"] = tc.rawBody
			}
			raw, _ := json.Marshal(map[string]any{"attributes": map[string]any{"request": map[string]any{"http": h}}})
			var req authv3.CheckRequest
			if err := protojson.Unmarshal(raw, &req); err != nil {
				t.Fatal(err)
			}
			input, err := envoy.Input(&req, envoy.InputOptions{ProtoSet: files})
			if tc.refused {
				if err == nil {
					t.Fatalf("accepted: %v", input)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var body any
			if err := util.UnmarshalJSON([]byte(tc.body), &body); err != nil {
				t.Fatal(err)
			}
			assertSameValue(t, input["parsed_body"], body)
			if input["truncated_body"] != tc.truncated {
				t.Errorf("truncated_body = %v, want %v", input["truncated_body"], tc.truncated)
			}
			// Without a descriptor set, gRPC bodies are not parsed.
			if input, err := envoy.Input(&req, envoy.InputOptions{}); err != nil || input["parsed_body"] != nil {
				t.Errorf("without a descriptor set: parsed_body %v, %v", input["parsed_body"], err)
			}
		})
	}
}

// TestSkipRequestBodyParse: with the plugin's skip-request-body-parse, the
// input has neither parsed_body nor truncated_body, and a body that would
// not parse is no reason to refuse.
func TestSkipRequestBodyParse(t *testing.T) {
	raw := `{"attributes": {"request": {"http": {"path": "/p", "headers": {"content-type": "application/json"}, "body": "{broken"}}}}`
	var req authv3.CheckRequest
	if err := protojson.Unmarshal([]byte(raw), &req); err != nil {
		t.Fatal(err)
	}
	if _, err := envoy.Input(&req, envoy.InputOptions{}); err == nil {
		t.Fatal("a broken JSON body was accepted when parsed")
	}
	input, err := envoy.Input(&req, envoy.InputOptions{SkipBodyParse: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"parsed_body", "truncated_body"} {
		if _, ok := input[k]; ok {
			t.Errorf("input has %s", k)
		}
	}
}

// assertSameValue compares as OPA values, so 42 is 42 whether it is an
// int64 or a json.Number.
func assertSameValue(t *testing.T, got, want any) {
	t.Helper()
	g, err := ast.InterfaceToValue(got)
	if err != nil {
		t.Fatalf("got: %v", err)
	}
	w, err := ast.InterfaceToValue(want)
	if err != nil {
		t.Fatalf("want: %v", err)
	}
	if g.Compare(w) != 0 {
		t.Errorf("input differs from the plugin's\n got  %v\n want %v", g, w)
	}
}

// bookDescriptorSet writes the descriptor set of the plugin's test service
// com.book.BookService (GetBooksViaAuthor takes {string author = 1}) and
// returns its path.
func bookDescriptorSet(t *testing.T) string {
	t.Helper()
	s := proto.String
	file := &descriptorpb.FileDescriptorProto{
		Name: s("book.proto"), Package: s("com.book"), Syntax: s("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: s("Author"), Field: []*descriptorpb.FieldDescriptorProto{{
				Name: s("author"), JsonName: s("author"), Number: proto.Int32(1),
				Type:  descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
				Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			}}},
			{Name: s("Books")},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: s("BookService"),
			Method: []*descriptorpb.MethodDescriptorProto{
				{Name: s("GetBooksViaAuthor"), InputType: s(".com.book.Author"), OutputType: s(".com.book.Books")},
			},
		}},
	}
	b, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{file}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "book.pb")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
