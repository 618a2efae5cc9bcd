// Package policy is Elevate's embedded OPA: it loads Rego and data, compiles
// them once, keeps one prepared query per entrypoint, and swaps in a freshly
// prepared snapshot when the policies change, so an evaluation always sees one
// complete policy.
package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"github.com/sirupsen/logrus"
)

var (
	// ErrUndefined means the query has no result for this input.
	ErrUndefined = errors.New("policy result is undefined")
	// ErrTimeout means the evaluation ran past its deadline.
	ErrTimeout = errors.New("policy evaluation timed out")
	// ErrNoPolicy means no policy has been loaded yet.
	ErrNoPolicy = errors.New("no policy is loaded")
)

// Entrypoints of the built-in policy set (see policies/README.md). They are
// prepared as soon as a policy loads, so no request pays for it.
var (
	ActivationDecision = MustQuery("data.pim.activation.decision")
	ApprovalDecision   = MustQuery("data.pim.approval.decision")
	AuthzDecision      = MustQuery("data.pim.authz.decision")
	AdminAllow         = MustQuery("data.pim.admin.allow")
)

// Entrypoints lists the queries above.
var Entrypoints = []Query{ActivationDecision, ApprovalDecision, AuthzDecision, AdminAllow}

// Query is a document under data to evaluate, such as data.pim.authz.decision.
type Query struct {
	ref ast.Ref
	key string
}

// ParseQuery parses a ground reference into data, such as "data.pim.authz.allow".
func ParseQuery(s string) (Query, error) {
	ref, err := ast.ParseRef(s)
	if err != nil {
		return Query{}, fmt.Errorf("parse query %q: %w", s, err)
	}
	if !ref.HasPrefix(ast.DefaultRootRef) || !ref.IsGround() {
		return Query{}, fmt.Errorf("query %q: must be a ground reference into data", s)
	}
	return Query{ref: ref, key: refKey(ref)}, nil
}

// refKey names a ground ref unambiguously: Ref.String does not escape quotes
// inside string keys, so two different paths could otherwise share a
// prepared query.
func refKey(ref ast.Ref) string {
	var b strings.Builder
	b.WriteString("data")
	for _, t := range ref[1:] {
		if s, ok := t.Value.(ast.String); ok {
			b.WriteString("[" + strconv.Quote(string(s)) + "]")
		} else {
			b.WriteString("[" + t.Value.String() + "]")
		}
	}
	return b.String()
}

// PathQuery is the document at a slash path under data, as OPA's Data API
// names it: "pim/authz/allow" is data.pim.authz.allow, "" is data itself.
// Each segment is a string key, so a path cannot inject Rego.
func PathQuery(path string) Query {
	ref := ast.Ref{ast.DefaultRootDocument}
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if seg != "" {
			ref = append(ref, ast.StringTerm(seg))
		}
	}
	return Query{ref: ref, key: refKey(ref)}
}

// MustQuery is ParseQuery for queries fixed at compile time.
func MustQuery(s string) Query {
	q, err := ParseQuery(s)
	if err != nil {
		panic(err)
	}
	return q
}

func (q Query) String() string { return q.ref.String() }

// Path is the query as OPA's Data API and decision logs name it: the slash
// path under data ("pim/authz/allow"; "" for data itself), the inverse of
// PathQuery.
func (q Query) Path() string {
	if len(q.ref) < 2 {
		return ""
	}
	parts := make([]string, 0, len(q.ref)-1)
	for _, t := range q.ref[1:] {
		if s, ok := t.Value.(ast.String); ok {
			parts = append(parts, string(s))
		} else {
			parts = append(parts, t.Value.String())
		}
	}
	return strings.Join(parts, "/")
}

// Options configure an Engine.
type Options struct {
	// Source is where the policy is loaded from, unless Bundles is set.
	Source Source
	// Manager is OPA's plugin manager, when OPA's configuration sections are
	// used. Without Bundles, every policy loaded from Source is also written
	// to the manager's store, so its plugins (the decision-log plugin's mask
	// and drop rules) see the policy being served.
	Manager *plugins.Manager
	// Bundles makes the policy the manager's: whatever its bundle plugin
	// activates (with the files the manager loaded beside them). Queries are
	// prepared again on every activation, through the manager's compiler
	// trigger, and Reload and Watch do nothing.
	Bundles bool
	// Timeout bounds each evaluation; zero means only the caller's context does.
	Timeout time.Duration
	// Prepare lists queries to prepare on every load, ahead of the first request.
	Prepare []Query
	// Caching configures the inter-query builtin cache that every
	// evaluation shares (http.send with cache or force_cache, and the
	// regex and glob caches), as OPA's "caching" section does; parse it with
	// cache.ParseCachingConfig. Nil means OPA's defaults.
	Caching *cache.Config
	Logger  logrus.FieldLogger
}

