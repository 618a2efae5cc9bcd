package policy

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// Source says where policies and data are loaded from: Rego, JSON and YAML
// files, directories of them, or bundle tarballs, as `opa run` loads them.
type Source struct {
	// FS is read instead of the operating system's file system when set
	// (the policies built into the binary).
	FS fs.FS
	// Paths are files or directories, relative to FS when it is set.
	Paths []string
}

func (s Source) String() string {
	if s.FS != nil {
		return "built-in policies"
	}
	return strings.Join(s.Paths, ", ")
}

// Files are the loaded contents of a Source.
type Files struct {
	Modules map[string]*ast.Module
	Raw     map[string][]byte
	Data    map[string]any
}

// Load reads the source. Unit tests (`*_test.rego`) are left out: they belong
// to `elevate test`, not to the policy being served or bundled.
func (s Source) Load() (*Files, error) {
	res, err := s.Result()
	if err != nil {
		return nil, err
	}
	files := &Files{
		Modules: make(map[string]*ast.Module, len(res.Modules)),
		Raw:     make(map[string][]byte, len(res.Modules)),
		Data:    res.Documents,
	}
	for name, m := range res.Modules {
		files.Modules[name] = m.Parsed
		files.Raw[name] = m.Raw
	}
	return files, nil
}

// Result reads the source as Load does, in the form OPA's loader returns
// and OPA's plugin manager takes (plugins.InitFiles).
func (s Source) Result() (*loader.Result, error) {
	l := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true)
	if s.FS != nil {
		l = l.WithFS(s.FS)
	}
	return l.Filtered(s.Paths, skipTests)
}

func skipTests(_ string, info fs.FileInfo, _ int) bool {
	return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
}

// Roots are the top-level names the files define, under data: the first
// segment of every package and every top-level data key. They make a bundle's
// manifest roots, so the bundle claims exactly what it defines.
func (f *Files) Roots() []string {
	set := map[string]struct{}{}
	for _, m := range f.Modules {
		// m.Package.Path is data.<first>...; a package is at least one segment.
		if len(m.Package.Path) > 1 {
			if s, ok := m.Package.Path[1].Value.(ast.String); ok {
				set[string(s)] = struct{}{}
			}
		}
	}
	for k := range f.Data {
		set[k] = struct{}{}
	}
	roots := make([]string, 0, len(set))
	for k := range set {
		roots = append(roots, k)
	}
	sort.Strings(roots)
	return roots
}

// MergeFS lays several file systems side by side under the given prefixes,
// so the built-in policies and demo data load as one Source.
func MergeFS(parts map[string]fs.FS) (fs.FS, error) {
	// fstest.MapFS is a complete read-only fs.FS over a map, directories implied.
	merged := fstest.MapFS{}
	for prefix, fsys := range parts {
		err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			merged[path.Join(prefix, p)] = &fstest.MapFile{Data: b, Mode: 0o444}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read built-in files under %s: %w", prefix, err)
		}
	}
	return merged, nil
}
