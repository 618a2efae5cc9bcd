package cli

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/elevatepdp/elevate/bundles"
	"github.com/elevatepdp/elevate/internal/api"
	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/config"
	"github.com/elevatepdp/elevate/internal/controlplane"
	"github.com/elevatepdp/elevate/internal/decision"
	"github.com/elevatepdp/elevate/internal/decision/envoy"
	"github.com/elevatepdp/elevate/internal/demo"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/logging"
	"github.com/elevatepdp/elevate/internal/metrics"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/server"
	"github.com/elevatepdp/elevate/internal/store"
	"github.com/elevatepdp/elevate/internal/store/memory"
	storeredis "github.com/elevatepdp/elevate/internal/store/redis"
	"github.com/elevatepdp/elevate/internal/workflow"
	"github.com/elevatepdp/elevate/policies"
)

func newServeCmd() *cobra.Command {
	cfg := config.Default()
	cmd := &cobra.Command{
		Use:   "serve [flags] [path ...]",
		Short: "Run the Elevate server",
		Long: `Run the Elevate server. Paths are Rego, JSON or YAML files, directories or
bundle tarballs, loaded as 'opa run' loads them; with none, the policies and
demo data built into the binary are served. Every flag can also be set by the
environment variable ELEVATE_<FLAG> (ELEVATE_REDIS_URL for --redis-url) or in
the YAML file given by --config.`,
		RunE: func(cmd *cobra.Command, paths []string) error {
			if err := config.Load(cmd.Flags(), &cfg, os.LookupEnv); err != nil {
				return err
			}
			if len(paths) > 0 {
				cfg.Policy.Paths = paths
			}
			return serve(cmd, cfg)
		},
	}
	config.Flags(cmd.Flags(), &cfg)
	return cmd
}

