// Package config is the configuration of `elevate serve`: defaults, an
// optional YAML file, ELEVATE_* environment variables and flags, in rising
// order of precedence, validated in one place with errors naming the field.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/workflow"
)

// Config is everything `elevate serve` reads.
type Config struct {
	// File is the YAML file the rest was read from (--config, ELEVATE_CONFIG).
	File      string          `json:"-"`
	Server    ServerConfig    `json:"server"`
	Policy    PolicyConfig    `json:"policy"`
	Store     StoreConfig     `json:"store"`
	Identity  identity.Config `json:"identity"`
	Decisions DecisionsConfig `json:"decisions"`
	Audit     AuditConfig     `json:"audit"`
	Limits    LimitsConfig    `json:"limits"`
	Demo      DemoConfig      `json:"demo"`
	Log       LogConfig       `json:"log"`
	// OPAConfig is OPA's own configuration sections, at the top level as in
	// OPA's configuration file.
	OPAConfig
}

// OPAConfig is OPA's own configuration (services, labels, keys, bundles,
// decision_logs, status), written as in OPA's configuration file. The
// sections are kept as written and handed to OPA's plugin manager, which
// gives them OPA's meaning and validates them when the server starts. As in
// OPA's configuration file, ${VAR} in a string value is replaced by the
// environment variable VAR.
type OPAConfig struct {
	// Services are the control-plane servers (bundle, decision-log and status
	// services): URL, headers, TLS and credentials.
	Services json.RawMessage `json:"services,omitempty"`
	// Labels name this replica in decision logs and status reports (OPA adds
	// id and version).
	Labels json.RawMessage `json:"labels,omitempty"`
	// Keys verify bundle signatures (bundles.*.signing.keyid).
	Keys json.RawMessage `json:"keys,omitempty"`
	// Bundles, when set, are the policy: downloaded from a service, polled,
	// verified when signing is configured and activated atomically by OPA's
	// bundle plugin. policy.paths are then loaded beside them, as `opa run`
	// loads paths, and the built-in policies are not served.
	Bundles json.RawMessage `json:"bundles,omitempty"`
	// DecisionLogs sends every decision to OPA's decision-log plugin, which
	// buffers, masks (data.system.log.mask), drops (data.system.log.drop)
	// and uploads them to a service or prints them.
	DecisionLogs json.RawMessage `json:"decision_logs,omitempty"`
	// Status reports bundle activations and plugin states to a status service.
	Status json.RawMessage `json:"status,omitempty"`
	// Caching configures the inter-query builtin cache every evaluation
	// shares (http.send with cache or force_cache, regex and glob), as in
	// OPA: inter_query_builtin_cache.max_size_bytes and the like. Absent
	// means OPA's defaults.
	Caching json.RawMessage `json:"caching,omitempty"`
}

// CachingConfig is the caching section as OPA parses it (OPA's defaults
// when absent).
func (o OPAConfig) CachingConfig() (*cache.Config, error) {
	var raw []byte
	if set(o.Caching) {
		raw = o.Caching
	}
	return cache.ParseCachingConfig(raw)
}

// sections are the OPA sections by name, in the order they depend on each
// other (services name keys; bundles, decision_logs and status name
// services and keys).
func (o *OPAConfig) sections() []struct {
	Name string
	Raw  *json.RawMessage
} {
	return []struct {
		Name string
		Raw  *json.RawMessage
	}{
		{"labels", &o.Labels}, {"keys", &o.Keys}, {"services", &o.Services},
		{"bundles", &o.Bundles}, {"decision_logs", &o.DecisionLogs}, {"status", &o.Status},
	}
}

// Sections are the names of the sections set, in dependency order.
func (o OPAConfig) Sections() []string {
	var names []string
	for _, s := range o.sections() {
		if set(*s.Raw) {
			names = append(names, s.Name)
		}
	}
	return names
}

// HasBundles is whether bundles are configured, making them the policy.
func (o OPAConfig) HasBundles() bool { return set(o.Bundles) }

// JSON is OPA's configuration document made of the named sections (all set
// ones when none is named), for OPA's plugin manager.
func (o OPAConfig) JSON(names ...string) []byte {
	doc := map[string]json.RawMessage{}
	for _, s := range o.sections() {
		if set(*s.Raw) && (len(names) == 0 || slices.Contains(names, s.Name)) {
			doc[s.Name] = *s.Raw
		}
	}
	b, _ := json.Marshal(doc) // raw messages that came from a parsed document
	return b
}

