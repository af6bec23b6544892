package cli

import (
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"
)

func nodesCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "nodes",
		Usage: "list, show, approve or reject nodes",
		Subcommands: []*ucli.Command{
			{
				Name:  "list",
				Usage: "list the nodes of the mesh",
				Flags: clientFlags(),
				Action: func(c *ucli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					cl, err := newClient(c)
					if err != nil {
						return err
					}
					ctx, cancel := cmdContext(c)
					defer cancel()
					nodes, err := cl.Nodes(ctx)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c, map[string]any{"nodes": nodes})
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "NAME\tSTATE\tROLES\tREVOKED\tCERT EXPIRES\tPEER ID")
					for _, n := range nodes {
						exp := "-"
						if !n.CertExpiresAt.IsZero() {
							exp = n.CertExpiresAt.Local().Format("2006-01-02 15:04")
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", n.Name, n.State, joinRoles(n.Roles), n.Revoked, exp, n.PeerID)
					}
					return tw.Flush()
				},
			},
			{
				Name:      "show",
				Usage:     "show one node with its certificate",
				ArgsUsage: "NAME",
				Flags:     clientFlags(),
				Action: func(c *ucli.Context) error {
					name, err := oneArg(c)
					if err != nil {
						return err
					}
					cl, err := newClient(c)
					if err != nil {
						return err
					}
					ctx, cancel := cmdContext(c)
					defer cancel()
					n, err := cl.Node(ctx, name)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c, n)
					}
					w := c.App.Writer
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
					fmt.Fprint(w, n.CertPEM)
					return nil
				},
			},
			decideCommand("approve", true),
			decideCommand("reject", false),
			revokeCommand(),
		},
	}
}

func decideCommand(name string, approve bool) *ucli.Command {
	return &ucli.Command{
		Name:      name,
		Usage:     name + " a join that waits for approval",
		ArgsUsage: "NAME",
		Flags:     clientFlags(),
		Action: func(c *ucli.Context) error {
			node, err := oneArg(c)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := cmdContext(c)
			defer cancel()
			d, err := cl.Decide(ctx, node, approve)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, d)
			}
			fmt.Fprintf(c.App.Writer, "%s: %s\n", d.Name, d.Decision)
			return nil
		},
	}
}

func oneArg(c *ucli.Context) (string, error) {
	if c.Args().Len() != 1 {
		return "", usagef("%s needs exactly one NAME", c.Command.FullName())
	}
	return c.Args().First(), nil
}

func revokeCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "revoke",
		Usage:     "revoke a node: every member refuses it from now on, for good",
		ArgsUsage: "NAME",
		Flags:     clientFlags(),
		Action: func(c *ucli.Context) error {
			node, err := oneArg(c)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := cmdContext(c)
			defer cancel()
			d, err := cl.Revoke(ctx, node)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, d)
			}
			fmt.Fprintf(c.App.Writer, "%s: %s\n", d.Name, d.Decision)
			return nil
		},
	}
}
