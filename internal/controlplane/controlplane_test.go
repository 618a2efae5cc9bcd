package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/config"
)

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// opa reads OPA's sections from a JSON document, as config.Load does.
func opa(t *testing.T, doc string) config.OPAConfig {
	t.Helper()
	var c config.OPAConfig
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

const service = `"services": {"control": {"url": "http://127.0.0.1:1"}}`

// A section OPA refuses stops the server with a configuration error that
// names it (exit 2).
func TestNewNamesTheSectionOPARefuses(t *testing.T) {
	tests := map[string]struct {
		doc   string
		field string
		says  string
	}{
		"labels not strings":       {doc: `{"labels": {"team": ["a"]}}`, field: "labels"},
		"key without key material": {doc: `{"keys": {"k": {"algorithm": "RS256"}}}`, field: "keys"},
		"services not an object":   {doc: `{"services": "http://127.0.0.1:1"}`, field: "services"},
		"bundle on no service":     {doc: `{` + service + `, "bundles": {"authz": {"service": "nowhere"}}}`, field: "bundles", says: "nowhere"},
		"bundle signed by no key":  {doc: `{` + service + `, "bundles": {"authz": {"service": "control", "signing": {"keyid": "missing"}}}}`, field: "bundles", says: "missing"},
		"bad polling":              {doc: `{` + service + `, "bundles": {"authz": {"service": "control", "polling": {"min_delay_seconds": 10, "max_delay_seconds": 1}}}}`, field: "bundles"},
		"decision logs to nowhere": {doc: `{` + service + `, "decision_logs": {"service": "nowhere"}}`, field: "decision_logs", says: "nowhere"},
		"status to nowhere":        {doc: `{` + service + `, "status": {"service": "nowhere"}}`, field: "status", says: "nowhere"},
		"misspelt option":          {doc: `{` + service + `, "bundles": {"authz": {"service": "control", "signin": {"keyid": "k"}}}}`, field: "bundles.authz.signin", says: "unknown field"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(context.Background(), opa(t, tc.doc), Options{Logger: quietLog()})
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("want *config.Error, got %v", err)
			}
			if cerr.Field != tc.field || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q (field %q); want field %q saying %q", err, cerr.Field, tc.field, tc.says)
			}
		})
	}
}

func TestNewRegistersOPAsPlugins(t *testing.T) {
	p, err := New(context.Background(), opa(t, `{`+service+`, "labels": {"replica": "a"},
		"bundles": {"authz": {"service": "control"}},
		"decision_logs": {"service": "control"},
		"status": {"service": "control"}}`), Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Bundles() || p.DecisionLogs() == nil {
		t.Fatalf("bundles %v, decision logs %v", p.Bundles(), p.DecisionLogs())
	}
	for _, name := range []string{"bundle", "decision_logs", "status", "discovery"} {
		if p.Manager().Plugin(name) == nil {
			t.Errorf("plugin %s not registered (have %v)", name, p.Manager().Plugins())
		}
	}
	if l := p.Manager().Labels(); l["replica"] != "a" || l["id"] == "" {
		t.Errorf("labels %v", l)
	}
	p.Stop(context.Background()) // never started: nothing to stop

	// Started against a service that is not there: not ready, saying why.
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.StopWithin(time.Second)
	if err := p.BundlesActivated(context.Background()); err == nil || !strings.Contains(err.Error(), "authz: not activated yet") {
		t.Fatalf("readiness: %v", err)
	}
}