// set is whether a section holds something: a YAML key with nothing under
// it is null, as if it were absent.
func set(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// envRef is a reference to an environment variable in OPA's configuration.
var envRef = regexp.MustCompile(`\$\{([^}]+)\}`)

// expandEnv replaces ${VAR} in the string values of the OPA sections with
// the environment variable VAR (empty when unset), as OPA does in its
// configuration file, so credentials need not be written into the file.
func (o *OPAConfig) expandEnv(getenv func(string) (string, bool)) error {
	for _, s := range o.sections() {
		if !set(*s.Raw) || !bytes.Contains(*s.Raw, []byte("${")) {
			continue
		}
		var doc any
		if err := json.Unmarshal(*s.Raw, &doc); err != nil {
			return &Error{Field: s.Name, Err: err}
		}
		b, err := json.Marshal(expandStrings(doc, func(v string) string {
			return envRef.ReplaceAllStringFunc(v, func(ref string) string {
				val, _ := getenv(envRef.FindStringSubmatch(ref)[1])
				return val
			})
		}))
		if err != nil {
			return &Error{Field: s.Name, Err: err}
		}
		*s.Raw = b
	}
	return nil
}

func expandStrings(doc any, f func(string) string) any {
	switch v := doc.(type) {
	case string:
		return f(v)
	case []any:
		for i := range v {
			v[i] = expandStrings(v[i], f)
		}
	case map[string]any:
		for k := range v {
			v[k] = expandStrings(v[k], f)
		}
	}
	return doc
}

// ServerConfig is the HTTP listener.
type ServerConfig struct {
	// Addr is the host:port the HTTP API listens on.
	Addr string `json:"addr"`
	// GRPCAddr is the host:port Envoy's ext_authz gRPC service listens on.
	GRPCAddr string `json:"grpc_addr"`
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// after SIGTERM.
	ShutdownTimeout Duration `json:"shutdown_timeout"`
	// MaxBodyBytes is the largest request body accepted (413 above it).
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// ReadTimeout bounds reading one HTTP request, body included (headers
	// within the lesser of it and 10s), and a gRPC connection's handshake:
	// a client sending a byte at a time is cut off when it runs out.
	ReadTimeout Duration `json:"read_timeout"`
}

// PolicyConfig is where policies come from and how they are evaluated.
type PolicyConfig struct {
	// Paths are Rego/JSON/YAML files, directories or bundle tarballs; empty
	// means the policies and demo data built into the binary.
	Paths []string `json:"paths"`
	// EvalTimeout bounds one policy evaluation; a decision that runs out of
	// time is a denial. It is wall-clock time, waiting for a CPU included,
	// so it stops a runaway policy rather than bounding latency: under
	// saturation a 60 µs evaluation can wait well over 100 ms for its turn,
	// and a tight bound would turn load into denials. A gateway's own
	// timeout bounds what its callers wait.
	EvalTimeout Duration `json:"eval_timeout"`
	// Watch reloads the policy when a file under Paths changes.
	Watch bool `json:"watch"`
}

// StoreConfig is where assignments, requests and elevations are kept.
type StoreConfig struct {
	// RedisURL is a redis:// or rediss:// URL (with ?master_name= for
	// Sentinel, ?cluster=true or several addr= for Cluster); empty means an
	// in-process store whose state is neither shared nor kept.
	RedisURL string `json:"redis_url"`
	// CacheSize is how many principals' holdings each replica keeps in
	// memory for decisions, invalidated by Redis as they change (0: none;
	// every decision reads Redis).
	CacheSize int `json:"cache_size"`
}

// DecisionsConfig is how gateways ask for decisions.
type DecisionsConfig struct {
	// RequireToken makes every decision endpoint (the Data API,
	// forward-auth, ext_authz HTTP and gRPC) take a decision client's token
	// (identity.static_tokens, kind client). Unset, it is true outside demo
	// mode: the Data API adds the store's live elevations to its input, so
	// an open one tells any caller who holds privilege right now. Only an
	// explicit false opens them. See TokenRequired.
	RequireToken *bool `json:"require_token,omitempty"`
	// SubjectField is the Data API input field naming the subject whose
	// elevations are added to the input.
	SubjectField string `json:"subject_field"`
	// SubjectHeader, when set, is a header a trusted gateway sets to the
	// subject it authenticated (forward-auth, ext_authz). Only set it when
	// nothing else can reach Elevate's decision endpoints.
	SubjectHeader string `json:"subject_header"`
	// ForwardAuthQuery is the policy forward-auth asks.
	ForwardAuthQuery string `json:"forward_auth_query"`
	// EnvoyQuery is the policy Envoy's ext_authz asks (gRPC and HTTP).
	EnvoyQuery string `json:"envoy_query"`
	// MetricQueries are Data API queries (data.app.allow) the evaluation
	// metric names, beside the built-in entrypoints, data.pim.authz.allow,
	// forward_auth_query and envoy_query; every other query is counted as
	// "other", so callers cannot create series at will.
	MetricQueries []string `json:"metric_queries"`
	// EnvoyDryRun allows every ext_authz request and only logs the real
	// decision, to try a policy before enforcing it.
	EnvoyDryRun bool `json:"envoy_dry_run"`
	// EnvoySkipRequestBodyParse leaves parsed_body and truncated_body out
	// of the ext_authz input (the OPA-Envoy plugin's
	// skip-request-body-parse): for policies that never read the body.
	EnvoySkipRequestBodyParse bool `json:"envoy_skip_request_body_parse"`
	// EnvoyProtoDescriptor is a file of a protobuf FileDescriptorSet
	// (protoc --include_imports --descriptor_set_out); with it, the body
	// of an application/grpc request that Envoy sends as raw_body
	// (with_request_body.pack_as_bytes) is parsed_body, the method's input
	// message in protojson (the plugin's proto-descriptor).
	EnvoyProtoDescriptor string `json:"envoy_proto_descriptor"`
	// EnvoyDecisionIDHeader adds x-elevate-decision-id to every ext_authz
	// answer (default true), unless the policy sets that header itself.
	EnvoyDecisionIDHeader bool `json:"envoy_decision_id_header"`
}

// TokenRequired is whether decision endpoints need a decision client's
// token: decisions.require_token when given, else true unless in demo mode.
func (c Config) TokenRequired() bool {
	if c.Decisions.RequireToken != nil {
		return *c.Decisions.RequireToken
	}
	return !c.Demo.Enabled
}

// AuditConfig is how long the audit trail is kept. Trimming records an
// anchor, so the rest of the chain still verifies.
type AuditConfig struct {
	// MaxAge drops events older than this (0: keep all ages).
	MaxAge Duration `json:"max_age"`
	// MaxEvents keeps at most this many of the newest events (0: no limit;
	// the in-process store keeps at most 100000 anyway).
	MaxEvents int `json:"max_events"`
}

// LimitsConfig bounds what callers of the API may send. Each is checked
// before anything is stored or audited, and a request over a limit is 422
// naming the field and the limit. Lengths are in characters (Unicode code
// points), counted as sent.
type LimitsConfig struct {
	// Justification is the most characters of a justification or a reason
	// (activation, extension, approval, denial, cancellation, deactivation,
	// assignment).
	Justification int `json:"justification"`
	// TicketSystem is the most characters of a ticket's system.
	TicketSystem int `json:"ticket_system"`
	// TicketNumber is the most characters of a ticket's number.
	TicketNumber int `json:"ticket_number"`
	// Scope is the most characters of a scope in an activation or an
	// assignment.
	Scope int `json:"scope"`
	// ScheduleAhead is how far ahead of now the start of an activation or
	// an assignment may be.
	ScheduleAhead Duration `json:"schedule_ahead"`
}

// defaultLimits are workflow's defaults, so they are written once.
func defaultLimits() LimitsConfig {
	d := workflow.DefaultLimits()
	return LimitsConfig{Justification: d.Justification, TicketSystem: d.TicketSystem, TicketNumber: d.TicketNumber,
		Scope: d.Scope, ScheduleAhead: Duration(d.ScheduleAhead)}
}

// Workflow is l as the workflow takes it.
func (l LimitsConfig) Workflow() workflow.Limits {
	return workflow.Limits{Justification: l.Justification, TicketSystem: l.TicketSystem, TicketNumber: l.TicketNumber,
		Scope: l.Scope, ScheduleAhead: time.Duration(l.ScheduleAhead)}
}

// DemoConfig is the demo tenant of the product brief.
type DemoConfig struct {
	// Enabled loads the demo tenant's assignments and gives each demo
	// principal a static token and a TOTP secret.
	Enabled bool `json:"enabled"`
	// Credentials is the file the demo tokens and TOTP secrets are written
	// to (mode 0600); they are never logged.
	Credentials string `json:"credentials"`
}

// LogConfig is the process log.
type LogConfig struct {
	// Level is one of trace, debug, info, warn, error.
	Level string `json:"level"`
	// Format is json (default) or text.
	Format string `json:"format"`
}

// Default is the configuration with nothing set.
func Default() Config {
	return Config{
		Server: ServerConfig{Addr: "127.0.0.1:8181", GRPCAddr: "127.0.0.1:9191", ShutdownTimeout: Duration(10 * time.Second), MaxBodyBytes: 1 << 20, ReadTimeout: Duration(30 * time.Second)},
		Audit:  AuditConfig{MaxAge: Duration(30 * 24 * time.Hour)},
		Limits: defaultLimits(),
		Store:  StoreConfig{CacheSize: 100_000},
		Decisions: DecisionsConfig{
			SubjectField: "subject", ForwardAuthQuery: "data.pim.gateway.decision", EnvoyQuery: "data.envoy.authz.allow",
			EnvoyDecisionIDHeader: true,
		},
		Policy: PolicyConfig{EvalTimeout: Duration(time.Second), Watch: true},
		Log:    LogConfig{Level: "info", Format: "json"},
	}
}

// Error is a configuration error: the field or source it concerns, and why.
// The CLI exits with status 2 for it.
type Error struct {
	Field string
	Err   error
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %v", e.Field, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Duration is a time.Duration written as a Go duration string ("10s").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		// A type error, so encoding/json adds the field's path to it.
		return &json.UnmarshalTypeError{Value: strconv.Quote(s), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}

// Flags binds the command-line flags of serve to cfg. Each flag also reads
// the environment variable ELEVATE_<NAME> (dashes as underscores).
func Flags(fs *pflag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.File, "config", "", "YAML configuration file (flags and ELEVATE_* variables override it)")
	fs.StringVar(&cfg.Server.Addr, "addr", cfg.Server.Addr, "HTTP listen address (host:port)")
	fs.StringVar(&cfg.Server.GRPCAddr, "grpc-addr", cfg.Server.GRPCAddr, "gRPC listen address of Envoy ext_authz (host:port)")
	fs.BoolVar(&cfg.Decisions.EnvoyDryRun, "envoy-dry-run", cfg.Decisions.EnvoyDryRun, "allow every ext_authz request, logging the real decision")
	fs.DurationVar((*time.Duration)(&cfg.Server.ShutdownTimeout), "shutdown-timeout", time.Duration(cfg.Server.ShutdownTimeout), "how long in-flight requests may take to finish on shutdown")
	fs.DurationVar((*time.Duration)(&cfg.Policy.EvalTimeout), "eval-timeout", time.Duration(cfg.Policy.EvalTimeout), "deadline of one policy evaluation (exceeding it denies)")
	fs.BoolVar(&cfg.Policy.Watch, "watch", cfg.Policy.Watch, "reload policies when files under the given paths change")
	fs.DurationVar((*time.Duration)(&cfg.Server.ReadTimeout), "read-timeout", time.Duration(cfg.Server.ReadTimeout), "how long reading one request (body included) may take")
	fs.Int64Var(&cfg.Server.MaxBodyBytes, "max-body-bytes", cfg.Server.MaxBodyBytes, "largest request body accepted")
	fs.StringVar(&cfg.Store.RedisURL, "redis-url", cfg.Store.RedisURL, "Redis URL (redis://, rediss://); empty keeps state in this process only")
	fs.IntVar(&cfg.Store.CacheSize, "cache-size", cfg.Store.CacheSize, "principals whose holdings each replica caches for decisions, invalidated by Redis (0: none)")
	fs.DurationVar((*time.Duration)(&cfg.Audit.MaxAge), "audit-max-age", time.Duration(cfg.Audit.MaxAge), "drop audit events older than this (0: keep)")
	fs.IntVar(&cfg.Audit.MaxEvents, "audit-max-events", cfg.Audit.MaxEvents, "keep at most this many audit events (0: no limit)")
	fs.BoolVar(&cfg.Demo.Enabled, "demo", cfg.Demo.Enabled, "load the demo tenant, with a token and TOTP secret per demo principal")
	fs.StringVar(&cfg.Demo.Credentials, "demo-credentials", cfg.Demo.Credentials, "file to write the demo tokens and TOTP secrets to")
	fs.StringVar(&cfg.Log.Level, "log-level", cfg.Log.Level, "log level: trace, debug, info, warn, error")
	fs.StringVar(&cfg.Log.Format, "log-format", cfg.Log.Format, "log format: json or text")
}

// EnvName is the environment variable read for a flag.
func EnvName(flag string) string {
	return "ELEVATE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Load fills cfg, whose fields fs is bound to (see Flags) and whose flags have
// been parsed: defaults, then the YAML file named by --config or
// ELEVATE_CONFIG, then the environment, then the flags given on the command
// line.
func Load(fs *pflag.FlagSet, cfg *Config, getenv func(string) (string, bool)) error {
	given := map[string]string{}
	fs.Visit(func(f *pflag.Flag) { given[f.Name] = f.Value.String() })
	file, ok := given["config"]
	if !ok {
		file, _ = getenv(EnvName("config"))
	}

	*cfg = Default()
	if file != "" {
		if err := loadFile(file, cfg); err != nil {
			return err
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		if v, ok := given[f.Name]; ok {
			if e := f.Value.Set(v); e != nil {
				err = &Error{Field: "--" + f.Name, Err: e}
			}
			return
		}
		if v, ok := getenv(EnvName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = &Error{Field: EnvName(f.Name), Err: fmt.Errorf("invalid value %q: %w", v, e)}
			}
		}
	})
	if err != nil {
		return err
	}
	if err := cfg.OPAConfig.expandEnv(getenv); err != nil {
		return err
	}
	return cfg.Validate()
}

func loadFile(file string, cfg *Config) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return &Error{Field: "--config", Err: err}
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return &Error{Field: file, Err: err}
	}
	var raw any
	if err := json.Unmarshal(js, &raw); err != nil {
		return &Error{Field: file, Err: err}
	}
	if path := unknownKey(raw, reflect.TypeFor[Config](), ""); path != "" {
		return &Error{Field: path, Err: errors.New("unknown field")}
	}
	if err := json.Unmarshal(js, cfg); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			want := te.Type.String()
			if te.Type == reflect.TypeFor[Duration]() {
				want = "duration such as 250ms or 10s"
			}
			return &Error{Field: te.Field, Err: fmt.Errorf("%s is not a valid %s", te.Value, want)}
		}
		return &Error{Field: file, Err: err}
	}
	return nil
}

