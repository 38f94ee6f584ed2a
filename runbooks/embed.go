// Package runbooks is kdiag's built-in runbook library, embedded in the
// binary and loaded as @kdiag//NAME.star. Each runbook has recordings under
// testdata/ that `kdiag test` replays.
package runbooks

import "embed"

// FS holds the library's runbooks and modules.
//
//go:embed *.star lib/*.star
var FS embed.FS