// Engine evaluates queries against the current snapshot of the loaded policy.
// It is safe for concurrent use.
type Engine struct {
	opts Options
	log  logrus.FieldLogger
	// Shared by every evaluation, as in OPA's server and the OPA-Envoy
	// plugin: a policy caching a JWKS or a lookup with http.send fetches
	// it once, not on every request.
	interQuery      cache.InterQueryCache
	interQueryValue cache.InterQueryValueCache
	reload          sync.Mutex // one load at a time; evaluations never wait for it
	current         atomic.Pointer[snapshot]
	gen             atomic.Uint64 // see Generation
	failures        atomic.Uint64
	lastFailure     atomic.Pointer[ReloadFailure]
}

// Reloads are the engine's failed reloads, for /health/ready and
// /metrics: a reload that fails keeps the last good policy serving, and
// this is how an operator sees that the policy on disk is not the one
// being served.
type Reloads struct {
	// ReloadFailures counts the reloads that failed since the start.
	ReloadFailures uint64 `json:"reload_failures"`
	// LastReloadFailure is the latest failure, kept after a later reload
	// succeeds (compare its time with Info.LoadedAt); nil if none failed.
	LastReloadFailure *ReloadFailure `json:"last_reload_failure,omitempty"`
}

// ReloadFailure is when a reload failed and why.
type ReloadFailure struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
}

// Info describes the policy being served.
type Info struct {
	// Revision is a digest of the files loaded or, with bundles, the
	// revision in the bundle's manifest ("name=revision" pairs, comma
	// separated, with several bundles).
	Revision string `json:"revision"`
	// Bundles are the activated bundles' revisions by bundle name.
	Bundles  map[string]string `json:"bundles,omitempty"`
	Modules  int               `json:"modules"`
	LoadedAt time.Time         `json:"loaded_at"`
}

// maxLazyQueries bounds the prepared queries cached beyond the configured
// ones, so callers naming arbitrary documents cannot grow memory without end.
const maxLazyQueries = 1024

type snapshot struct {
	info     Info
	compiler *ast.Compiler
	// store is the snapshot's own, never written after it is built, or
	// with bundles the manager's, which evaluations read in a transaction.
	store   storage.Store
	queries sync.Map // Query.key -> *rego.PreparedEvalQuery
	lazy    atomic.Int32
}

