package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/compile"
	"github.com/spf13/cobra"
)

func newBundleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Work with OPA bundles",
	}
	cmd.AddCommand(newBundleBuildCmd())
	return cmd
}

type bundleParams struct {
	output   string
	revision string
	roots    []string
}

func newBundleBuildCmd() *cobra.Command {
	var p bundleParams
	cmd := &cobra.Command{
		Use:   "build [path ...] [-o FILE]",
		Short: "Build an OPA bundle tarball that upstream 'opa run -b' accepts",
		Long: `Build an OPA bundle (.tar.gz with a .manifest) from the given paths, loaded as
'elevate serve' loads them (unit tests are left out); with no path, from the
policies and demo data built into the binary. The manifest's roots are the
top-level packages and data keys found, unless --root is given. The policies
are compiled first: a bundle that does not compile is not written.`,
		RunE: func(cmd *cobra.Command, paths []string) error {
			return buildBundle(cmd, paths, p)
		},
	}
	cmd.Flags().StringVarP(&p.output, "output", "o", filepath.Join("bundles", "bundle.tar.gz"), "file to write")
	cmd.Flags().StringVar(&p.revision, "revision", "", "revision to record in the manifest")
	cmd.Flags().StringSliceVar(&p.roots, "root", nil, "a manifest root (repeatable); default: inferred from packages and data")
	return cmd
}

func buildBundle(cmd *cobra.Command, paths []string, p bundleParams) error {
	src, err := source(paths)
	if err != nil {
		return err
	}
	files, err := src.Load()
	if err != nil {
		return err
	}
	roots := p.roots
	if len(roots) == 0 {
		roots = files.Roots()
	}
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{Revision: p.revision, Roots: &roots},
		Data:     files.Data,
	}
	b.SetRegoVersion(ast.RegoV1)
	b.Manifest.Init()
	names := make([]string, 0, len(files.Modules))
	for name := range files.Modules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.ToSlash(name)
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: path, Path: path, Parsed: files.Modules[name], Raw: files.Raw[name]})
	}

	// Written beside the target and renamed into place, so a failed build
	// never leaves a truncated bundle where a bundle server would find it.
	if err := os.MkdirAll(filepath.Dir(p.output), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.output), ".bundle-*.tar.gz")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = compile.New().
		WithRegoVersion(ast.RegoV1).
		WithBundle(b).
		WithOutput(tmp).
		Build(cmd.Context())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("build bundle: %w", err)
	}
	if err := os.Rename(tmp.Name(), p.output); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (roots %v, %d modules)\n", p.output, roots, len(b.Modules))
	return nil
}
