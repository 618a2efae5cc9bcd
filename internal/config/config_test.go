package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/elevatepdp/elevate/internal/workflow"
)

// load parses args as serve's flags with env as the environment.
func load(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	cfg := Default()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	Flags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	err := Load(fs, &cfg, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return cfg, err
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "elevate.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	cfg, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != "127.0.0.1:8181" || cfg.Policy.EvalTimeout != Duration(time.Second) || !cfg.Policy.Watch || cfg.Store.RedisURL != "" {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "server:\n  addr: 127.0.0.1:1000\n  shutdown_timeout: 3s\nlog:\n  level: debug\n")
	tests := map[string]struct {
		args     []string
		env      map[string]string
		addr     string
		level    string
		shutdown time.Duration
	}{
		"file over defaults": {
			args: []string{"--config", file}, addr: "127.0.0.1:1000", level: "debug", shutdown: 3 * time.Second,
		},
		"env over file": {
			args: []string{"--config", file}, env: map[string]string{"ELEVATE_ADDR": "127.0.0.1:2000"},
			addr: "127.0.0.1:2000", level: "debug", shutdown: 3 * time.Second,
		},
		"flag over env": {
			args: []string{"--config", file, "--addr", "127.0.0.1:3000"}, env: map[string]string{"ELEVATE_ADDR": "127.0.0.1:2000"},
			addr: "127.0.0.1:3000", level: "debug", shutdown: 3 * time.Second,
		},
		"config file from env": {
			env:  map[string]string{"ELEVATE_CONFIG": file, "ELEVATE_LOG_LEVEL": "warn"},
			addr: "127.0.0.1:1000", level: "warn", shutdown: 3 * time.Second,
		},
		"no file": {
			args: []string{"--shutdown-timeout", "1m"}, addr: "127.0.0.1:8181", level: "info", shutdown: time.Minute,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := load(t, tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Server.Addr != tc.addr || cfg.Log.Level != tc.level || time.Duration(cfg.Server.ShutdownTimeout) != tc.shutdown {
				t.Fatalf("got addr %q level %q shutdown %s; want %q %q %s",
					cfg.Server.Addr, cfg.Log.Level, cfg.Server.ShutdownTimeout, tc.addr, tc.level, tc.shutdown)
			}
		})
	}
}

func TestRedisURLFromEnv(t *testing.T) {
	cfg, err := load(t, nil, map[string]string{"ELEVATE_REDIS_URL": "redis://127.0.0.1:6379/0"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.RedisURL != "redis://127.0.0.1:6379/0" {
		t.Fatalf("redis url %q", cfg.Store.RedisURL)
	}
}

func TestErrorsNameTheField(t *testing.T) {
	tests := map[string]struct {
		file  string
		args  []string
		env   map[string]string
		field string
		says  string
	}{
		"unknown key in file":      {file: "server:\n  adr: x\n", field: "server.adr", says: "unknown field"},
		"unknown section in file":  {file: "serverz: {}\n", field: "serverz"},
		"wrong type in file":       {file: "server:\n  addr: [1]\n", field: "server.addr", says: "array is not a valid string"},
		"bad duration in file":     {file: "policy:\n  eval_timeout: soon\n", field: "policy.eval_timeout", says: `"soon" is not a valid duration`},
		"not YAML":                 {file: "policy: [\n", says: "line 1"},
		"bad address":              {args: []string{"--addr", "8181"}, field: "server.addr"},
		"zero eval timeout":        {args: []string{"--eval-timeout", "0s"}, field: "policy.eval_timeout"},
		"bad log level":            {env: map[string]string{"ELEVATE_LOG_LEVEL": "loud"}, field: "log.level"},
		"bad log format":           {args: []string{"--log-format", "xml"}, field: "log.format"},
		"bad redis url":            {args: []string{"--redis-url", "http://x"}, field: "store.redis_url"},
		"bad env duration":         {env: map[string]string{"ELEVATE_EVAL_TIMEOUT": "fast"}, field: "ELEVATE_EVAL_TIMEOUT"},
		"bad env bool":             {env: map[string]string{"ELEVATE_WATCH": "maybe"}, field: "ELEVATE_WATCH"},
		"missing config file":      {args: []string{"--config", "/nonexistent/elevate.yaml"}, field: "--config"},
		"negative shutdown (env)":  {env: map[string]string{"ELEVATE_SHUTDOWN_TIMEOUT": "-1s"}, field: "server.shutdown_timeout"},
		"zero justification limit": {file: "limits:\n  justification: 0\n", field: "limits.justification", says: "positive"},
		"negative ticket limit":    {file: "limits:\n  ticket_number: -1\n", field: "limits.ticket_number", says: "positive"},
		"bad schedule_ahead":       {file: "limits:\n  schedule_ahead: 0s\n", field: "limits.schedule_ahead", says: "positive"},
		"unknown limit":            {file: "limits:\n  reason: 5\n", field: "limits.reason", says: "unknown field"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, tc.file))
			}
			_, err := load(t, args, tc.env)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("want *config.Error, got %v", err)
			}
			if tc.field != "" && cerr.Field != tc.field {
				t.Fatalf("field %q, want %q (%v)", cerr.Field, tc.field, err)
			}
			if tc.says != "" && !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

// OPA's sections are kept as written, for OPA's plugin manager, with
// ${VAR} in their strings replaced from the environment as OPA does.
func TestOPASections(t *testing.T) {
	file := writeFile(t, `
services:
  control:
    url: https://bundles.example.com
    credentials:
      bearer: {token: "${BUNDLE_TOKEN}"}
labels: {region: eu}
keys:
  release: {key: "${RELEASE_KEY}", algorithm: RS256}
bundles:
  authz:
    service: control
    resource: /bundles/authz.tar.gz
    signing: {keyid: release}
    polling: {min_delay_seconds: 10, max_delay_seconds: 20}
decision_logs: {service: control, reporting: {min_delay_seconds: 5}}
status:
`)
	cfg, err := load(t, []string{"--config", file}, map[string]string{"BUNDLE_TOKEN": `s3cr"et`, "RELEASE_KEY": "-----BEGIN PUBLIC KEY-----"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sections(); !slices.Equal(got, []string{"labels", "keys", "services", "bundles", "decision_logs"}) {
		t.Fatalf("sections %v (status is empty, so absent)", got)
	}
	if !cfg.HasBundles() {
		t.Fatal("bundles not seen")
	}
	var doc map[string]any
	if err := json.Unmarshal(cfg.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	token := doc["services"].(map[string]any)["control"].(map[string]any)["credentials"].(map[string]any)["bearer"].(map[string]any)["token"]
	key := doc["keys"].(map[string]any)["release"].(map[string]any)["key"]
	polling := doc["bundles"].(map[string]any)["authz"].(map[string]any)["polling"].(map[string]any)
	if token != `s3cr"et` || key != "-----BEGIN PUBLIC KEY-----" || polling["max_delay_seconds"] != float64(20) {
		t.Fatalf("OPA configuration %v", doc)
	}
	if _, ok := doc["status"]; ok {
		t.Fatal("an empty section is handed to OPA")
	}
	var some map[string]any
	if err := json.Unmarshal(cfg.JSON("services", "keys"), &some); err != nil || len(some) != 2 {
		t.Fatalf("selected sections %v (%v)", some, err)
	}
}

func TestOPASectionsErrors(t *testing.T) {
	tests := map[string]struct {
		file  string
		args  []string
		field string
	}{
		// Only the sections Elevate hands to OPA are accepted.
		"discovery":         {file: "discovery: {name: d}\n", field: "discovery"},
		"demo with bundles": {file: "bundles: {authz: {service: s}}\n", args: []string{"--demo", "--demo-credentials", "/tmp/c.json"}, field: "demo.enabled"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, append(tc.args, "--config", writeFile(t, tc.file)), nil)
			var cerr *Error
			if !errors.As(err, &cerr) || cerr.Field != tc.field {
				t.Fatalf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
}

// The limits section reaches the workflow as written, the rest at its
// defaults.
func TestLimits(t *testing.T) {
	cfg, err := load(t, []string{"--config", writeFile(t, "limits:\n  justification: 50\n  schedule_ahead: 24h\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := workflow.DefaultLimits()
	want.Justification, want.ScheduleAhead = 50, 24*time.Hour
	if got := cfg.Limits.Workflow(); got != want {
		t.Fatalf("limits %+v, want %+v", got, want)
	}
	if got := Default().Limits.Workflow(); got != workflow.DefaultLimits() {
		t.Fatalf("default limits %+v, want workflow's %+v", got, workflow.DefaultLimits())
	}
}

// TestEnvoyAndCachingOptions: the OPA-Envoy plugin's options and OPA's
// caching section, with their defaults.
func TestEnvoyAndCachingOptions(t *testing.T) {
	cfg, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Decisions.EnvoyDecisionIDHeader || cfg.Decisions.EnvoySkipRequestBodyParse || cfg.Decisions.EnvoyProtoDescriptor != "" {
		t.Errorf("defaults: %+v", cfg.Decisions)
	}
	if c, err := cfg.CachingConfig(); err != nil || c.InterQueryBuiltinCache.MaxSizeBytes == nil {
		t.Errorf("default caching = %+v, %v; want OPA's defaults", c, err)
	}
	cfg, err = load(t, []string{"--config", writeFile(t, `decisions:
  envoy_decision_id_header: false
  envoy_skip_request_body_parse: true
  envoy_proto_descriptor: /etc/elevate/api.pb
caching:
  inter_query_builtin_cache:
    max_size_bytes: 1000
`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Decisions.EnvoyDecisionIDHeader || !cfg.Decisions.EnvoySkipRequestBodyParse || cfg.Decisions.EnvoyProtoDescriptor != "/etc/elevate/api.pb" {
		t.Errorf("decisions: %+v", cfg.Decisions)
	}
	c, err := cfg.CachingConfig()
	if err != nil || c.InterQueryBuiltinCache.MaxSizeBytes == nil || *c.InterQueryBuiltinCache.MaxSizeBytes != 1000 {
		t.Errorf("caching = %+v, %v", c, err)
	}
	_, err = load(t, []string{"--config", writeFile(t, "caching:\n  inter_query_builtin_cache:\n    max_size_bytes: many\n")}, nil)
	var cerr *Error
	if !errors.As(err, &cerr) || cerr.Field != "caching" {
		t.Errorf("bad caching: %v, want an error naming caching", err)
	}
}

// Unset, decisions.require_token is true outside demo mode; only an
// explicit false opens the decision endpoints.
func TestDecisionsTokenRequiredUnlessOpened(t *testing.T) {
	demo := []string{"--demo", "--demo-credentials", filepath.Join(t.TempDir(), "c.json")}
	tests := map[string]struct {
		file string
		demo bool
		want bool
	}{
		"unset":               {want: true},
		"unset, demo":         {demo: true, want: false},
		"explicit false":      {file: "decisions:\n  require_token: false\n", want: false},
		"explicit true":       {file: "decisions:\n  require_token: true\n", want: true},
		"explicit true, demo": {file: "decisions:\n  require_token: true\n", demo: true, want: true},
		"other decisions set": {file: "decisions:\n  subject_field: who\n", want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var args []string
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, tc.file))
			}
			if tc.demo {
				args = append(args, demo...)
			}
			cfg, err := load(t, args, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.TokenRequired(); got != tc.want {
				t.Errorf("TokenRequired() = %v, want %v", got, tc.want)
			}
		})
	}
}