// New loads and compiles the source. It fails, naming file and line, when the
// policy does not compile: a PDP must not start without a policy. With
// Bundles it serves what the manager holds now and follows its activations
// (before the first one, queries are undefined).
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = logrus.StandardLogger()
	}
	e := &Engine{opts: opts, log: opts.Logger}
	caching := opts.Caching
	if caching == nil {
		var err error
		if caching, err = cache.ParseCachingConfig(nil); err != nil {
			return nil, fmt.Errorf("caching: %w", err)
		}
	}
	e.interQuery = cache.NewInterQueryCacheWithContext(ctx, caching)
	e.interQueryValue = cache.NewInterQueryValueCache(ctx, caching)
	if opts.Bundles {
		if opts.Manager == nil {
			return nil, errors.New("policy from bundles needs OPA's plugin manager")
		}
		if err := e.follow(ctx); err != nil {
			return nil, err
		}
		return e, nil
	}
	if err := e.Reload(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Info describes the snapshot now being served.
func (e *Engine) Info() Info {
	if snap := e.current.Load(); snap != nil {
		return snap.info
	}
	return Info{}
}

// Generation changes whenever what an evaluation may see changes: a new
// snapshot, or with bundles any write to the manager's store (a data-only
// bundle brings no new compiler). A caller that keeps a result computed
// from the policy alone reads Generation before evaluating and keeps the
// result while Generation still returns that value.
func (e *Engine) Generation() uint64 { return e.gen.Load() }

// serve makes snap the snapshot evaluations use.
func (e *Engine) serve(snap *snapshot) {
	e.current.Store(snap)
	e.gen.Add(1)
}

// Reloads reports the failed reloads. With bundles it is always empty: a
// bundle that fails to activate is reported by OPA's bundle plugin (its
// log and status), and the engine never sees it.
func (e *Engine) Reloads() Reloads {
	return Reloads{ReloadFailures: e.failures.Load(), LastReloadFailure: e.lastFailure.Load()}
}

// Reload loads the source again and, when it compiles, atomically replaces the
// snapshot being served. On error the previous snapshot keeps serving, and
// the failure is logged at error and counted (Reloads).
func (e *Engine) Reload(ctx context.Context) error {
	if e.opts.Bundles {
		return nil
	}
	e.reload.Lock()
	defer e.reload.Unlock()
	err := e.load(ctx)
	// The first load has no last good policy: New fails instead.
	if cur := e.current.Load(); err != nil && cur != nil {
		e.failures.Add(1)
		e.lastFailure.Store(&ReloadFailure{At: time.Now().UTC(), Error: err.Error()})
		e.log.WithFields(logrus.Fields{
			"error":    err.Error(),
			"revision": cur.info.Revision,
		}).Error("policy reload failed; the last good policy keeps serving")
	}
	return err
}

// load is Reload's work, under e.reload.
func (e *Engine) load(ctx context.Context) error {

	files, err := e.opts.Source.Load()
	if err != nil {
		return fmt.Errorf("load %s: %w", e.opts.Source, err)
	}
	rev, err := revision(files)
	if err != nil {
		return err
	}
	if cur := e.current.Load(); cur != nil && cur.info.Revision == rev {
		return nil
	}
	snap, err := build(ctx, files, e.opts.Prepare)
	if err != nil {
		return fmt.Errorf("compile %s: %w", e.opts.Source, err)
	}
	snap.info = Info{Revision: rev, Modules: len(files.Modules), LoadedAt: time.Now().UTC()}
	if e.opts.Manager != nil {
		if err := publish(ctx, e.opts.Manager, files, snap.compiler); err != nil {
			return fmt.Errorf("load %s into OPA's plugin manager: %w", e.opts.Source, err)
		}
	}
	e.serve(snap)
	e.log.WithFields(logrus.Fields{"revision": rev, "modules": len(files.Modules), "source": e.opts.Source.String()}).Info("policy loaded")
	return nil
}

// Eval evaluates q with input (nil for none) and returns its value as plain
// Go data (map[string]any, []any, json.Number, string, bool, nil). It returns
// ErrUndefined when the query has no result and wraps ErrTimeout when the
// evaluation ran out of time. Callers deciding access deny on any error.
func (e *Engine) Eval(ctx context.Context, q Query, input ast.Value) (any, error) {
	return e.EvalWith(ctx, q, input, EvalOptions{})
}

// EvalOptions are what OPA's Data API lets a caller ask of one evaluation
// beyond its value (its query parameters metrics, instrument, explain,
// strict-builtin-errors and rule_labels). The zero value asks nothing and
// costs nothing.
type EvalOptions struct {
	// Metrics, when set, receives OPA's evaluation timers and counters
	// (timer_rego_query_eval_ns, counter_server_query_cache_hit, and
	// timer_rego_query_compile_ns when the query had to be prepared).
	Metrics metrics.Metrics
	// Instrument adds OPA's per-operation instrumentation to Metrics.
	Instrument bool
	// Tracer, when set, is told of every evaluation step (explain).
	Tracer topdown.QueryTracer
	// StrictBuiltinErrors makes a built-in function's error fail the
	// evaluation (with its stack trace, as OPA's server reports it)
	// instead of leaving the expression undefined. Such queries are
	// prepared apart from the others.
	StrictBuiltinErrors bool
	// Rules, when set, collects the labels of the rules evaluated.
	Rules *topdown.EvaluatedRuleTracker
}

// EvalWith is Eval with OPA's per-evaluation options.
func (e *Engine) EvalWith(ctx context.Context, q Query, input ast.Value, o EvalOptions) (any, error) {
	if e.opts.Bundles {
		return e.evalShared(ctx, q, input, o)
	}
	return e.eval(ctx, e.current.Load(), q, input, nil, o)
}

// eval evaluates q on snap; txn, when set, is the read transaction on the
// snapshot's store the evaluation must use.
func (e *Engine) eval(ctx context.Context, snap *snapshot, q Query, input ast.Value, txn storage.Transaction, o EvalOptions) (any, error) {
	if snap == nil {
		return nil, fmt.Errorf("evaluate %s: %w", q, ErrNoPolicy)
	}
	pq, err := snap.prepared(ctx, q, txn, o)
	if err != nil {
		return nil, err
	}
	if e.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.opts.Timeout)
		defer cancel()
	}
	opts := []rego.EvalOption{
		rego.EvalInterQueryBuiltinCache(e.interQuery),
		rego.EvalInterQueryBuiltinValueCache(e.interQueryValue),
	}
	if txn != nil {
		opts = append(opts, rego.EvalTransaction(txn))
	}
	if input != nil {
		opts = append(opts, rego.EvalParsedInput(input))
	}
	if o.Metrics != nil {
		opts = append(opts, rego.EvalMetrics(o.Metrics), rego.EvalInstrument(o.Instrument))
	}
	if o.Tracer != nil {
		opts = append(opts, rego.EvalQueryTracer(o.Tracer))
	}
	if o.Rules != nil {
		opts = append(opts, rego.EvalEvaluatedRuleTracker(o.Rules))
	}
	rs, err := pq.Eval(ctx, opts...)
	if err != nil {
		switch ctxErr := ctx.Err(); {
		case errors.Is(ctxErr, context.DeadlineExceeded):
			return nil, fmt.Errorf("evaluate %s: %w: %w", q, ErrTimeout, err)
		case ctxErr != nil:
			return nil, fmt.Errorf("evaluate %s: %w: %w", q, ctxErr, err)
		}
		return nil, fmt.Errorf("evaluate %s: %w", q, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, ErrUndefined
	}
	return rs[0].Expressions[0].Value, nil
}

