// Package controlplane connects Elevate to OPA-style control planes —
// bundle servers, decision-log collectors and status services — through
// OPA's own plugin manager, configured by OPA's own configuration sections
// (services, labels, keys, bundles, decision_logs, status). The bundle,
// decision-log and status plugins are OPA's, registered from the
// configuration as `opa run` registers them; nothing here re-implements
// them.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/plugins/discovery"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/plugins/status"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/config"
	"github.com/elevatepdp/elevate/internal/ids"
)

// Options configure a Plane.
type Options struct {
	// Files are policy and data files loaded into the manager's store
	// beside the bundles, as `opa run` loads the paths it is given with a
	// bundle configuration. Used only when bundles are configured.
	Files *loader.Result
	// Logger receives OPA's plugin logs (and decision_logs.console output).
	Logger *logrus.Logger
	// Registerer receives the status plugin's metrics when
	// status.prometheus is set; nil leaves them out.
	Registerer prometheus.Registerer
}

// Plane is OPA's plugin manager, set up from OPA's configuration sections.
type Plane struct {
	manager *plugins.Manager
	bundles bool
	log     logrus.FieldLogger
	started bool

	mu sync.Mutex
	// status is the bundle plugin's last report per bundle, for readiness.
	status map[string]bundle.Status
}

// New builds OPA's plugin manager from the configuration, registers the
// plugins it enables (as `opa run` does, through OPA's discovery plugin)
// and loads the manager's store: opts.Files when bundles are configured.
// A section OPA refuses is a *config.Error naming it. Nothing is downloaded
// or uploaded before Start.
func New(ctx context.Context, cfg config.OPAConfig, opts Options) (*Plane, error) {
	p := &Plane{bundles: cfg.HasBundles(), log: opts.Logger, status: map[string]bundle.Status{}}
	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	managerOpts := []func(*plugins.Manager){
		plugins.Logger(newLogger(opts.Logger)),
		plugins.ConsoleLogger(newLogger(opts.Logger)),
		plugins.WithParserOptions(ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1}),
		plugins.WithPrometheusRegister(opts.Registerer),
	}
	if p.bundles && opts.Files != nil {
		managerOpts = append(managerOpts, plugins.InitFiles(*opts.Files))
	}
	m, err := plugins.New(cfg.JSON(), ids.UUID(), store, managerOpts...)
	if err != nil {
		return nil, blameManager(cfg, err)
	}
	p.manager = m
	if err := refuseUnknownOptions(m.Config.Warnings, p.log); err != nil {
		m.Stop(ctx)
		return nil, err
	}
	// With no discovery section, OPA's discovery plugin only registers the
	// bundle, decision-log and status plugins the boot configuration enables.
	d, err := discovery.New(m)
	if err != nil {
		m.Stop(ctx)
		return nil, blamePlugins(cfg, m, err)
	}
	m.Register(discovery.Name, d)
	if bp := bundle.Lookup(m); bp != nil {
		for name := range bp.Config().Bundles {
			p.status[name] = bundle.Status{Name: name}
		}
		type listener string
		bp.RegisterBulkListener(listener("elevate-readiness"), p.bundleStatus)
	}
	// Init loads opts.Files into the store and compiles them, as OPA's
	// runtime does before it serves; a policy that does not compile stops
	// here.
	if err := m.Init(ctx); err != nil {
		// The plugins never started: there is nothing to stop.
		return nil, fmt.Errorf("load policies into OPA's plugin manager: %w", err)
	}
	return p, nil
}

// Manager is OPA's plugin manager: its store and compiler hold the policy
// its plugins see (decision-log mask and drop rules), and, with bundles,
// the policy being served.
func (p *Plane) Manager() *plugins.Manager { return p.manager }

// Bundles is whether bundles are configured (and so are the policy).
func (p *Plane) Bundles() bool { return p.bundles }

// DecisionLogs is OPA's decision-log plugin behind Elevate's built-in
// mask (see DecisionLogger), nil unless decision_logs is configured.
func (p *Plane) DecisionLogs() *DecisionLogger {
	plugin := logs.Lookup(p.manager)
	if plugin == nil {
		return nil
	}
	return &DecisionLogger{plugin: plugin, manager: p.manager}
}

// Start starts the plugins: bundles begin downloading, decision logs and
// status reports uploading, until Stop.
func (p *Plane) Start(ctx context.Context) error {
	if err := p.manager.Start(ctx); err != nil {
		return fmt.Errorf("start OPA's plugins: %w", err)
	}
	p.started = true
	return nil
}

// Stop stops the plugins, giving the decision-log plugin until ctx ends to
// upload what it still holds. Stopping a Plane never started does nothing.
func (p *Plane) Stop(ctx context.Context) {
	if p.started {
		p.manager.Stop(ctx)
	}
}

