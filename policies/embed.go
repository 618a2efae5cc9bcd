// Package policies holds Elevate's built-in Rego policy set, compiled into the
// binary so `elevate serve` needs no files.
package policies

import "embed"

// FS holds the policy files, tests included; loaders skip `*_test.rego`.
//
//go:embed pim envoy
var FS embed.FS