func (s *snapshot) prepared(ctx context.Context, q Query, txn storage.Transaction, o EvalOptions) (*rego.PreparedEvalQuery, error) {
	key := q.key
	if o.StrictBuiltinErrors {
		key = "strict:" + key
	}
	if pq, ok := s.queries.Load(key); ok {
		if o.Metrics != nil {
			o.Metrics.Counter(metrics.ServerQueryCacheHit).Incr()
		}
		return pq.(*rego.PreparedEvalQuery), nil
	}
	if o.Metrics != nil {
		// Present at 0 on a miss, as in OPA's server.
		o.Metrics.Counter(metrics.ServerQueryCacheHit)
	}
	pq, err := s.prepare(ctx, q, txn, o)
	if err != nil {
		return nil, err
	}
	if s.lazy.Add(1) > maxLazyQueries {
		return pq, nil
	}
	actual, _ := s.queries.LoadOrStore(key, pq)
	return actual.(*rego.PreparedEvalQuery), nil
}

// prepare prepares q on the snapshot; txn, when set, is an open
// transaction on the snapshot's store to prepare in. Of o, it uses
// StrictBuiltinErrors and Metrics (for the compile timer).
func (s *snapshot) prepare(ctx context.Context, q Query, txn storage.Transaction, o EvalOptions) (*rego.PreparedEvalQuery, error) {
	// Located as a parsed query is (row 1 of no file), so traces and
	// stack traces name it "query:1", as OPA's server does.
	loc := &ast.Location{Row: 1, Col: 1, Text: []byte(q.ref.String())}
	term := ast.NewTerm(q.ref)
	term.Location = loc
	expr := ast.NewExpr(term)
	expr.Location = loc
	opts := []func(*rego.Rego){
		rego.ParsedQuery(ast.NewBody(expr)),
		rego.Compiler(s.compiler),
		rego.Store(s.store),
		rego.StoreReadAST(true),
	}
	if txn != nil {
		opts = append(opts, rego.Transaction(txn))
	}
	if o.Metrics != nil {
		opts = append(opts, rego.Metrics(o.Metrics))
	}
	if o.StrictBuiltinErrors {
		// Stack traces cost on every error, so only the strict queries,
		// whose errors are answered, record them (as OPA's server does).
		opts = append(opts, rego.StrictBuiltinErrors(true), rego.StackTraces(true))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", q, err)
	}
	return &pq, nil
}

func build(ctx context.Context, files *Files, prepare []Query) (*snapshot, error) {
	// Values are kept as AST on write so reads need no conversion, as in
	// `opa run --optimize-store-for-read-speed`.
	store := inmem.NewFromObjectWithOpts(files.Data,
		inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	compiler := ast.NewCompiler().WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn))
	compiler.Compile(files.Modules)
	store.Abort(ctx, txn)
	if compiler.Failed() {
		return nil, compiler.Errors
	}
	snap := &snapshot{compiler: compiler, store: store}
	for _, q := range prepare {
		pq, err := snap.prepare(ctx, q, nil, EvalOptions{})
		if err != nil {
			return nil, err
		}
		snap.queries.Store(q.key, pq)
	}
	return snap, nil
}

// revision is a digest of everything loaded, so a reload that changes nothing
// (an editor touching a file) keeps the prepared snapshot.
func revision(f *Files) (string, error) {
	h := sha256.New()
	names := make([]string, 0, len(f.Raw))
	for name := range f.Raw {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(f.Raw[name]))
		h.Write(f.Raw[name])
	}
	// encoding/json writes map keys sorted, so equal data hashes equally.
	if err := json.NewEncoder(h).Encode(f.Data); err != nil {
		return "", fmt.Errorf("hash data: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
