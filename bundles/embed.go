// Package bundles holds the demo data built into the binary. Bundles built by
// `elevate bundle build` are written beside it by default.
package bundles

import "embed"

// Demo is the demo tenant's role settings and assignments, under demo/.
//
//go:embed demo
var Demo embed.FS
