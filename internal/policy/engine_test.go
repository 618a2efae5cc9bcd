package policy

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

var (
	answer = MustQuery("data.t.answer")
	allow  = MustQuery("data.t.allow")
)

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// Written aside and renamed, as deploy tools do, so a watcher never reads
	// a half-written file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func answerPolicy(v string) string {
	return "package t\n\nanswer := " + v + "\n\nallow if input.user == data.t.admins[_]\n"
}

func newEngine(t *testing.T, src Source, opts ...func(*Options)) *Engine {
	t.Helper()
	o := Options{Source: src, Logger: quietLogger(), Prepare: []Query{answer}}
	for _, f := range opts {
		f(&o)
	}
	e, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	return e
}

func eval(t *testing.T, e *Engine, q Query, input map[string]any) (any, error) {
	t.Helper()
	var v ast.Value
	if input != nil {
		var err error
		if v, err = ast.InterfaceToValue(input); err != nil {
			t.Fatal(err)
		}
	}
	return e.Eval(context.Background(), q, v)
}

func policyDir(t *testing.T, rego string) string {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "t.rego"), rego)
	write(t, filepath.Join(dir, "t", "data.json"), `{"admins": ["alice"]}`)
	return dir
}

func TestEvalWithDataAndInput(t *testing.T) {
	e := newEngine(t, Source{Paths: []string{policyDir(t, answerPolicy("1"))}})
	tests := map[string]struct {
		q     Query
		input map[string]any
		want  any
		err   error
	}{
		"constant":         {q: answer, want: "1"},
		"data and input":   {q: allow, input: map[string]any{"user": "alice"}, want: true},
		"undefined":        {q: allow, input: map[string]any{"user": "mallory"}, err: ErrUndefined},
		"no input":         {q: allow, err: ErrUndefined},
		"unknown document": {q: MustQuery("data.nothing.here"), err: ErrUndefined},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := eval(t, e, tc.q, tc.input)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if tc.err == nil && !equalJSON(got, tc.want) {
				t.Fatalf("got %v (%T), want %v", got, got, tc.want)
			}
		})
	}
}

// equalJSON compares a result (numbers come back as json.Number) with a want.
func equalJSON(got, want any) bool {
	if s, ok := want.(string); ok {
		return strings.TrimSpace(toString(got)) == s
	}
	return got == want
}

func toString(v any) string {
	switch v := v.(type) {
	case interface{ String() string }:
		return v.String()
	case string:
		return v
	}
	return ""
}

func TestPathQuery(t *testing.T) {
	for path, want := range map[string]string{
		"t/answer":   "data.t.answer",
		"/t/answer/": "data.t.answer",
		"":           "data",
		"a b/c.d":    `data["a b"]["c.d"]`,
	} {
		if got := PathQuery(path).String(); got != want {
			t.Errorf("PathQuery(%q) = %s, want %s", path, got, want)
		}
	}
	// Segments that print alike are still different queries.
	if a, b := PathQuery(`1x/q r`), PathQuery(`1x"]["q r`); a.key == b.key {
		t.Fatalf("%s and %s share the key %s", a.ref, b.ref, a.key)
	}
	e := newEngine(t, Source{Paths: []string{policyDir(t, answerPolicy("7"))}})
	if got, err := eval(t, e, PathQuery("t/answer"), nil); err != nil || !equalJSON(got, "7") {
		t.Fatalf("eval by path: %v, %v", got, err)
	}
}

func TestParseQueryRejectsNonDataRefs(t *testing.T) {
	for _, s := range []string{"input.x", "data.x[y]", "data.x; true", "1 + 1", ""} {
		if _, err := ParseQuery(s); err == nil {
			t.Errorf("ParseQuery(%q) succeeded", s)
		}
	}
}

func TestNewRefusesBrokenPolicyWithFileAndLine(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "broken.rego"), "package t\n\nallow if {\n\tinput.x ==\n}\n")
	_, err := New(context.Background(), Options{Source: Source{Paths: []string{dir}}, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "broken.rego:") {
		t.Fatalf("want a file:line error, got %v", err)
	}
	write(t, filepath.Join(dir, "broken.rego"), "package t\n\nallow if undefined_function(1)\n")
	_, err = New(context.Background(), Options{Source: Source{Paths: []string{dir}}, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "broken.rego:3") {
		t.Fatalf("want a compile error at broken.rego:3, got %v", err)
	}
}

func TestUnitTestsAreNotServed(t *testing.T) {
	dir := policyDir(t, answerPolicy("1"))
	write(t, filepath.Join(dir, "t_test.rego"), "package t_test\n\ntest_x if true\n")
	e := newEngine(t, Source{Paths: []string{dir}})
	if _, err := eval(t, e, MustQuery("data.t_test.test_x"), nil); !errors.Is(err, ErrUndefined) {
		t.Fatalf("test rule is served: %v", err)
	}
}

func TestReloadSwapsAndBadReloadKeepsServing(t *testing.T) {
	dir := policyDir(t, answerPolicy("1"))
	e := newEngine(t, Source{Paths: []string{dir}})
	rev1 := e.Info().Revision

	write(t, filepath.Join(dir, "t.rego"), answerPolicy("2"))
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := eval(t, e, answer, nil); !equalJSON(got, "2") {
		t.Fatalf("after reload got %v, want 2", got)
	}
	rev2 := e.Info().Revision
	if rev2 == rev1 {
		t.Fatal("revision did not change")
	}

	write(t, filepath.Join(dir, "t.rego"), "package t\n\nanswer := \n")
	if err := e.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "t.rego:") {
		t.Fatalf("bad reload: want a file:line error, got %v", err)
	}
	if got, _ := eval(t, e, answer, nil); !equalJSON(got, "2") {
		t.Fatalf("after a bad reload got %v, want the last good answer 2", got)
	}
	if e.Info().Revision != rev2 {
		t.Fatal("revision changed on a failed reload")
	}

	// Reloading unchanged files keeps the snapshot.
	write(t, filepath.Join(dir, "t.rego"), answerPolicy("2"))
	loaded := e.Info().LoadedAt
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.Info().LoadedAt != loaded {
		t.Fatal("an unchanged reload replaced the snapshot")
	}
}