func serve(cmd *cobra.Command, cfg config.Config) error {
	log, err := logging.New(cmd.ErrOrStderr(), cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	src, err := source(cfg.Policy.Paths)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Metrics first: OPA's status plugin registers its collectors there,
	// and may gather them before the engine and the store exist; the gauges
	// are set once they do.
	m := metrics.New()
	plane, err := controlPlane(ctx, cfg, m, log)
	if err != nil {
		return err
	}

	// Validated with the configuration.
	forwardAuthQuery, _ := policy.ParseQuery(cfg.Decisions.ForwardAuthQuery)
	envoyQuery, _ := policy.ParseQuery(cfg.Decisions.EnvoyQuery)
	caching, _ := cfg.CachingConfig() // validated with the configuration
	engineOpts := policy.Options{
		Source:  src,
		Timeout: time.Duration(cfg.Policy.EvalTimeout),
		Prepare: append(slices.Clone(policy.Entrypoints), forwardAuthQuery, envoyQuery),
		Caching: caching,
		Logger:  log,
	}
	// The evaluation metric's query label names these (the Data API's
	// built-in answer for gateways among them); others are "other".
	known := []string{dataAPIQuery}
	for _, q := range engineOpts.Prepare {
		known = append(known, q.String())
	}
	for _, q := range cfg.Decisions.MetricQueries {
		known = append(known, policy.MustQuery(q).String())
	}
	m.KnownQueries(known...)
	if plane != nil {
		engineOpts.Manager, engineOpts.Bundles = plane.Manager(), plane.Bundles()
	}
	engine, err := policy.New(ctx, engineOpts)
	if err != nil {
		return err
	}
	opened, sink, secrets, err := openStore(cfg.Store, cfg.Audit)
	if err != nil {
		return err
	}
	defer opened.Close()
	st := m.Store(opened)
	m.SetGauges(metrics.Gauges{
		Policy: func() (string, time.Time) { i := engine.Info(); return i.Revision, i.LoadedAt },
		Counts: func() (int, int, error) { return count(st) },
		Cache:  cacheStats(opened, cfg.Store.CacheSize),

		// Each failure also shows in /health/ready, with its time and error.
		PolicyReloadFailures: func() uint64 { return engine.Reloads().ReloadFailures },
	})
	if cfg.Store.RedisURL == "" {
		log.Warn("no Redis configured (--redis-url, ELEVATE_REDIS_URL): state is kept in this process only, not shared with other replicas and lost when it exits")
	}
	totp := identity.NewTOTP(secrets, cfg.Identity.TOTP)
	idCfg := cfg.Identity
	if cfg.Demo.Enabled {
		creds, tokens, err := demo.Setup(ctx, engine, st, totp)
		if err != nil {
			return err
		}
		if err := demo.Write(cfg.Demo.Credentials, creds); err != nil {
			return err
		}
		idCfg.StaticTokens = append(idCfg.StaticTokens, tokens...)
		log.WithField("credentials", cfg.Demo.Credentials).Warn("demo mode: the demo tenant is loaded and its tokens are in the credentials file")
	}
	auth, err := authenticator(ctx, idCfg, log)
	if err != nil {
		return err
	}
	wf := workflow.New(workflow.Options{
		Engine: engine, Store: st, Audit: audit.New(sink, log), TOTP: totp, Logger: log, Observer: m,
		Limits: cfg.Limits.Workflow(),
	})
	eval := decision.NewEvaluator(engine, wf, log)
	eval.Observe(m)
	checks := map[string]func(context.Context) error{"store": st.Ping}
	if plane != nil {
		if dl := plane.DecisionLogs(); dl != nil {
			dl.MaskHeaders(cfg.Decisions.SubjectHeader)
			eval.LogDecisions(dl)
		}
		if plane.Bundles() {
			// As OPA's /health?bundles: not ready until every bundle has
			// been activated once.
			checks["bundles"] = plane.BundlesActivated
		}
	}
	// Every decision endpoint, or none, takes a decision client's token.
	var clientsOnly decision.Authenticator
	if cfg.TokenRequired() {
		clientsOnly = auth
		if !slices.ContainsFunc(idCfg.StaticTokens, func(t identity.StaticToken) bool { return t.Kind == identity.Client }) {
			log.Warn("decision endpoints need a decision client's token (decisions.require_token) and no static token of kind client is configured: every decision is refused")
		}
	} else if !cfg.Demo.Enabled {
		log.Warn("decisions.require_token is false: any caller may ask for decisions, and the Data API tells who holds privilege now")
	}
	envoyOpts := envoy.Options{
		Query: envoyQuery, DryRun: cfg.Decisions.EnvoyDryRun,
		SubjectHeader: cfg.Decisions.SubjectHeader, Auth: auth, Clients: clientsOnly, Log: log,
		SkipRequestBodyParse: cfg.Decisions.EnvoySkipRequestBodyParse,
		NoDecisionIDHeader:   !cfg.Decisions.EnvoyDecisionIDHeader,
	}
	if cfg.Decisions.EnvoyProtoDescriptor != "" {
		if envoyOpts.ProtoSet, err = envoy.LoadProtoSet(cfg.Decisions.EnvoyProtoDescriptor); err != nil {
			return &config.Error{Field: "decisions.envoy_proto_descriptor", Err: err}
		}
	}
	srv := server.New(server.Options{
		Addr:            cfg.Server.Addr,
		GRPCAddr:        cfg.Server.GRPCAddr,
		ShutdownTimeout: time.Duration(cfg.Server.ShutdownTimeout),
		ReadTimeout:     time.Duration(cfg.Server.ReadTimeout),
		Engine:          engine,
		Logger:          log,
		APIs: []server.Registrar{
			m,
			api.New(wf, auth, log, cfg.Server.MaxBodyBytes),
			decision.NewDataAPI(eval, clientsOnly, cfg.Decisions.SubjectField, cfg.Server.MaxBodyBytes),
			decision.NewForwardAuth(eval, decision.ForwardAuthOptions{
				Query: forwardAuthQuery, Auth: auth, SubjectHeader: cfg.Decisions.SubjectHeader, Clients: clientsOnly,
			}),
			decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{
				Query: envoyOpts.Query, DryRun: envoyOpts.DryRun, SubjectHeader: envoyOpts.SubjectHeader,
				Auth: auth, Clients: clientsOnly, Log: log, MaxBody: cfg.Server.MaxBodyBytes,
				SkipRequestBodyParse: envoyOpts.SkipRequestBodyParse, ProtoSet: envoyOpts.ProtoSet,
				NoDecisionIDHeader: envoyOpts.NoDecisionIDHeader,
			}),
		},
		GRPC:   []server.GRPCRegistrar{envoy.NewServer(eval, envoyOpts)},
		Checks: checks,
	})
	if _, err := srv.Listen(); err != nil {
		return err
	}
	if plane != nil {
		if err := plane.Start(ctx); err != nil {
			return err
		}
		// After the listeners have stopped: the decision-log plugin
		// uploads what it still holds.
		defer plane.StopWithin(time.Duration(cfg.Server.ShutdownTimeout))
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx) })
	g.Go(func() error {
		wf.Run(ctx, sweepInterval)
		return nil
	})
	if cfg.Policy.Watch {
		g.Go(func() error {
			// Without reloads the server still serves its policy correctly.
			if err := engine.Watch(ctx); err != nil {
				log.WithError(err).Warn("policy files are not watched; restart to load changes")
			}
			return nil
		})
	}
	return g.Wait()
}

