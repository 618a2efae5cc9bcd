// Package envoy answers Envoy's external authorization (ext_authz) with the
// input and the decision shapes of the OPA-Envoy plugin, so that policies
// written for the plugin run unchanged.
//
// A CheckRequest becomes policy input (request.go), the policy decides
// (evaluation.go), and its decision becomes Envoy's answer (response.go).
// The gRPC service envoy.service.auth.v3.Authorization is in server.go; the
// HTTP mode (Envoy's http_service) is in package decision, which turns each
// forwarded request into the CheckRequest Envoy's gRPC client would have
// sent (HTTPCheckRequest) and shares the Authorizer, so one policy serves
// both modes alike.
package envoy

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/elevatepdp/elevate/internal/decision/target"
)

// partialBodyHeader is set by Envoy (both modes) when it forwards only the
// first max_request_bytes of a body (allow_partial_message).
const partialBodyHeader = "x-envoy-auth-partial-body"

// InputOptions are the OPA-Envoy plugin's options for building input.
type InputOptions struct {
	// SkipBodyParse leaves parsed_body and truncated_body out of the input
	// (the plugin's skip-request-body-parse).
	SkipBodyParse bool
	// ProtoSet, when set, parses the body of application/grpc requests
	// (sent as raw_body: Envoy's pack_as_bytes) as the method's input
	// message (the plugin's proto-descriptor). See LoadProtoSet.
	ProtoSet *protoregistry.Files
}

// Input is the policy input for req, exactly as the OPA-Envoy plugin builds
// it for a v3 CheckRequest:
//
//   - attributes: the CheckRequest's fields by their JSON names, each as its
//     Go value: 64-bit integers and enums are numbers, a Timestamp is
//     {"seconds", "nanos"}, a Struct is its object, bytes are base64; unset
//     fields are absent;
//   - parsed_path: the path's segments, without the query;
//   - parsed_query: each query parameter's list of values;
//   - parsed_body: a JSON, form, multipart or (with a ProtoSet) gRPC body,
//     or null (another content type, no body, or a truncated one);
//   - truncated_body: whether Envoy forwarded only part of the body;
//   - source_principal: attributes.source.principal (the peer certificate's
//     URI SAN, a SPIFFE id in Istio), when there is one;
//   - destination_principal: attributes.destination.principal, likewise
//     (Elevate's; the plugin has only source_principal);
//   - version: {"ext_authz": "v3", "encoding": "protojson"}.
//
// A request without attributes.request.http (Envoy's network filter) is
// evaluated, with an empty path. Input fails, and the request is refused
// (bad_input), when the path or the query does not parse in exactly one way
// (see target.Parse) or a body of a parsed content type is malformed.
func Input(req *authv3.CheckRequest, opts InputOptions) (map[string]any, error) {
	if req == nil {
		req = &authv3.CheckRequest{}
	}
	input := messageInput(req.ProtoReflect())
	if err := addParsed(input, req.GetAttributes().GetRequest().GetHttp(), opts); err != nil {
		return nil, err
	}
	input["version"] = map[string]any{"ext_authz": "v3", "encoding": "protojson"}
	if p := req.GetAttributes().GetSource().GetPrincipal(); p != "" {
		input["source_principal"] = p
	}
	if p := req.GetAttributes().GetDestination().GetPrincipal(); p != "" {
		input["destination_principal"] = p
	}
	return input, nil
}

// addParsed adds parsed_path, parsed_query and (unless skipped)
// parsed_body and truncated_body for h to input.
func addParsed(input map[string]any, h *authv3.AttributeContext_HttpRequest, opts InputOptions) error {
	t, err := target.Parse(h.GetPath())
	if err != nil {
		return fmt.Errorf("parse path: %w", err)
	}
	segments := make([]any, len(t.Segments))
	for i, s := range t.Segments {
		segments[i] = s
	}
	input["parsed_path"] = segments
	input["parsed_query"] = valuesInput(t.Query)
	if !opts.SkipBodyParse {
		parsedBody, truncated, err := parseBody(h, t.Segments, opts.ProtoSet)
		if err != nil {
			return err
		}
		input["parsed_body"] = parsedBody
		input["truncated_body"] = truncated
	}
	return nil
}

