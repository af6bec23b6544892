package cli

import (
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/palyra-mesh/palyra/api"
)

func pairCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "pair",
		Usage: "create a PIN that lets a new machine join the mesh (works on any member)",
		Flags: clientFlags(
			&ucli.DurationFlag{Name: "ttl", Usage: "how long the PIN is valid (30s–24h)", Value: 0},
			&ucli.StringSliceFlag{Name: "role", Usage: "role of the new node (repeatable; default node)"},
			&ucli.BoolFlag{Name: "require-approval", Usage: "the join waits until `palyra nodes approve NAME`"},
		),
		Subcommands: []*ucli.Command{pairListCommand()},
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
			req := api.TicketRequest{Roles: c.StringSlice("role"), RequireApproval: c.Bool("require-approval")}
			if d := c.Duration("ttl"); d != 0 {
				req.TTL = d.String()
			}
			t, err := cl.CreateTicket(ctx, req)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, t)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "PIN %s (valid until %s, roles %v)\n", t.PIN, t.ExpiresAt.Local().Format("15:04:05"), t.Roles)
			fmt.Fprintf(w, "On the new machine run:\n")
			if len(t.Peers) > 0 {
				fmt.Fprintf(w, "  palyra agent --pin %s --peer %s\n", t.PIN, t.Peers[0])
			}
			fmt.Fprintf(w, "or, on the same LAN (found by mDNS):\n  palyra agent --pin %s\n", t.PIN)
			return nil
		},
	}
}

func pairListCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "list",
		Usage: "list pairing tickets: who created, relayed and used each (never the PINs)",
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
			ts, err := cl.Tickets(ctx)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, map[string]any{"tickets": ts})
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tROLES\tCREATED BY\tON\tUSED BY\tRELAYED BY\tFAILURES\tEXPIRES")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", short(t.ID), t.State, joinRoles(t.Roles), t.CreatedBy, t.CreatedOn,
					dash(t.UsedBy), dash(t.RelayedBy), t.Failures, t.ExpiresAt.Local().Format("15:04:05"))
			}
			return tw.Flush()
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
