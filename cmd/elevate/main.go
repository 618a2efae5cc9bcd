// Command elevate is the Elevate policy decision point and its tools.
package main

import (
	"context"
	"os"

	"github.com/elevatepdp/elevate/internal/cli"
)

func main() {
	os.Exit(cli.Execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
