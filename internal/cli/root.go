// Package cli is the `elevate` command line: the server, the policy tools
// (test, check, bundle build) and, later, the API client. Exit codes are
// decided here and only here: 0 success, 1 failure, 2 bad usage or config.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/elevatepdp/elevate/internal/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks a mistake in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// failed reports a failure already explained on the output (a failing test),
// so nothing more is printed.
var errFailed = errors.New("failed")

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errFailed):
		return exitFailure
	}
	fmt.Fprintf(stderr, "elevate: %v\n", err)
	var cfgErr *config.Error
	var use usageError
	if errors.As(err, &cfgErr) || errors.As(err, &use) {
		return exitUsage
	}
	return exitFailure
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "elevate",
		Short: "Elevate: a policy decision point for just-in-time privileged access",
		Long: `Elevate decides who may activate which privileged role, for how long, with
which justification, MFA and approval, and whether an active elevation grants
an action. Its rules are Rego policies evaluated by an embedded OPA.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newServeCmd(),
		newTestCmd(),
		newCheckCmd(),
		newBundleCmd(),
		newVersionCmd(),
		newRolesCmd(), newMyRolesCmd(),
		newAssignCmd(), newAssignmentsCmd(), newUnassignCmd(),
		newActivateCmd(), newRequestsCmd(), newApproveCmd(), newDenyCmd(), newCancelCmd(), newDeactivateCmd(), newExtendCmd(),
		newAuthorizeCmd(),
		newAuditCmd(),
		newTOTPCmd(),
		newDemoCmd(),
	)
	return root
}

// args wraps a cobra argument check so that its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}
