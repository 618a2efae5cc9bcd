package cli

import (
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/elevatepdp/elevate/bundles"
	"github.com/elevatepdp/elevate/internal/config"
	"github.com/elevatepdp/elevate/internal/logging"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/server"
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

	engine, err := policy.New(ctx, policy.Options{
		Source:  src,
		Timeout: time.Duration(cfg.Policy.EvalTimeout),
		Prepare: policy.Entrypoints,
		Logger:  log,
	})
	if err != nil {
		return err
	}
	if cfg.Store.RedisURL == "" {
		log.Warn("no Redis configured (--redis-url, ELEVATE_REDIS_URL): state is kept in this process only, not shared with other replicas and lost when it exits")
	}
	srv := server.New(server.Options{
		Addr:            cfg.Server.Addr,
		ShutdownTimeout: time.Duration(cfg.Server.ShutdownTimeout),
		Engine:          engine,
		Logger:          log,
	})
	if _, err := srv.Listen(); err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx) })
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
