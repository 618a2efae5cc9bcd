package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// newManager is OPA's plugin manager with no plugins, initialised.
func newManager(t *testing.T) *plugins.Manager {
	t.Helper()
	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	m, err := plugins.New([]byte(`{}`), "test", store)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	return m
}

// activate activates a bundle named "b" in the manager's store as OPA's
// bundle plugin does: one write transaction, the compiled policy set on its
// context for the manager.
func activate(t testing.TB, m *plugins.Manager, rev string, module string, data map[string]any) {
	t.Helper()
	roots := []string{"t"}
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{Revision: rev, Roots: &roots},
		Data:     map[string]any{"t": data},
		Modules: []bundle.ModuleFile{{
			URL: "b/t.rego", Path: "b/t.rego", Raw: []byte(module), Parsed: ast.MustParseModule(module),
		}},
	}
	ctx := context.Background()
	params := storage.TransactionParams{Write: true, Context: storage.NewContext()}
	err := storage.Txn(ctx, m.Store, params, func(txn storage.Transaction) error {
		compiler := ast.NewCompiler().WithPathConflictsCheck(storage.NonEmpty(ctx, m.Store, txn))
		if err := bundle.Activate(&bundle.ActivateOpts{
			Ctx: ctx, Store: m.Store, Txn: txn, TxnCtx: params.Context, Compiler: compiler,
			Metrics: metrics.New(), Bundles: map[string]*bundle.Bundle{"b": b},
		}); err != nil {
			return err
		}
		plugins.SetCompilerOnContext(params.Context, compiler)
		return nil
	})
	if err != nil {
		t.Fatalf("activate %s: %v", rev, err)
	}
}