// parseBody parses the body as the plugin does: by the content-type of the
// headers map (not header_map), matched as a case-sensitive substring, in
// the order JSON, gRPC, form (application/x-www-form-urlencoded),
// multipart/form-data; other content types are not parsed. A truncated body
// (Envoy's partial-body header, or shorter than its content-length) is never
// parsed: a policy must not decide on half a document.
func parseBody(h *authv3.AttributeContext_HttpRequest, segments []string, protoSet *protoregistry.Files) (any, bool, error) {
	headers := h.GetHeaders()
	if headers[partialBodyHeader] == "true" {
		return nil, true, nil
	}
	contentType, ok := headers["content-type"]
	if !ok {
		return nil, false, nil
	}
	body := h.GetBody()
	if body == "" {
		// pack_as_bytes sends the body as raw_body.
		body = string(h.GetRawBody())
	}
	var parse func(string, string) (any, error)
	switch {
	case strings.Contains(contentType, "application/json"):
		parse = parseJSONBody
	case strings.Contains(contentType, "application/grpc"):
		if protoSet == nil || len(h.GetRawBody()) == 0 {
			return nil, false, nil
		}
		return parseGRPCBody(h.GetRawBody(), segments, protoSet)
	case strings.Contains(contentType, "application/x-www-form-urlencoded"):
		parse = parseFormBody
	case strings.Contains(contentType, "multipart/form-data"):
		parse = parseMultipartBody
	default:
		return nil, false, nil
	}
	if body == "" {
		return nil, false, nil
	}
	if cl, ok := headers["content-length"]; ok {
		length, err := strconv.ParseInt(cl, 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("content-length %q is not a number", cl)
		}
		if length != -1 && length > int64(len(body)) {
			return nil, true, nil
		}
	}
	v, err := parse(body, contentType)
	if err != nil {
		return nil, false, err
	}
	return v, false, nil
}

func parseJSONBody(body, _ string) (any, error) {
	var v any
	if err := util.UnmarshalJSON([]byte(body), &v); err != nil {
		return nil, fmt.Errorf("parse JSON body: %w", err)
	}
	return v, nil
}

func parseFormBody(body, _ string) (any, error) {
	values, err := url.ParseQuery(body)
	if err != nil {
		return nil, fmt.Errorf("parse form body: %w", err)
	}
	return valuesInput(values), nil
}

// parseMultipartBody maps each form field name to its parts' values: a JSON
// part (by its content type) decoded, any other part as a string. Without a
// boundary there are no parts to read: null, as in the plugin.
func parseMultipartBody(body, contentType string) (any, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("parse multipart body: content type %q: %w", contentType, err)
	}
	boundary, ok := params["boundary"]
	if !ok {
		return nil, nil
	}
	r := multipart.NewReader(strings.NewReader(body), boundary)
	fields := map[string]any{}
	for {
		part, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			return fields, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse multipart body: %w", err)
		}
		name := part.FormName()
		if name == "" {
			continue
		}
		b, err := io.ReadAll(part)
		if err != nil {
			return nil, fmt.Errorf("parse multipart body: part %q: %w", name, err)
		}
		var v any = string(b)
		if strings.Contains(part.Header.Get("Content-Type"), "application/json") {
			if err := util.UnmarshalJSON(b, &v); err != nil {
				return nil, fmt.Errorf("parse multipart body: part %q: %w", name, err)
			}
		}
		values, _ := fields[name].([]any)
		fields[name] = append(values, v)
	}
}

// valuesInput is url.Values as policy input: key → list of values.
func valuesInput(values url.Values) map[string]any {
	out := make(map[string]any, len(values))
	for k, vs := range values {
		list := make([]any, len(vs))
		for i, v := range vs {
			list[i] = v
		}
		out[k] = list
	}
	return out
}

// header is a request header by its lower-case name, from the headers map or,
// when Envoy sends them that way (encode_raw_headers), the header map.
func header(h *authv3.AttributeContext_HttpRequest, name string) string {
	if v, ok := h.GetHeaders()[name]; ok {
		return v
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		if strings.EqualFold(hv.GetKey(), name) {
			if hv.GetValue() != "" {
				return hv.GetValue()
			}
			return string(hv.GetRawValue())
		}
	}
	return ""
}

// HTTPCheckRequest is the CheckRequest that Envoy's gRPC client would have
// sent for the request its HTTP client forwarded as r (the http_service
// mode), so both modes give policies the same input:
//
//   - path is the original path and query, without Envoy's path_prefix;
//   - the headers are those Envoy forwarded (the defaults — Host, Method,
//     Path, Content-Length, Authorization — and allowed_headers), lower
//     case, repeated values joined with ",", plus the pseudo-headers
//     :authority, :method and :path that the gRPC client sends;
//   - body is what Envoy forwarded of the original body (with_request_body),
//     truncated when it is not all of it.
//
// The peers (source, destination) are left out: Envoy does not forward them
// in this mode, and the addresses of the HTTP connection are Envoy's own.
func HTTPCheckRequest(r *http.Request, path string, body []byte, truncated bool) *authv3.CheckRequest {
	headers := make(map[string]string, len(r.Header)+4)
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	headers[":authority"] = r.Host
	headers[":method"] = r.Method
	headers[":path"] = path
	if truncated {
		headers[partialBodyHeader] = "true"
	}
	h := &authv3.AttributeContext_HttpRequest{
		Id:      headers["x-request-id"],
		Method:  r.Method,
		Headers: headers,
		Path:    path,
		Host:    r.Host,
		Scheme:  headers["x-forwarded-proto"],
		Size:    int64(len(body)),
	}
	if truncated {
		h.Size = -1
	}
	// The body is a proto string, which must be UTF-8; anything else goes
	// as raw_body, as with Envoy's pack_as_bytes.
	if utf8.Valid(body) {
		h.Body = string(body)
	} else {
		h.RawBody = body
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: h},
	}}
}
