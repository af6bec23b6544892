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

// Main runs the command line and returns the process exit status: 0, 2 for
// a usage error, 1 for any other failure. A failure is one line on stderr.
func Main(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	// `palyra help bogus` and `palyra nodes help bogus` end here, and urfave
	// then succeeds: keep the mistake to report it.
	var notFound error
	app.CommandNotFound = func(c *ucli.Context, name string) { notFound = unknownCommand(c, name) }
	err := app.Run(interspersed(app, args))
	if err == nil {
		err = notFound
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "palyra: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func newApp(stdout, stderr io.Writer) *ucli.App {
	app := &ucli.App{
		Name:      "palyra",
		HelpName:  "palyra", // not os.Args[0]: error hints name the command to run
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
		Action:       groupAction(nil, ucli.ShowAppHelp),
		OnUsageError: onUsageError,
		// Main maps errors to exit codes; urfave must not exit itself.
		ExitErrHandler: func(*ucli.Context, error) {},
	}
	strict(app.Commands)
	return app
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
