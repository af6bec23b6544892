// Package cli is palyra's command line: `palyra agent` runs a node, the
// other commands talk to a running agent through the HTTP API client.
package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// Version is set at build time (-ldflags "-X .../cli.Version=v1.2.3").
var Version = "0.1.0-dev"

// usageError marks errors that exit with status 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Main runs the command line and returns the process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(interspersed(app, args))
	if err == nil {
		if len(args) > 1 && !strings.HasPrefix(args[1], "-") && app.Command(args[1]) == nil {
			return 2
		}
		return 0
	}
	fmt.Fprintf(stderr, "palyra: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) || strings.Contains(err.Error(), "flag provided but not defined") || strings.HasPrefix(err.Error(), "invalid value") {
		return 2
	}
	return 1
}

func newApp(stdout, stderr io.Writer) *ucli.App {
	return &ucli.App{
		Name:      "palyra",
		Usage:     "a peer-to-peer mesh agent",
		Version:   Version,
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*ucli.Command{
			agentCommand(),
			pairCommand(),
			statusCommand(),
			nodesCommand(),
		},
		// urfave prints usage errors itself; we only want one line.
		OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
			return usageError{err}
		},
		CommandNotFound: func(c *ucli.Context, name string) {
			fmt.Fprintf(stderr, "palyra: unknown command %q (see palyra --help)\n", name)
		},
		ExitErrHandler: func(*ucli.Context, error) {},
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
