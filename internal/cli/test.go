package cli

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
	"github.com/spf13/cobra"
)

type testParams struct {
	verbose  bool
	run      string
	coverage bool
	timeout  time.Duration
}

func newTestCmd() *cobra.Command {
	var p testParams
	cmd := &cobra.Command{
		Use:   "test path [path ...]",
		Short: "Run Rego unit tests, as 'opa test' does",
		Long: `Run the Rego unit tests (rules named test_*) found in the given files and
directories, with the same loading and pass/fail semantics as 'opa test'.
Exits 1 when a test fails or a file does not compile.`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, paths []string) error {
			return runTests(cmd, paths, p)
		},
	}
	cmd.Flags().BoolVarP(&p.verbose, "verbose", "v", false, "list every test and its outcome")
	cmd.Flags().StringVarP(&p.run, "run", "r", "", "run only the tests whose package and name match this regular expression")
	cmd.Flags().BoolVarP(&p.coverage, "coverage", "c", false, "print the percentage of policy lines the tests cover")
	cmd.Flags().DurationVarP(&p.timeout, "timeout", "t", 5*time.Second, "time limit of each test")
	return cmd
}

func runTests(cmd *cobra.Command, paths []string, p testParams) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	modules, store, err := tester.LoadWithParserOptions(paths, nil, ast.ParserOptions{
		RegoVersion:       ast.RegoV1,
		ProcessAnnotation: true,
	})
	if err != nil {
		return err
	}
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return err
	}
	defer store.Abort(ctx, txn)

	// The compiler and runner are set up as 'opa test' sets them up, so both
	// count and judge the same tests.
	compiler := ast.NewCompiler().
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn)).
		WithEnablePrintStatements(true).
		WithUseTypeCheckAnnotations(true)
	var cov *cover.Cover
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		CapturePrintOutput(true).
		EnableTracing(p.verbose).
		SetModules(modules).
		SetTimeout(p.timeout).
		Filter(p.run)
	if p.coverage {
		cov = cover.New()
		runner = runner.SetCoverageQueryTracer(cov)
	}
	results, err := runner.RunTests(ctx, txn)
	if err != nil {
		return err
	}

	failed := false
	ran := 0
	checked := make(chan *tester.Result)
	go func() {
		defer close(checked)
		for r := range results {
			ran++
			if !r.Pass() {
				failed = true
			}
			if p.verbose {
				r.Trace = lineage.Filter(r.Trace, isNoteOrFail)
			}
			checked <- r
		}
	}()
	if err := (tester.PrettyReporter{Verbose: p.verbose, Output: out}).Report(checked); err != nil {
		return err
	}
	if ran == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "no tests were run")
		return errFailed
	}
	if cov != nil {
		printCoverage(out, cov.Report(modules))
	}
	if failed {
		return errFailed
	}
	return nil
}

// isNoteOrFail keeps the trace events `opa test -v` shows by default.
func isNoteOrFail(e *topdown.Event) bool {
	return e.Op == topdown.NoteOp || e.Op == topdown.FailOp
}

func printCoverage(out io.Writer, report cover.Report) {
	files := make([]string, 0, len(report.Files))
	for f := range report.Files {
		files = append(files, f)
	}
	sort.Strings(files)
	fmt.Fprintln(out, "--------------------------------------------------------------------------------")
	for _, f := range files {
		fmt.Fprintf(out, "%6.2f%%  %s\n", report.Files[f].Coverage, f)
	}
	fmt.Fprintf(out, "Coverage: %.2f%%\n", report.Coverage)
}
