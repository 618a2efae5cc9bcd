package policy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/sirupsen/logrus"
)

// With bundles the policy lives in OPA's plugin manager: its store holds
// the data and modules, its compiler the compiled policy, and its bundle
// plugin replaces both in one write transaction when a bundle activates.
// The engine keeps a snapshot of the manager's compiler with queries
// prepared on it, replaced from the manager's compiler trigger, which runs
// inside that transaction's commit while the store admits no reader. An
// evaluation opens a read transaction first and takes the snapshot second,
// so it sees the compiler and the data of one activation: the one before,
// or the one after, never a mixture.

// follow registers the compiler trigger and takes the policy the manager
// holds now (Init may have loaded files into it already).
func (e *Engine) follow(ctx context.Context) error {
	m := e.opts.Manager
	m.RegisterCompilerTrigger(e.activated)
	err := storage.Txn(ctx, m.Store, storage.WriteParams, func(txn storage.Transaction) error {
		_, err := m.Store.Register(ctx, txn, storage.TriggerConfig{
			OnCommit: func(context.Context, storage.Transaction, storage.TriggerEvent) { e.gen.Add(1) },
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("follow the policy store: %w", err)
	}
	// Read in a transaction, so no activation lands between reading the
	// compiler and storing the snapshot; one that follows replaces it.
	return storage.Txn(ctx, m.Store, storage.TransactionParams{}, func(txn storage.Transaction) error {
		if m.GetCompiler() != nil {
			e.activate(ctx, txn)
		}
		return nil
	})
}

// activated is the manager's compiler trigger: a new policy was committed
// in txn.
func (e *Engine) activated(txn storage.Transaction) {
	// The trigger gives no context; preparing only compiles queries.
	e.activate(context.Background(), txn)
}

// activate builds and serves a snapshot of the manager's policy, read
// through txn (the committing transaction, when called as a trigger: a new
// transaction could not open until the commit ends).
func (e *Engine) activate(ctx context.Context, txn storage.Transaction) {
	m := e.opts.Manager
	compiler := m.GetCompiler()
	snap := &snapshot{compiler: compiler, store: m.Store}
	bundles, err := bundleRevisions(ctx, m.Store, txn)
	if err != nil {
		e.log.WithError(err).Warn("reading the activated bundles' revisions")
	}
	snap.info = Info{Revision: revisionOf(bundles), Bundles: bundles, Modules: len(compiler.Modules), LoadedAt: time.Now().UTC()}
	for _, q := range e.opts.Prepare {
		pq, err := snap.prepare(ctx, q, txn, EvalOptions{})
		if err != nil {
			// Prepared again on first use, which fails closed with this error.
			e.log.WithFields(logrus.Fields{"query": q.String(), "error": err.Error()}).Error("cannot prepare a query on the activated policy")
			continue
		}
		snap.queries.Store(q.key, pq)
	}
	e.serve(snap)
	e.log.WithFields(logrus.Fields{"revision": snap.info.Revision, "bundles": bundles, "modules": snap.info.Modules}).Info("policy activated")
}

// evalShared evaluates on the manager's store: in a read transaction
// opened before the snapshot is taken (see above).
func (e *Engine) evalShared(ctx context.Context, q Query, input ast.Value, o EvalOptions) (any, error) {
	store := e.opts.Manager.Store
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", q, err)
	}
	defer store.Abort(ctx, txn)
	return e.eval(ctx, e.current.Load(), q, input, txn, o)
}

// bundleRevisions are the revisions of the bundles in the store, by name.
func bundleRevisions(ctx context.Context, store storage.Store, txn storage.Transaction) (map[string]string, error) {
	names, err := bundle.ReadBundleNamesFromStore(ctx, store, txn)
	if err != nil {
		if storage.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	revs := make(map[string]string, len(names))
	for _, name := range names {
		rev, err := bundle.ReadBundleRevisionFromStore(ctx, store, txn, name)
		if err != nil && !storage.IsNotFound(err) {
			return nil, fmt.Errorf("bundle %s: %w", name, err)
		}
		revs[name] = rev
	}
	return revs, nil
}

// revisionOf is the revision of the one bundle, or name=revision pairs.
func revisionOf(bundles map[string]string) string {
	if len(bundles) == 1 {
		for _, rev := range bundles {
			return rev
		}
	}
	pairs := make([]string, 0, len(bundles))
	for name, rev := range bundles {
		pairs = append(pairs, name+"="+rev)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

// publish replaces the policy in the manager's store with files, compiled
// as compiler, in one transaction, so that OPA's plugins see the policy the
// engine serves.
func publish(ctx context.Context, m *plugins.Manager, files *Files, compiler *ast.Compiler) error {
	params := storage.TransactionParams{Write: true, Context: storage.NewContext()}
	return storage.Txn(ctx, m.Store, params, func(txn storage.Transaction) error {
		ids, err := m.Store.ListPolicies(ctx, txn)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := m.Store.DeletePolicy(ctx, txn, id); err != nil {
				return err
			}
		}
		data := files.Data
		if data == nil {
			data = map[string]any{}
		}
		if err := m.Store.Write(ctx, txn, storage.AddOp, storage.RootPath, data); err != nil {
			return err
		}
		for name, raw := range files.Raw {
			if err := m.Store.UpsertPolicy(ctx, txn, name, raw); err != nil {
				return err
			}
		}
		// The manager takes this compiler instead of compiling the store again.
		plugins.SetCompilerOnContext(params.Context, compiler)
		return nil
	})
}
