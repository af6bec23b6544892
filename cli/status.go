package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/palyra-mesh/palyra/api"
	"github.com/palyra-mesh/palyra/client"
)

func statusCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "status",
		Usage: "show the mesh: members, their states, the coordinator",
		Flags: clientFlags(),
		Action: clientAction(false, func(ctx context.Context, cl *client.Client, _ string, _ *ucli.Context) (*api.Status, error) {
			return cl.Status(ctx)
		}, printStatus),
	}
}

func printStatus(w io.Writer, s *api.Status) error {
	fmt.Fprintf(w, "mesh %s, this node %s (%s)\n", s.MeshID, s.Self.Name, s.Self.PeerID)
	if s.Coordinator != nil {
		fmt.Fprintf(w, "coordinator %s, term %d, quorum %v\n", s.Coordinator.Name, s.Term, s.Quorum)
	} else {
		fmt.Fprintf(w, "no coordinator known, quorum %v\n", s.Quorum)
	}
	printWarnings(w, s.Warnings)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tROLE\tVERSION\tADDRESS\tPEER ID")
	for _, m := range s.Members {
		role := "member"
		switch {
		case m.Coordinator:
			role = "coordinator"
		case m.Voter:
			role = "voter"
		}
		addr := ""
		if len(m.Addrs) > 0 {
			addr = m.Addrs[0]
		}
		state := m.State
		if m.Revoked {
			state += ",revoked"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, state, role, m.Version, addr, m.PeerID)
	}
	return tw.Flush()
}

func joinRoles(r []string) string {
	if len(r) == 0 {
		return "-"
	}
	return strings.Join(r, ",")
}