// shutdownGrace bounds the final decision-log upload when no shutdown
// timeout is given.
const shutdownGrace = 5 * time.Second

// StopWithin stops the plugins within d (shutdownGrace when d is zero).
func (p *Plane) StopWithin(d time.Duration) {
	if d <= 0 {
		d = shutdownGrace
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	p.Stop(ctx)
}

// BundlesActivated is nil once every configured bundle has been activated
// at least once (OPA's /health?bundles); until then it says which bundles
// wait and why. It stays nil afterwards: a later bundle that fails to
// download or verify leaves the last good one serving.
func (p *Plane) BundlesActivated(context.Context) error {
	st := p.manager.PluginStatus()
	if s := st[discovery.Name]; s != nil && s.State != plugins.StateOK {
		return errors.New("discovery has not completed")
	}
	s := st[bundle.Name]
	if s == nil || s.State == plugins.StateOK {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var waiting []string
	for name, bs := range p.status {
		if !bs.LastSuccessfulActivation.IsZero() {
			continue
		}
		why := "not activated yet"
		if bs.Message != "" {
			why += ": " + bs.Message
		}
		if len(bs.Errors) > 0 {
			why += ": " + errors.Join(bs.Errors...).Error()
		}
		waiting = append(waiting, name+": "+why)
	}
	sort.Strings(waiting)
	if len(waiting) == 0 {
		return errors.New("no bundle activated yet")
	}
	return errors.New(strings.Join(waiting, "; "))
}

// bundleStatus keeps the bundle plugin's latest report.
func (p *Plane) bundleStatus(status map[string]*bundle.Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, s := range status {
		if s != nil {
			p.status[name] = bundle.Status{Name: s.Name, LastSuccessfulActivation: s.LastSuccessfulActivation, Message: s.Message, Errors: slices.Clone(s.Errors)}
		}
	}
}

// blameManager names the section that made plugins.New fail: the manager
// is built again from the sections in dependency order (labels, keys,
// services) until it fails.
func blameManager(cfg config.OPAConfig, err error) error {
	var upTo []string
	for _, name := range []string{"labels", "keys", "services"} {
		upTo = append(upTo, name)
		m, perr := plugins.New(cfg.JSON(upTo...), "validate", inmem.New(), plugins.Logger(quiet()))
		if perr != nil {
			return &config.Error{Field: name, Err: perr}
		}
		m.Stop(context.Background())
	}
	return &config.Error{Field: strings.Join(cfg.Sections(), ", "), Err: err}
}

// blamePlugins names the section that made OPA's discovery plugin refuse
// the configuration, by parsing each with the parser of the plugin it
// configures, against the services and keys the manager holds: what the
// discovery plugin did with all of them at once.
func blamePlugins(cfg config.OPAConfig, m *plugins.Manager, err error) error {
	services, keys := m.Services(), m.PublicKeys()
	parsers := []struct {
		name  string
		raw   []byte
		parse func([]byte) error
	}{
		{"bundles", cfg.Bundles, func(b []byte) error {
			_, err := bundle.NewConfigBuilder().WithBytes(b).WithServices(services).WithKeyConfigs(keys).Parse()
			return err
		}},
		{"decision_logs", cfg.DecisionLogs, func(b []byte) error {
			_, err := logs.NewConfigBuilder().WithBytes(b).WithServices(services).WithLogger(quiet()).Parse()
			return err
		}},
		{"status", cfg.Status, func(b []byte) error {
			_, err := status.NewConfigBuilder().WithBytes(b).WithServices(services).Parse()
			return err
		}},
	}
	for _, p := range parsers {
		if !slices.Contains(cfg.Sections(), p.name) {
			continue
		}
		if perr := p.parse(p.raw); perr != nil {
			return &config.Error{Field: p.name, Err: perr}
		}
	}
	return &config.Error{Field: strings.Join(cfg.Sections(), ", "), Err: err}
}

// unknownOption is how OPA's configuration validation reports a key it
// does not know.
var unknownOption = regexp.MustCompile(`^unknown configuration option "([^"]+)"`)

// refuseUnknownOptions turns OPA's warning about an unknown key into an
// error naming it, as Elevate does for its own keys: a misspelt option
// (signing, polling) would otherwise fall back to its default silently.
// Other warnings are logged, as `opa run` logs them.
func refuseUnknownOptions(warnings []string, log logrus.FieldLogger) error {
	for _, w := range warnings {
		if m := unknownOption.FindStringSubmatch(w); m != nil {
			return &config.Error{Field: m[1], Err: errors.New("unknown field")}
		}
		log.WithField("component", "opa").Warn(w)
	}
	return nil
}

func quiet() logging.Logger { return logging.NewNoOpLogger() }
