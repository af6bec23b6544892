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

func pairCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "pair",
		Usage: "create a PIN that lets a new machine join the mesh (works on any member)",
		Flags: clientFlags(
			&ucli.DurationFlag{Name: "ttl", Usage: "how long the PIN is valid (30s–24h)", Value: 0},
			&ucli.StringSliceFlag{Name: "role", Usage: "role of the new node (repeatable; default node)"},
			&ucli.BoolFlag{Name: "require-approval", Usage: "the join waits until `palyra nodes approve NAME`"},
		),
		Subcommands: []*ucli.Command{{
			Name:   "list",
			Usage:  "list pairing tickets: who created, relayed and used each (never the PINs)",
			Flags:  clientFlags(),
			Action: clientAction(false, listTickets, printTickets),
		}},
		Action: clientAction(false, createTicket, printTicket),
	}
}

func createTicket(ctx context.Context, cl *client.Client, _ string, c *ucli.Context) (*api.Ticket, error) {
	req := api.TicketRequest{Roles: c.StringSlice("role"), RequireApproval: c.Bool("require-approval")}
	if d := c.Duration("ttl"); d != 0 {
		req.TTL = d.String()
	}
	return cl.CreateTicket(ctx, req)
}

func printTicket(w io.Writer, t *api.Ticket) error {
	fmt.Fprintf(w, "PIN %s (valid until %s, roles %v)\n", t.PIN, t.ExpiresAt.Local().Format("15:04:05"), t.Roles)
	fmt.Fprintf(w, "On the new machine run:\n")
	if len(t.Peers) > 0 {
		fmt.Fprintf(w, "  palyra agent --pin %s --peer %s\n", t.PIN, t.Peers[0])
	}
	_, err := fmt.Fprintf(w, "or, on the same LAN (found by mDNS):\n  palyra agent --pin %s\n", t.PIN)
	return err
}

func listTickets(ctx context.Context, cl *client.Client, _ string, _ *ucli.Context) (api.TicketList, error) {
	ts, err := cl.Tickets(ctx)
	return api.TicketList{Tickets: ts}, err
}

func printTickets(w io.Writer, l api.TicketList) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tROLES\tCREATED BY\tON\tUSED BY\tRELAYED BY\tFAILURES\tEXPIRES")
	for _, t := range l.Tickets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", short(t.ID), t.State, joinRoles(t.Roles), t.CreatedBy, t.CreatedOn,
			dash(t.UsedBy), dash(t.RelayedBy), t.Failures, t.ExpiresAt.Local().Format("15:04:05"))
	}
	return tw.Flush()
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
