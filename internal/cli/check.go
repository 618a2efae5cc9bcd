package cli

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/spf13/cobra"
)

func newCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check path [path ...]",
		Short: "Compile policies in strict mode, as 'opa check --strict' does",
		Long: `Parse and compile the Rego files under the given paths in strict mode
(unused variables and imports, deprecated built-ins and shadowed keywords are
errors) and print each error as file:line. Exits 1 on any error.`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(_ *cobra.Command, paths []string) error {
			return check(paths)
		},
	}
}

// check compiles as 'opa check --strict' does: same loader, same compiler
// settings, so both report the same errors.
func check(paths []string) error {
	res, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		Filtered(paths, nil)
	if err != nil {
		return err
	}
	compiler := ast.NewCompiler().
		WithEnablePrintStatements(true).
		WithStrict(true).
		WithUseTypeCheckAnnotations(true)
	if compiler.Compile(res.ParsedModules()); compiler.Failed() {
		return compiler.Errors
	}
	return nil
}
