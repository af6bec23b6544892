package cli

import (
	"context"
	"fmt"
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/palyra-mesh/palyra/client"
)

// call is what a client command does with the agent: it gets the API
// client, the command's one NAME argument ("" for commands without one) and
// the parsed flags, and returns the answer to print.
type call[T any] func(ctx context.Context, cl *client.Client, name string, c *ucli.Context) (T, error)

// clientAction builds the action of a client command: check the arguments
// (exactly one NAME when withName, none otherwise), call the agent, then
// print the answer as one JSON document with --json, else with human.
func clientAction[T any](withName bool, do call[T], human func(w io.Writer, v T) error) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		var name string
		if withName {
			if c.Args().Len() != 1 {
				return usageIn(c, "%s needs exactly one NAME, got %d", commandPath(c), c.Args().Len())
			}
			name = c.Args().First()
		} else if err := noArgs(c); err != nil {
			return err
		}
		cl, err := newClient(c)
		if err != nil {
			return err
		}
		ctx, cancel := cmdContext(c)
		defer cancel()
		v, err := do(ctx, cl, name, c)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return printJSON(c, v)
		}
		return human(c.App.Writer, v)
	}
}

// printDecision is the human form of approve, reject and revoke.
func printDecision(w io.Writer, name, decision string) error {
	_, err := fmt.Fprintf(w, "%s: %s\n", name, decision)
	return err
}

// printWarnings prints what an answer warns of (no quorum, a stale copy,
// a certificate close to expiry) before the answer itself.
func printWarnings(w io.Writer, warnings []string) {
	for _, warn := range warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}
