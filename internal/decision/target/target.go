// Package target parses the request target (path and query) of a request a
// gateway asks about, for every decision protocol: forward-auth and Envoy's
// ext_authz in both modes. It refuses what a policy and the upstream could
// read differently, rather than guess: a policy that denies "?debug" or the
// segment "admin" must see the request the upstream will serve.
package target

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrAmbiguous is wrapped by every refusal: the target cannot be parsed, or
// not in only one way.
var ErrAmbiguous = errors.New("ambiguous request target")

// Target is a parsed request target.
type Target struct {
	// Path is the percent-decoded path, without the query.
	Path string
	// Segments are Path's segments as the OPA-Envoy plugin gives them
	// (parsed_path): leading slashes dropped, then split on "/", so "/" is
	// [""] and "//admin/x" is ["admin", "x"].
	Segments []string
	// Query is the query's parameters (parsed_query).
	Query url.Values
}

// Parse parses raw, a path with an optional query as sent on the wire (not
// decoded). As the OPA-Envoy plugin does, it refuses a query that
// url.ParseQuery rejects (a ";" separator, a bad percent escape) and a path
// with a bad escape: dropping the bad pair would hide it from the policy.
// Beyond the plugin, it refuses paths that decode in more than one way:
//
//   - an escaped "/" or "\" (%2F, %5C), which one server takes as a
//     separator and another as part of a segment, and a raw "\";
//   - a segment that still holds an escape once decoded (%252e is "%2e"),
//     which a second decoder would decode again;
//   - the dot segments "." and ".." (also escaped), which the upstream may
//     resolve to another path;
//   - control characters (%00, %0d%0a...), in the path or the query.
func Parse(raw string) (Target, error) {
	rawPath, rawQuery, _ := strings.Cut(raw, "?")
	if strings.ContainsRune(rawPath, '\\') {
		return Target{}, fmt.Errorf(`%w: the path holds "\"`, ErrAmbiguous)
	}
	lower := strings.ToLower(rawPath)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return Target{}, fmt.Errorf(`%w: the path holds an escaped "/" or "\"`, ErrAmbiguous)
	}
	path, err := url.PathUnescape(rawPath)
	if err != nil {
		return Target{}, fmt.Errorf("%w: path: %w", ErrAmbiguous, err)
	}
	if hasControl(path) {
		return Target{}, fmt.Errorf("%w: the path holds a control character", ErrAmbiguous)
	}
	segments := strings.Split(strings.TrimLeft(path, "/"), "/")
	for _, s := range segments {
		if s == "." || s == ".." {
			return Target{}, fmt.Errorf("%w: the path holds the dot segment %q", ErrAmbiguous, s)
		}
		if hasEscape(s) {
			return Target{}, fmt.Errorf("%w: the path segment %q is encoded twice", ErrAmbiguous, s)
		}
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Target{}, fmt.Errorf("%w: query: %w", ErrAmbiguous, err)
	}
	for k, vs := range query {
		if hasControl(k) {
			return Target{}, fmt.Errorf("%w: a query parameter's name holds a control character", ErrAmbiguous)
		}
		for _, v := range vs {
			if hasControl(v) {
				return Target{}, fmt.Errorf("%w: query parameter %q holds a control character", ErrAmbiguous, k)
			}
		}
	}
	return Target{Path: path, Segments: segments, Query: query}, nil
}

// hasControl: an ASCII control character (NUL, CR, LF, DEL...).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// hasEscape: s holds a valid percent escape.
func hasEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
