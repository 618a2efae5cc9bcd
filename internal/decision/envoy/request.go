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
	"google.golang.org/protobuf/encoding/protojson"
)

// errNoHTTP: a CheckRequest without attributes.request.http is not a request
// Envoy's HTTP filter sends; there is nothing to decide on.
var errNoHTTP = errors.New("check request has no attributes.request.http")

// partialBodyHeader is set by Envoy (both modes) when it forwards only the
// first max_request_bytes of a body (allow_partial_message).
const partialBodyHeader = "x-envoy-auth-partial-body"

// Input is the policy input for req, as the OPA-Envoy plugin builds it for a
// v3 CheckRequest:
//
//   - attributes: the CheckRequest's attributes in protojson (lower camel
//     case keys, such as attributes.source.address.socketAddress.portValue);
//   - parsed_path: the path's segments, without the query;
//   - parsed_query: each query parameter's list of values;
//   - parsed_body: a JSON, form or multipart body, or null (another content
//     type, no body, or a truncated one);
//   - truncated_body: whether Envoy forwarded only part of the body;
//   - version: {"ext_authz": "v3", "encoding": "protojson"}.
//
// It fails, and the request is denied, when there is no HTTP request or
// when its path or its body of a parsed content type is malformed.
func Input(req *authv3.CheckRequest) (map[string]any, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return nil, errNoHTTP
	}
	b, err := protojson.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode check request: %w", err)
	}
	var input map[string]any
	if err := util.UnmarshalJSON(b, &input); err != nil {
		return nil, fmt.Errorf("decode check request: %w", err)
	}
	parsedPath, parsedQuery, err := parsePath(h.GetPath())
	if err != nil {
		return nil, err
	}
	parsedBody, truncated, err := parseBody(h)
	if err != nil {
		return nil, err
	}
	input["parsed_path"] = parsedPath
	input["parsed_query"] = parsedQuery
	input["parsed_body"] = parsedBody
	input["truncated_body"] = truncated
	input["version"] = map[string]any{"ext_authz": "v3", "encoding": "protojson"}
	return input, nil
}

// parsePath splits path into segments (leading slashes dropped, so "/" is
// [""], as in the plugin) and its query into lists of values.
//
// Unlike the plugin it reads the path as a request target: "//admin/x" is
// the path ["admin", "x"], not host "admin" and path ["x"], so a double
// slash cannot hide a segment from a policy.
func parsePath(path string) ([]any, map[string]any, error) {
	if path == "" {
		// CONNECT and the like carry no path.
		return []any{""}, map[string]any{}, nil
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, nil, fmt.Errorf("parse path: %w", err)
	}
	segments := strings.Split(strings.TrimLeft(u.Path, "/"), "/")
	parsedPath := make([]any, len(segments))
	for i, s := range segments {
		parsedPath[i] = s
	}
	return parsedPath, valuesInput(u.Query()), nil
}

// parseBody parses a JSON, form (application/x-www-form-urlencoded) or
// multipart/form-data body, as the plugin does; other content types are not
// parsed. A truncated body is never parsed: a policy must not decide on half
// a document.
func parseBody(h *authv3.AttributeContext_HttpRequest) (any, bool, error) {
	body := h.GetBody()
	if body == "" {
		// pack_as_bytes sends the body as raw_body.
		body = string(h.GetRawBody())
	}
	if body == "" {
		return nil, false, nil
	}
	contentType := strings.ToLower(header(h, "content-type"))
	var parse func(string, string) (any, error)
	switch {
	case strings.Contains(contentType, "application/json"):
		parse = parseJSONBody
	case strings.HasPrefix(contentType, "application/x-www-form-urlencoded"):
		parse = parseFormBody
	case strings.HasPrefix(contentType, "multipart/form-data"):
		parse = parseMultipartBody
	default:
		return nil, false, nil
	}
	truncated, err := isTruncated(h, len(body))
	if err != nil || truncated {
		return nil, truncated, err
	}
	v, err := parse(body, header(h, "content-type"))
	if err != nil {
		return nil, false, err
	}
	return v, false, nil
}

// isTruncated: the body is shorter than the content-length it came with
// (the plugin's test), or Envoy says it forwarded part of it.
func isTruncated(h *authv3.AttributeContext_HttpRequest, n int) (bool, error) {
	if header(h, partialBodyHeader) == "true" {
		return true, nil
	}
	cl := header(h, "content-length")
	if cl == "" {
		return false, nil
	}
	length, err := strconv.ParseInt(cl, 10, 64)
	if err != nil {
		return false, fmt.Errorf("content-length %q is not a number", cl)
	}
	return length > int64(n), nil
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
// part (by its content type) decoded, any other part as a string.
func parseMultipartBody(body, contentType string) (any, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return nil, fmt.Errorf("multipart body without a boundary in %q", contentType)
	}
	r := multipart.NewReader(strings.NewReader(body), params["boundary"])
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
		if strings.Contains(strings.ToLower(part.Header.Get("Content-Type")), "application/json") {
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