// unknownKey returns the dotted path of the first key in doc that t (a struct
// decoded from JSON) has no field for, or "".
func unknownKey(doc any, t reflect.Type, prefix string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if list, ok := doc.([]any); ok && t.Kind() == reflect.Slice {
		for i, item := range list {
			if path := unknownKey(item, t.Elem(), fmt.Sprintf("%s[%d].", strings.TrimSuffix(prefix, "."), i)); path != "" {
				return path
			}
		}
		return ""
	}
	obj, ok := doc.(map[string]any)
	if !ok || t.Kind() != reflect.Struct {
		return ""
	}
	fields := jsonFields(t)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ft, ok := fields[k]
		if !ok {
			return prefix + k
		}
		if path := unknownKey(obj[k], ft, prefix+k+"."); path != "" {
			return path
		}
	}
	return ""
}

// jsonFields are the keys encoding/json reads into struct t, with their
// types; the fields of an embedded struct without a name are promoted.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			maps.Copy(fields, jsonFields(f.Type))
		case name != "" && name != "-":
			fields[name] = f.Type
		}
	}
	return fields
}

// Validate checks every field, naming the first bad one.
func (c *Config) Validate() error {
	if _, port, err := net.SplitHostPort(c.Server.Addr); err != nil || port == "" {
		return &Error{Field: "server.addr", Err: fmt.Errorf("%q is not host:port", c.Server.Addr)}
	}
	if _, port, err := net.SplitHostPort(c.Server.GRPCAddr); err != nil || port == "" {
		return &Error{Field: "server.grpc_addr", Err: fmt.Errorf("%q is not host:port", c.Server.GRPCAddr)}
	}
	for field, q := range map[string]string{"decisions.forward_auth_query": c.Decisions.ForwardAuthQuery, "decisions.envoy_query": c.Decisions.EnvoyQuery} {
		if _, err := policy.ParseQuery(q); err != nil {
			return &Error{Field: field, Err: err}
		}
	}
	for i, q := range c.Decisions.MetricQueries {
		if _, err := policy.ParseQuery(q); err != nil {
			return &Error{Field: fmt.Sprintf("decisions.metric_queries[%d]", i), Err: err}
		}
	}
	if c.Decisions.SubjectField == "" {
		return &Error{Field: "decisions.subject_field", Err: errors.New("required")}
	}
	if _, err := c.CachingConfig(); err != nil {
		return &Error{Field: "caching", Err: err}
	}
	if c.Server.MaxBodyBytes < 1 {
		return &Error{Field: "server.max_body_bytes", Err: errors.New("must be positive")}
	}
	if c.Server.ReadTimeout <= 0 {
		return &Error{Field: "server.read_timeout", Err: errors.New("must be positive")}
	}
	if c.Server.ShutdownTimeout < 0 {
		return &Error{Field: "server.shutdown_timeout", Err: errors.New("must not be negative")}
	}
	if c.Policy.EvalTimeout <= 0 {
		return &Error{Field: "policy.eval_timeout", Err: errors.New("must be positive")}
	}
	if c.Store.RedisURL != "" && !strings.HasPrefix(c.Store.RedisURL, "redis://") && !strings.HasPrefix(c.Store.RedisURL, "rediss://") && !strings.HasPrefix(c.Store.RedisURL, "unix://") {
		return &Error{Field: "store.redis_url", Err: errors.New("must be a redis://, rediss:// or unix:// URL")}
	}
	if c.Store.CacheSize < 0 {
		return &Error{Field: "store.cache_size", Err: errors.New("must not be negative")}
	}
	if c.Audit.MaxAge < 0 {
		return &Error{Field: "audit.max_age", Err: errors.New("must not be negative")}
	}
	if c.Audit.MaxEvents < 0 {
		return &Error{Field: "audit.max_events", Err: errors.New("must not be negative")}
	}
	for field, n := range map[string]int{"limits.justification": c.Limits.Justification, "limits.ticket_system": c.Limits.TicketSystem,
		"limits.ticket_number": c.Limits.TicketNumber, "limits.scope": c.Limits.Scope} {
		if n < 1 {
			return &Error{Field: field, Err: errors.New("must be positive")}
		}
	}
	if c.Limits.ScheduleAhead <= 0 {
		return &Error{Field: "limits.schedule_ahead", Err: errors.New("must be positive")}
	}
	if c.Demo.Enabled && c.HasBundles() {
		return &Error{Field: "demo.enabled", Err: errors.New("the demo tenant comes with the built-in policies, which are not served when bundles are configured")}
	}
	if c.Demo.Enabled && c.Demo.Credentials == "" {
		return &Error{Field: "demo.credentials", Err: errors.New("demo mode needs a file for the demo credentials (--demo-credentials)")}
	}
	if c.Identity.JWT != nil || len(c.Identity.StaticTokens) > 0 {
		if err := c.Identity.Validate(); err != nil {
			var fe *identity.FieldError
			if errors.As(err, &fe) {
				return &Error{Field: fe.Field, Err: fe.Err}
			}
			return &Error{Field: "identity", Err: err}
		}
	}
	if _, err := logrus.ParseLevel(c.Log.Level); err != nil {
		return &Error{Field: "log.level", Err: fmt.Errorf("%q is not one of trace, debug, info, warn, error", c.Log.Level)}
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		return &Error{Field: "log.format", Err: fmt.Errorf("%q is not json or text", c.Log.Format)}
	}
	return nil
}
