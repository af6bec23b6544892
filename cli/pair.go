package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/palyra-mesh/palyra/api"
	"github.com/palyra-mesh/palyra/client"
)

func pairCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "pair",
		Usage: "create a PIN that lets a new machine join the mesh (works on any member)",
		Flags: clientFlags(
			&ucli.DurationFlag{
				Name:        "ttl",
				Usage:       fmt.Sprintf("how long the PIN is valid (%s to %s)", shortDuration(minTTL), shortDuration(maxTTL)),
				Value:       defaultTTL,
				DefaultText: shortDuration(defaultTTL),
				EnvVars:     env("ttl"),
				Action:      checkTTL,
			},
			&ucli.StringSliceFlag{Name: "role", Usage: "role of the new node (repeatable; default node)", EnvVars: env("role")},
			// No backticks in Usage: urfave would show the quoted text as
			// the flag's value placeholder.
			&ucli.BoolFlag{Name: "require-approval", Usage: "the new node joins only once approved with palyra nodes approve NAME", EnvVars: env("require-approval")},
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
	req := api.TicketRequest{
		TTL:             c.Duration("ttl").String(),
		Roles:           c.StringSlice("role"),
		RequireApproval: c.Bool("require-approval"),
	}
	return cl.CreateTicket(ctx, req)
}

// PIN lifetimes, as ca.DefaultTicketTTL, ca.MinTicketTTL and
// ca.MaxTicketTTL (a test keeps them equal; cli does not import ca). The
// agent clamps a TTL outside the bounds; the CLI refuses it instead, so
// the PIN lives as long as the user asked.
const (
	defaultTTL = 10 * time.Minute
	minTTL     = 30 * time.Second
	maxTTL     = 24 * time.Hour
)

// checkTTL runs when --ttl (or PALYRA_TTL) is given, before any request.
func checkTTL(c *ucli.Context, d time.Duration) error {
	if d < minTTL || d > maxTTL {
		return usageIn(c, "--ttl %s: want %s to %s", shortDuration(d), shortDuration(minTTL), shortDuration(maxTTL))
	}
	return nil
}

// shortDuration formats d without zero trailing units: 10m, not 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
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
	l, err := cl.Tickets(ctx)
	return *l, err
}

func printTickets(w io.Writer, l api.TicketList) error {
	printWarnings(w, l.Warnings)
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