func TestBundlesFromManager(t *testing.T) {
	m := newManager(t)
	e, err := New(context.Background(), Options{Manager: m, Bundles: true, Logger: quietLogger(), Prepare: []Query{answer}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Eval(context.Background(), answer, nil); !errors.Is(err, ErrUndefined) {
		t.Fatalf("before any bundle: %v, want undefined", err)
	}
	if rev := e.Info().Revision; rev != "" {
		t.Fatalf("revision %q before any bundle", rev)
	}

	activate(t, m, "r1", answerPolicy("1"), map[string]any{"admins": []any{"alice"}})
	if v := evalOK(t, e, answer, nil); fmt.Sprint(v) != "1" {
		t.Fatalf("answer %v after r1", v)
	}
	if v := evalOK(t, e, allow, ast.MustParseTerm(`{"user": "alice"}`).Value); v != true {
		t.Fatalf("alice not allowed by r1's data: %v", v)
	}
	if info := e.Info(); info.Revision != "r1" || info.Bundles["b"] != "r1" || info.Modules != 1 {
		t.Fatalf("info %+v", info)
	}

	activate(t, m, "r2", answerPolicy("2"), map[string]any{"admins": []any{"bob"}})
	if v := evalOK(t, e, answer, nil); fmt.Sprint(v) != "2" {
		t.Fatalf("answer %v after r2", v)
	}
	if _, err := e.Eval(context.Background(), allow, ast.MustParseTerm(`{"user": "alice"}`).Value); !errors.Is(err, ErrUndefined) {
		t.Fatalf("alice still allowed after r2 replaced the data: %v", err)
	}
	if e.Info().Revision != "r2" {
		t.Fatalf("revision %q after r2", e.Info().Revision)
	}
	// Reload and Watch have nothing to do: the bundle plugin activates.
	if err := e.Reload(context.Background()); err != nil || e.Info().Revision != "r2" {
		t.Fatalf("reload: %v, revision %s", err, e.Info().Revision)
	}
	if err := e.Watch(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Data can change in the manager's store without a new compiler (a
// data-only bundle, a write through OPA's APIs): the generation changes
// with every commit.
func TestGenerationFollowsTheManagersStore(t *testing.T) {
	m := newManager(t)
	e, err := New(context.Background(), Options{Manager: m, Bundles: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	activate(t, m, "r1", answerPolicy("1"), map[string]any{"admins": []any{"alice"}})
	g := e.Generation()
	err = storage.Txn(context.Background(), m.Store, storage.WriteParams, func(txn storage.Transaction) error {
		return m.Store.Write(context.Background(), txn, storage.ReplaceOp, storage.MustParsePath("/t/admins"), ast.NewArray(ast.StringTerm("bob")))
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.Generation() == g {
		t.Fatal("the data changed, the generation did not")
	}
	if v := evalOK(t, e, allow, ast.MustParseTerm(`{"user": "bob"}`).Value); v != true {
		t.Fatalf("bob not allowed by the written data: %v", v)
	}
}

// Evaluations running while bundles activate each see one activation
// whole: a rule and the data it was activated with always agree.
func TestConcurrentEvalDuringActivations(t *testing.T) {
	m := newManager(t)
	consistent := MustQuery("data.t.consistent")
	e, err := New(context.Background(), Options{Manager: m, Bundles: true, Logger: quietLogger(), Prepare: []Query{consistent}})
	if err != nil {
		t.Fatal(err)
	}
	version := func(n int) (string, map[string]any) {
		return fmt.Sprintf("package t\n\nconsistent if data.t.version == %d\n", n), map[string]any{"version": n}
	}
	mod, data := version(0)
	activate(t, m, "r0", mod, data)

	var stop atomic.Bool
	var evals, bad atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				v, err := e.Eval(context.Background(), consistent, nil)
				evals.Add(1)
				if err != nil || v != true {
					bad.Add(1)
				}
			}
		})
	}
	for n := 1; n <= 25; n++ {
		mod, data := version(n)
		activate(t, m, fmt.Sprintf("r%d", n), mod, data)
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d evaluations saw a policy and data from different activations", bad.Load(), evals.Load())
	}
	if e.Info().Revision != "r25" {
		t.Fatalf("revision %s", e.Info().Revision)
	}
}

// Without bundles, the engine serves its files and writes each load into
// the manager's store too, where OPA's plugins read the policy.
func TestFilesArePublishedToManager(t *testing.T) {
	m := newManager(t)
	dir := t.TempDir()
	write(t, dir+"/t.rego", answerPolicy("1"))
	write(t, dir+"/data.json", `{"t": {"admins": ["alice"]}}`)
	e := newEngine(t, Source{Paths: []string{dir}}, func(o *Options) { o.Manager = m })
	if v := evalOK(t, e, answer, nil); fmt.Sprint(v) != "1" {
		t.Fatalf("answer %v", v)
	}
	managerSees := func() (any, any) {
		t.Helper()
		var ans, admins any
		err := storage.Txn(context.Background(), m.Store, storage.TransactionParams{}, func(txn storage.Transaction) error {
			if m.GetCompiler().GetRules(answer.ref) == nil {
				return errors.New("the manager's compiler has no data.t.answer")
			}
			ans = m.GetCompiler().GetRules(answer.ref)[0].Head.Value.String()
			var err error
			admins, err = m.Store.Read(context.Background(), txn, storage.MustParsePath("/t/admins"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ans, admins
	}
	if ans, admins := managerSees(); ans != "1" || fmt.Sprint(admins) != `["alice"]` {
		t.Fatalf("manager holds answer %v, admins %v", ans, admins)
	}
	write(t, dir+"/t.rego", answerPolicy("2"))
	write(t, dir+"/data.json", `{"t": {"admins": ["bob"]}}`)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ans, admins := managerSees(); ans != "2" || fmt.Sprint(admins) != `["bob"]` {
		t.Fatalf("after reload the manager holds answer %v, admins %v", ans, admins)
	}
}

func evalOK(t *testing.T, e *Engine, q Query, input ast.Value) any {
	t.Helper()
	v, err := e.Eval(context.Background(), q, input)
	if err != nil {
		t.Fatalf("eval %s: %v", q, err)
	}
	return v
}
