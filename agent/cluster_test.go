package agent_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/palyra-mesh/palyra/api"
	"github.com/palyra-mesh/palyra/testutil"
)

// leakOptions ignores goroutines that libraries start once per process and
// never stop (not per agent), and memberlist's probe, which Shutdown does not
// wait for: it ends when its ack timer fires.
var leakOptions = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	goleak.IgnoreTopFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
	goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/tcpreuse/internal/sampledconn.init"),
}

func verifyNoLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t, leakOptions...) })
}

func newTicket(t *testing.T, c *testutil.Cluster, i int) (*api.Ticket, error) {
	t.Helper()
	return c.Client(i).CreateTicket(context.Background(), api.TicketRequest{TTL: "1m"})
}

// TestClusterFailover: three voters; the coordinator crashes; another takes
// over and takes writes through any member; the old one returns as a
// follower.
func TestClusterFailover(t *testing.T) {
	verifyNoLeaks(t)
	c := testutil.NewCluster(t, 3)
	c.WaitVoters(0, 3)
	old := c.WaitCoordinator(0, 1, 2)
	c.Stop(old)
	coord := c.WaitCoordinator(c.Running()...)
	if coord == old {
		t.Fatalf("coordinator still node%d", old)
	}
	for _, i := range c.Running() {
		if _, err := newTicket(t, c, i); err != nil {
			t.Fatalf("write through node%d after failover: %v", i, err)
		}
	}
	c.Restart(old)
	c.WaitConverged()
	if got := c.WaitCoordinator(0, 1, 2); got != coord {
		t.Fatalf("coordinator moved from node%d to node%d when node%d returned", coord, got, old)
	}
}

// TestClusterPartition: six members, five of them voters, cut 3|3 so that
// one side holds two voters and the non-voter; that side refuses writes
// saying why and still answers reads from a voter's copy; after healing, one
// coordinator.
func TestClusterPartition(t *testing.T) {
	verifyNoLeaks(t)
	c := testutil.NewCluster(t, 6)
	c.WaitVoters(0, 5)
	var voters []int
	nonVoter := -1
	for _, m := range c.Status(0).Members {
		i := int(m.Name[len("node")] - '0')
		if m.Voter {
			voters = append(voters, i)
		} else {
			nonVoter = i
		}
	}
	if len(voters) != 5 || nonVoter < 0 {
		t.Fatalf("voters %v, non-voter node%d", voters, nonVoter)
	}
	majority, minority := voters[:3], append([]int{nonVoter}, voters[3:]...)
	c.WaitCoordinator(0, 1, 2, 3, 4, 5)
	c.WaitVoters(nonVoter, 5) // the non-voter counts voters from gossip
	c.Partition(majority, minority)
	c.WaitCoordinator(majority...)
	if _, err := newTicket(t, c, majority[1]); err != nil {
		t.Fatalf("majority write: %v", err)
	}
	for _, i := range minority {
		testutil.Eventually(t, testutilWait, "minority refuses writes", func() error {
			_, err := newTicket(t, c, i)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != 503 || !strings.Contains(ae.Message, "no quorum: 2 of 5 voters reachable") {
				return errors.New("got " + errString(err))
			}
			return nil
		})
		if s := c.Status(i); s.Quorum || s.Coordinator != nil {
			t.Fatalf("node%d claims quorum %v coordinator %v", i, s.Quorum, s.Coordinator)
		}
		// Reads answer from a minority voter's copy, saying it may be stale.
		nodes, err := c.Client(i).Nodes(context.Background())
		if err != nil || len(nodes.Nodes) != 6 || len(nodes.Warnings) != 1 || !strings.Contains(nodes.Warnings[0], "no quorum") {
			t.Fatalf("nodes list on the minority node%d: %+v, %v", i, nodes, err)
		}
		if n, err := c.Client(i).Node(context.Background(), "node0"); err != nil || n.CertPEM == "" || len(n.Warnings) != 1 {
			t.Fatalf("nodes show on the minority node%d: %+v, %v", i, n, err)
		}
		if tl, err := c.Client(i).Tickets(context.Background()); err != nil || len(tl.Tickets) < 5 || len(tl.Warnings) != 1 {
			t.Fatalf("pair list on the minority node%d: %+v, %v", i, tl, err)
		}
	}
	if nodes, err := c.Client(majority[0]).Nodes(context.Background()); err != nil || len(nodes.Warnings) != 0 {
		t.Fatalf("nodes list on the majority: %+v, %v", nodes, err)
	}
	c.Heal()
	c.WaitConverged()
	c.WaitVoters(0, 5)
}

// TestClusterRevoke: a revoked node is cut off by everyone, also after the
// coordinator changes.
func TestClusterRevoke(t *testing.T) {
	verifyNoLeaks(t)
	c := testutil.NewCluster(t, 4)
	c.WaitVoters(0, 3)
	if _, err := c.Client(0).Revoke(context.Background(), "node3"); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 2} {
		testutil.Eventually(t, testutilWait, "node3 revoked everywhere", func() error {
			for _, m := range c.Status(i).Members {
				if m.Name == "node3" && !m.Revoked {
					return errors.New("node3 not revoked on a member")
				}
			}
			return nil
		})
	}
	if _, err := newTicket(t, c, 3); err == nil {
		t.Fatal("the revoked node still reaches the coordinator")
	}
	if _, err := c.Client(1).Revoke(context.Background(), "node0"); err == nil || !strings.Contains(err.Error(), "lacks permission") {
		t.Fatalf("a plain node revoked the founder: %v", err)
	}
}

// TestClusterNamesFromCertificates: a member whose gossip metadata claims
// another node's name is still listed under its certificate's name.
func TestClusterNamesFromCertificates(t *testing.T) {
	verifyNoLeaks(t)
	c := testutil.NewCluster(t, 2)
	c.Agent(1).Claim("node0", "spoofed")
	id := c.Agent(1).PeerID().String()
	testutil.Eventually(t, testutilWait, "node1's claim reaches node0", func() error {
		for _, m := range c.Status(0).Members {
			if m.PeerID == id && m.Version == "spoofed" {
				if m.Name != "node1" {
					t.Fatalf("node1 is listed as %q", m.Name)
				}
				return nil
			}
		}
		return errors.New("node0 has not seen the new metadata")
	})
}

const testutilWait = 20e9 // 20 s

func errString(err error) string {
	if err == nil {
		return "success"
	}
	return err.Error()
}

// TestClusterVotersStayOdd: five voters; one dies for good: it is removed
// (4 voters) and, with nobody to replace it, one more is demoted to keep the
// count odd; when the dead one returns, both become voters again.
func TestClusterVotersStayOdd(t *testing.T) {
	verifyNoLeaks(t)
	c := testutil.NewCluster(t, 5)
	c.WaitVoters(0, 5)
	coord := c.WaitCoordinator(0, 1, 2, 3, 4)
	victim := (coord + 1) % 5
	c.Stop(victim)
	live := c.Running()
	c.WaitVoters(live[0], 3)
	c.Restart(victim)
	c.WaitConverged()
	c.WaitVoters(0, 5)
}
