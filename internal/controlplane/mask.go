package controlplane

import (
	"context"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage"
)

// DecisionLogger hands decisions to OPA's decision-log plugin with
// Elevate's built-in mask applied first, unless the policy defines the
// plugin's mask rule (decision_logs.mask_decision, data.system.log.mask by
// default): then that rule alone decides what is masked, as in OPA.
//
// The built-in mask replaces the value of every header carrying a
// credential (BuiltinMaskedHeaders) in the input's
// attributes.request.http.headers and headerMap, the shape of ext_authz
// input in both modes (and of any Data API input built like it). A gateway
// forwards end users' bearer tokens and cookies there; a decision-log
// service must never receive them.
type DecisionLogger struct {
	plugin  *logs.Plugin
	manager *plugins.Manager

	mu sync.Mutex
	// compiler is the one masked was decided for.
	compiler *ast.Compiler
	path     string
	own      bool
}

// BuiltinMaskedHeaders are the headers the built-in mask replaces, in lower
// case (names are matched in any case): credentials of the end user
// (Authorization, with any scheme: the subject's bearer token, Basic...),
// of a proxy, cookies both ways, and a gateway's decision client token.
var BuiltinMaskedHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-elevate-client-token"}

// Masked is what a masked header's value becomes; an Authorization keeps
// its scheme ("Bearer <masked>").
const Masked = "<masked>"

// Log masks info (unless the policy masks) and hands it to the plugin.
func (l *DecisionLogger) Log(ctx context.Context, info *server.Info) error {
	if !l.policyMasks() && info.Input != nil {
		masked, changed := maskInput(*info.Input)
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

// maskInput returns input with the credential headers masked, copying only
// what it changes (the evaluated input is not modified).
func maskInput(input any) (any, bool) {
	obj, ok := input.(map[string]any)
	if !ok {
		return input, false
	}
	attrs, _ := obj["attributes"].(map[string]any)
	req, _ := attrs["request"].(map[string]any)
	h, _ := req["http"].(map[string]any)
	if h == nil {
		return input, false
	}
	out := copyMap(h)
	changed := false
	if headers, ok := h["headers"].(map[string]any); ok {
		m := copyMap(headers)
		for k, v := range headers {
			if s, ok := v.(string); ok && maskedHeader(k) {
				m[k], changed = maskValue(k, s), true
			}
		}
		out["headers"] = m
	}
	if hm, ok := h["headerMap"].(map[string]any); ok {
		if list, ok := hm["headers"].([]any); ok {
			l := make([]any, len(list))
			for i, e := range list {
				l[i] = e
				kv, ok := e.(map[string]any)
				key, _ := kv["key"].(string)
				if !ok || !maskedHeader(key) {
					continue
				}
				m := copyMap(kv)
				if s, ok := kv["value"].(string); ok {
					m["value"] = maskValue(key, s)
				}
				if _, ok := kv["rawValue"]; ok {
					// Bytes, base64: dropped, the value says it was masked.
					delete(m, "rawValue")
					if _, ok := m["value"]; !ok {
						m["value"] = Masked
					}
				}
				l[i], changed = m, true
			}
			m := copyMap(hm)
			m["headers"] = l
			out["headerMap"] = m
		}
	}
	if !changed {
		return input, false
	}
	r := copyMap(req)
	r["http"] = out
	a := copyMap(attrs)
	a["request"] = r
	top := copyMap(obj)
	top["attributes"] = a
	return top, true
}

func maskedHeader(name string) bool {
	for _, n := range BuiltinMaskedHeaders {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

func maskValue(name, v string) string {
	if strings.EqualFold(name, "authorization") || strings.EqualFold(name, "proxy-authorization") {
		if scheme, _, ok := strings.Cut(v, " "); ok && scheme != "" {
			return scheme + " " + Masked
		}
	}
	return Masked
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