func TestDataChangeReloads(t *testing.T) {
	dir := policyDir(t, answerPolicy("1"))
	e := newEngine(t, Source{Paths: []string{dir}})
	write(t, filepath.Join(dir, "t", "data.json"), `{"admins": ["mallory"]}`)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := eval(t, e, allow, map[string]any{"user": "mallory"}); got != true {
		t.Fatalf("data change not seen: %v", got)
	}
}

func TestGenerationChangesWithTheSnapshot(t *testing.T) {
	dir := policyDir(t, answerPolicy("1"))
	e := newEngine(t, Source{Paths: []string{dir}})
	g := e.Generation()
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.Generation() != g {
		t.Fatal("a reload that changed nothing changed the generation")
	}
	write(t, filepath.Join(dir, "t", "data.json"), `{"admins": ["mallory"]}`)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.Generation() == g {
		t.Fatal("new data, same generation")
	}
}

// Evaluations running while the policy is reloaded over and over each see
// one whole policy: never an error, never a mix of old and new.
func TestConcurrentEvalDuringReload(t *testing.T) {
	dir := policyDir(t, answerPolicy("1"))
	e := newEngine(t, Source{Paths: []string{dir}})
	pair := MustQuery("data.t.pair")

	ctx := context.Background()
	var stop atomic.Bool
	var defined atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				v, err := e.Eval(ctx, pair, nil)
				if errors.Is(err, ErrUndefined) {
					continue // the first version has no pair
				}
				if err != nil {
					errs <- err
					return
				}
				defined.Add(1)
				p := v.([]any)
				if toString(p[0]) != toString(p[1]) {
					errs <- errors.New("half-loaded policy: " + toString(p[0]) + " != " + toString(p[1]))
					return
				}
			}
		}()
	}
	for i := range 30 {
		n := string(rune('0' + i%10))
		// Two files that must change together: the pair is only consistent
		// when both come from one load.
		write(t, filepath.Join(dir, "t.rego"), answerPolicy(n)+"\npair := [answer, data.u.b]\n")
		write(t, filepath.Join(dir, "u.rego"), "package u\n\nb := "+n+"\n")
		if err := e.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if defined.Load() == 0 {
		t.Fatal("no evaluation saw a loaded pair")
	}
}