// controlPlane sets up OPA's plugin manager when any of OPA's configuration
// sections is given, and returns nil otherwise. With bundles, the policy
// paths given are loaded into it beside the bundles, as `opa run` loads
// them; the built-in policies are not.
func controlPlane(ctx context.Context, cfg config.Config, m *metrics.Metrics, log *logrus.Logger) (*controlplane.Plane, error) {
	if len(cfg.Sections()) == 0 {
		return nil, nil
	}
	opts := controlplane.Options{Logger: log, Registerer: m.Registerer()}
	if cfg.HasBundles() && len(cfg.Policy.Paths) > 0 {
		files, err := policy.Source{Paths: cfg.Policy.Paths}.Result()
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", strings.Join(cfg.Policy.Paths, ", "), err)
		}
		opts.Files = files
	}
	return controlplane.New(ctx, cfg.OPAConfig, opts)
}

// dataAPIQuery is the built-in policies' Data API decision for gateways.
const dataAPIQuery = "data.pim.authz.allow"

// sweepInterval is how often due work (expiries, time-outs, scheduled
// starts) is looked for. Access does not wait for it: an elevation stops
// granting at its end by itself.
const sweepInterval = 250 * time.Millisecond

// count is the pending requests and live elevations, for the metrics.
func count(st store.Store) (pending, live int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := st.Activations(ctx, store.ActivationFilter{Status: store.Pending})
	if err != nil {
		return 0, 0, err
	}
	l, err := st.Activations(ctx, store.ActivationFilter{Status: store.Live})
	if err != nil {
		return 0, 0, err
	}
	now := time.Now()
	for _, a := range l {
		if a.LiveAt(now) {
			live++
		}
	}
	return len(p), live, nil
}

// openStore opens Redis when configured, else the in-process store.
func openStore(cfg config.StoreConfig, keep config.AuditConfig) (store.Store, audit.Sink, identity.Secrets, error) {
	retention := audit.Retention{MaxAge: time.Duration(keep.MaxAge), MaxEvents: keep.MaxEvents}
	if cfg.RedisURL == "" {
		m := memory.New(nil)
		if retention.MaxEvents == 0 || retention.MaxEvents > maxMemoryEvents {
			retention.MaxEvents = maxMemoryEvents
		}
		return m, audit.NewMemorySinkWith(retention), m, nil
	}
	c, err := storeredis.Dial(cfg.RedisURL)
	if err != nil {
		return nil, nil, nil, &config.Error{Field: "store.redis_url", Err: err}
	}
	r := storeredis.New(c, storeredis.WithCache(cfg.CacheSize))
	return r, audit.NewRedisSinkWith(c, retention), r, nil
}

// cacheStats reads the Redis store's holdings cache for the metrics; nil
// when there is none.
func cacheStats(st store.Store, size int) func() metrics.CacheStats {
	r, ok := st.(*storeredis.Store)
	if !ok || size == 0 {
		return nil
	}
	return func() metrics.CacheStats {
		s := r.CacheStats()
		return metrics.CacheStats{Hits: s.Hits, Misses: s.Misses, InUse: s.Fresh}
	}
}

// maxMemoryEvents bounds the in-process audit trail's memory.
const maxMemoryEvents = 100_000

// authenticator verifies API callers as configured. With nothing configured
// the API refuses every call: there is no anonymous access.
func authenticator(ctx context.Context, cfg identity.Config, log logrus.FieldLogger) (api.Authenticator, error) {
	if cfg.JWT == nil && len(cfg.StaticTokens) == 0 {
		log.Warn("no identity configured (identity.jwt, identity.static_tokens): every API call is refused with 401")
		return refuseAll{}, nil
	}
	return identity.New(ctx, cfg, identity.WithLogger(log))
}

type refuseAll struct{}

func (refuseAll) Authenticate(context.Context, string) (identity.Identity, error) {
	return identity.Identity{}, fmt.Errorf("%w: no identity provider or token is configured", identity.ErrUnauthenticated)
}

// source is the given paths, or the policies and demo data built into the
// binary when there are none.
func source(paths []string) (policy.Source, error) {
	if len(paths) > 0 {
		return policy.Source{Paths: paths}, nil
	}
	fsys, err := policy.MergeFS(map[string]fs.FS{"policies": policies.FS, "bundles": bundles.Demo})
	if err != nil {
		return policy.Source{}, err
	}
	return policy.Source{FS: fsys, Paths: []string{"policies", "bundles/demo"}}, nil
}
