package cli

import (
	"fmt"
	"runtime"

	opaversion "github.com/open-policy-agent/opa/v1/version"
	"github.com/spf13/cobra"
)

// version is set at build time: -ldflags "-X github.com/elevatepdp/elevate/internal/cli.version=v1.2.3".
var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of elevate and of its OPA",
		Args:  args(cobra.NoArgs),
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "elevate %s\nOPA %s\n%s %s/%s\n",
				version, opaversion.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
