package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/palyra-mesh/palyra/api"
	"github.com/palyra-mesh/palyra/client"
)

func nodesCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "nodes",
		Usage: "list, show, approve, reject or revoke nodes",
		Subcommands: []*ucli.Command{
			{
				Name:   "list",
				Usage:  "list the nodes of the mesh",
				Flags:  clientFlags(),
				Action: clientAction(false, listNodes, printNodes),
			},
			{
				Name:      "show",
				Usage:     "show one node with its certificate",
				ArgsUsage: "NAME",
				Flags:     clientFlags(),
				Action: clientAction(true, func(ctx context.Context, cl *client.Client, name string, _ *ucli.Context) (*api.Node, error) {
					return cl.Node(ctx, name)
				}, printNode),
			},
			decideCommand("approve", "approve a join that waits for approval", func(ctx context.Context, cl *client.Client, name string) (*api.Decision, error) {
				return cl.Decide(ctx, name, true)
			}),
			decideCommand("reject", "reject a join that waits for approval", func(ctx context.Context, cl *client.Client, name string) (*api.Decision, error) {
				return cl.Decide(ctx, name, false)
			}),
			decideCommand("revoke", "revoke a node: every member refuses it from now on, for good", func(ctx context.Context, cl *client.Client, name string) (*api.Decision, error) {
				return cl.Revoke(ctx, name)
			}),
		},
	}
}

func listNodes(ctx context.Context, cl *client.Client, _ string, _ *ucli.Context) (api.NodeList, error) {
	l, err := cl.Nodes(ctx)
	return *l, err
}

func printNodes(w io.Writer, l api.NodeList) error {
	printWarnings(w, l.Warnings)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tROLES\tREVOKED\tCERT EXPIRES\tPEER ID")
	for _, n := range l.Nodes {
		exp := "-"
		if !n.CertExpiresAt.IsZero() {
			exp = n.CertExpiresAt.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", n.Name, n.State, joinRoles(n.Roles), n.Revoked, exp, n.PeerID)
	}
	return tw.Flush()
}

func printNode(w io.Writer, n *api.Node) error {
	printWarnings(w, n.Warnings)
	fmt.Fprintf(w, "name:        %s\npeer id:     %s\nstate:       %s\nroles:       %s\nrevoked:     %v\n", n.Name, n.PeerID, n.State, joinRoles(n.Roles), n.Revoked)
	if !n.CertExpiresAt.IsZero() {
		fmt.Fprintf(w, "cert until:  %s\n", n.CertExpiresAt.Local().Format("2006-01-02 15:04:05"))
	}
	if n.RelayedBy != "" {
		fmt.Fprintf(w, "paired via:  %s\n", n.RelayedBy)
	}
	for _, a := range n.Addrs {
		fmt.Fprintf(w, "address:     %s\n", a)
	}
	_, err := fmt.Fprint(w, n.CertPEM)
	return err
}

// decideCommand is a `nodes VERB NAME` command answering a decision.
func decideCommand(verb, usage string, do func(ctx context.Context, cl *client.Client, name string) (*api.Decision, error)) *ucli.Command {
	return &ucli.Command{
		Name:      verb,
		Usage:     usage,
		ArgsUsage: "NAME",
		Flags:     clientFlags(),
		Action: clientAction(true, func(ctx context.Context, cl *client.Client, name string, _ *ucli.Context) (*api.Decision, error) {
			return do(ctx, cl, name)
		}, func(w io.Writer, d *api.Decision) error { return printDecision(w, d.Name, d.Decision) }),
	}
}