func TestWatchReloadsOnFileChange(t *testing.T) {
	dir := policyDir(t, answerPolicy("1"))
	log, logged := logtest.NewNullLogger()
	e := newEngine(t, Source{Paths: []string{dir}}, func(o *Options) { o.Logger = log })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	// seen polls until the answer is want, for at most d.
	seen := func(want string, d time.Duration) bool {
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if got, _ := eval(t, e, answer, nil); equalJSON(got, want) {
				return true
			}
		}
		return false
	}
	waitFor := func(want string) {
		t.Helper()
		if !seen(want, 10*time.Second) {
			got, _ := eval(t, e, answer, nil)
			t.Fatalf("answer stayed %v, want %s", got, want)
		}
	}
	// The watcher registers its directories some time after Watch starts,
	// and says nothing when it has: write until a reload shows the change.
	// Each try waits longer than settle, since a write resets its timer.
	for try := 0; ; try++ {
		write(t, filepath.Join(dir, "t.rego"), answerPolicy("2"))
		if seen("2", 5*settle) {
			break
		}
		if try == 20 {
			t.Fatal("the watcher never reloaded")
		}
	}

	// A new directory, then a file in it.
	write(t, filepath.Join(dir, "sub", "s.rego"), "package t2\n\nx := 1\n")
	write(t, filepath.Join(dir, "sub", "s.rego"), "package t\n\nanswer_plus := answer + 1\n")
	write(t, filepath.Join(dir, "t.rego"), answerPolicy("3"))
	waitFor("3")

	// A broken file is logged and the last good policy serves on.
	write(t, filepath.Join(dir, "t.rego"), "package t\n\nanswer := \n")
	// Waited for by its log line, the one sign a failed reload leaves.
	reloadFailed := func() bool {
		for _, entry := range logged.AllEntries() {
			if entry.Message == "policy reload failed; the last good policy keeps serving" {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !reloadFailed(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the broken file was never reloaded")
		}
	}
	if got, err := eval(t, e, answer, nil); err != nil || !equalJSON(got, "3") {
		t.Fatalf("broken file: got %v, %v; want 3", got, err)
	}
	write(t, filepath.Join(dir, "t.rego"), answerPolicy("4"))
	waitFor("4")
}

// TestFailedReloadIsVisible: a broken file in a watched directory keeps
// the last good policy serving, and the failure is counted, kept with its
// time and error (for /health/ready and /metrics) and logged at error.
func TestFailedReloadIsVisible(t *testing.T) {
	dir := policyDir(t, answerPolicy("1"))
	log, logged := logtest.NewNullLogger()
	e := newEngine(t, Source{Paths: []string{dir}}, func(o *Options) { o.Logger = log })
	if r := e.Reloads(); r.ReloadFailures != 0 || r.LastReloadFailure != nil {
		t.Fatalf("a fresh engine reports failed reloads: %+v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The watcher says nothing when it is watching: write until a reload
	// shows the change (see TestWatchReloadsOnFileChange).
	for try := 0; ; try++ {
		write(t, filepath.Join(dir, "t.rego"), answerPolicy("2"))
		if got, _ := eval(t, e, answer, nil); equalJSON(got, "2") {
			break
		}
		if try == 50 {
			t.Fatal("the watcher never reloaded")
		}
		time.Sleep(5 * settle)
	}

	before := time.Now().UTC()
	write(t, filepath.Join(dir, "t.rego"), "package t\n\nanswer := \n")
	for deadline := time.Now().Add(10 * time.Second); e.Reloads().ReloadFailures == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the broken file was never reloaded")
		}
	}
	if got, err := eval(t, e, answer, nil); err != nil || !equalJSON(got, "2") {
		t.Fatalf("after a failed reload got %v, %v; want the last good answer 2", got, err)
	}
	r := e.Reloads()
	last := r.LastReloadFailure
	if last == nil || !strings.Contains(last.Error, "t.rego:") || last.At.Before(before) || time.Since(last.At) > time.Minute {
		t.Fatalf("last failure %+v, want one naming t.rego: at about %s", last, before)
	}
	var line *logrus.Entry
	for _, entry := range logged.AllEntries() {
		if entry.Message == "policy reload failed; the last good policy keeps serving" {
			line = entry
		}
	}
	if line == nil || line.Level != logrus.ErrorLevel || line.Data["error"] != last.Error || line.Data["revision"] != e.Info().Revision {
		t.Fatalf("log line %+v, want one at error with the error and the revision served", line)
	}

	// A good file again: served, and the failure stays on record.
	write(t, filepath.Join(dir, "t.rego"), answerPolicy("3"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got, _ := eval(t, e, answer, nil); equalJSON(got, "3") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fixed file was never reloaded")
		}
	}
	if after := e.Reloads(); after.ReloadFailures != r.ReloadFailures || after.LastReloadFailure != last {
		t.Fatalf("after a good reload %+v, want the failures kept as %+v", after, r)
	}
	if !e.Info().LoadedAt.After(last.At) {
		t.Fatal("the good policy's load time is not after the failure")
	}
}

func TestEvalTimeout(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "slow.rego"), "package t\n\nanswer := count([1 | some i in numbers.range(1, 5000); some j in numbers.range(1, 5000); i != j])\n")
	e := newEngine(t, Source{Paths: []string{dir}}, func(o *Options) {
		o.Timeout = 20 * time.Millisecond
		o.Prepare = nil
	})
	_, err := eval(t, e, answer, nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
}

func TestLoadsBundleTarball(t *testing.T) {
	roots := []string{"t"}
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: "r1", Roots: &roots},
		Data:     map[string]any{"t": map[string]any{"admins": []any{"bob"}}},
		Modules: []bundle.ModuleFile{{
			URL: "t.rego", Path: "t.rego",
			Raw: []byte(answerPolicy(`"from bundle"`)),
		}},
	}
	path := filepath.Join(t.TempDir(), "b.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.NewWriter(f).Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()

	e := newEngine(t, Source{Paths: []string{path}})
	if got, _ := eval(t, e, answer, nil); got != "from bundle" {
		t.Fatalf("got %v", got)
	}
	if got, _ := eval(t, e, allow, map[string]any{"user": "bob"}); got != true {
		t.Fatalf("bundle data not loaded: %v", got)
	}
}

func TestRootsAndMergeFS(t *testing.T) {
	dir := policyDir(t, answerPolicy("1"))
	write(t, filepath.Join(dir, "other.rego"), "package x.y\n\nz := 1\n")
	fsys, err := MergeFS(map[string]fs.FS{"a": os.DirFS(dir)})
	if err != nil {
		t.Fatal(err)
	}
	files, err := Source{FS: fsys, Paths: []string{"a"}}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(files.Roots(), ","); got != "t,x" {
		t.Fatalf("roots %q, want t,x", got)
	}
}
