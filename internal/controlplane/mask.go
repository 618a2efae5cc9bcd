package controlplane

import (
	"context"
	"regexp"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage"

	elevatelog "github.com/elevatepdp/elevate/internal/logging"
)

// DecisionLogger hands decisions to OPA's decision-log plugin with
// Elevate's built-in mask applied first, unless the policy defines the
// plugin's mask rule (decision_logs.mask_decision, data.system.log.mask by
// default): then that rule alone decides what is masked, as in OPA.
//
// The built-in mask replaces the value of every header carrying a
// credential (elevatelog.CredentialHeaders, and the subject header: MaskHeaders) in
// the input's attributes.request.http.headers and headerMap, the shape of
// ext_authz input in both modes (and of any Data API input built like it),
// and a bearer token in the query (access_token, RFC 6750) in
// attributes.request.http.path, the :path header, parsed_query and
// forward-auth's query. A gateway forwards end users' bearer tokens and
// cookies there; a decision-log service must never receive them.
type DecisionLogger struct {
	plugin  *logs.Plugin
	manager *plugins.Manager
	// extra are more headers to mask (MaskHeaders), in lower case.
	extra []string

	mu sync.Mutex
	// compiler is the one masked was decided for.
	compiler *ast.Compiler
	path     string
	own      bool
}

// MaskHeaders adds headers to the built-in mask: the configured subject
// header (decisions.subject_header), whose value the event's input.subject
// already holds, in case a gateway puts a token there. Call it before the
// first Log.
func (l *DecisionLogger) MaskHeaders(names ...string) {
	for _, n := range names {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			l.extra = append(l.extra, n)
		}
	}
}

// Log masks info (unless the policy masks) and hands it to the plugin.
func (l *DecisionLogger) Log(ctx context.Context, info *server.Info) error {
	if !l.policyMasks() && info.Input != nil {
		masked, changed := l.maskInput(*info.Input)
		if changed {
			v, err := ast.InterfaceToValue(masked)
			if err != nil {
				return err
			}
			info.Input, info.InputAST = &masked, v
		}
	}
	return l.plugin.Log(ctx, info)
}

// policyMasks is whether the compiled policy defines the plugin's mask
// rule; asked once per compiler (a new policy is a new compiler).
func (l *DecisionLogger) policyMasks() bool {
	c := l.manager.GetCompiler()
	path := "/system/log/mask"
	if p := l.plugin.Config().MaskDecision; p != nil {
		path = *p
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c == l.compiler && path == l.path {
		return l.own
	}
	l.compiler, l.path, l.own = c, path, false
	if c == nil {
		return false
	}
	p, ok := storage.ParsePathEscaped(path)
	if !ok {
		// The plugin refuses such a path at configuration: nothing masks.
		return false
	}
	l.own = len(c.GetRules(p.Ref(ast.DefaultRootDocument))) > 0
	return l.own
}

// maskInput returns input with the credentials masked, copying only what
// it changes (the evaluated input is not modified).
func (l *DecisionLogger) maskInput(input any) (any, bool) {
	obj, ok := input.(map[string]any)
	if !ok {
		return input, false
	}
	top := copyMap(obj)
	changed := false
	// A bearer token in the query (RFC 6750's access_token): ext_authz's
	// parsed_query, forward-auth's query.
	for _, k := range []string{"parsed_query", "query"} {
		if q, ok := obj[k].(map[string]any); ok {
			if _, ok := q[accessToken]; ok {
				m := copyMap(q)
				m[accessToken] = []any{elevatelog.Masked}
				top[k], changed = m, true
			}
		}
	}
	attrs, _ := obj["attributes"].(map[string]any)
	req, _ := attrs["request"].(map[string]any)
	h, _ := req["http"].(map[string]any)
	if h == nil {
		return top, changed
	}
	out := copyMap(h)
	httpChanged := false
	if p, ok := h["path"].(string); ok {
		if masked := maskQueryToken(p); masked != p {
			out["path"], httpChanged = masked, true
		}
	}
	if headers, ok := h["headers"].(map[string]any); ok {
		m := copyMap(headers)
		for k, v := range headers {
			s, ok := v.(string)
			switch {
			case !ok:
			case l.maskedHeader(k):
				m[k], httpChanged = elevatelog.MaskValue(k, s), true
			case k == ":path" && maskQueryToken(s) != s:
				m[k], httpChanged = maskQueryToken(s), true
			}
		}
		out["headers"] = m
	}
	if hm, ok := h["headerMap"].(map[string]any); ok {
		if list, ok := hm["headers"].([]any); ok {
			entries := make([]any, len(list))
			for i, e := range list {
				entries[i] = e
				kv, ok := e.(map[string]any)
				key, _ := kv["key"].(string)
				if !ok || !l.maskedHeader(key) {
					continue
				}
				m := copyMap(kv)
				if s, ok := kv["value"].(string); ok {
					m["value"] = elevatelog.MaskValue(key, s)
				}
				if _, ok := kv["rawValue"]; ok {
					// Bytes, base64: dropped, the value says it was masked.
					delete(m, "rawValue")
					if _, ok := m["value"]; !ok {
						m["value"] = elevatelog.Masked
					}
				}
				entries[i], httpChanged = m, true
			}
			m := copyMap(hm)
			m["headers"] = entries
			out["headerMap"] = m
		}
	}
	if !httpChanged {
		return top, changed
	}
	r := copyMap(req)
	r["http"] = out
	a := copyMap(attrs)
	a["request"] = r
	top["attributes"] = a
	return top, true
}

// accessToken is RFC 6750's query parameter for a bearer token.
const accessToken = "access_token"

// queryToken finds access_token's value in a path's query.
var queryToken = regexp.MustCompile(`([?&;]access_token=)[^&;#]*`)

// maskQueryToken masks access_token's value in a path with a query.
func maskQueryToken(path string) string {
	if !strings.Contains(path, accessToken) {
		return path
	}
	return queryToken.ReplaceAllString(path, "${1}"+elevatelog.Masked)
}

func (l *DecisionLogger) maskedHeader(name string) bool {
	if elevatelog.IsCredentialHeader(name) {
		return true
	}
	for _, n := range l.extra {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
