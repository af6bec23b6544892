// Package testutil runs palyra agents in-process for fast cluster tests:
// NewCluster starts n agents on loopback with shrunk timers (agent
// TestTimings), and the cluster can stop, restart and partition them.
package testutil

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/agent"
	"github.com/palyra-mesh/palyra/api"
	"github.com/palyra-mesh/palyra/client"
)

// Cluster is n in-process agents forming one mesh. Not safe for concurrent
// use; methods fail the test on error.
type Cluster struct {
	t      testing.TB
	cfgs   []agent.Config
	agents []*agent.Agent // nil while stopped
	ids    []peer.ID
}

// NewCluster starts a mesh of n agents: node0 creates it, the others join
// with PINs made on node0. Everything is closed in t.Cleanup.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, cfgs: make([]agent.Config, n), agents: make([]*agent.Agent, n), ids: make([]peer.ID, n)}
	base := t.TempDir() // before Cleanup(c.Close): cleanups run last-in first-out
	t.Cleanup(c.Close)
	for i := range n {
		cfg := agent.DefaultConfig()
		cfg.Name = fmt.Sprintf("node%d", i)
		cfg.DataDir = filepath.Join(base, cfg.Name)
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.MDNS = false
		cfg.Timings = agent.TestTimings()
		cfg.Logger = logger()
		c.cfgs[i] = cfg
	}
	c.cfgs[0].Init = true
	c.start(0)
	c.WaitCoordinator(0)
	for i := 1; i < n; i++ {
		tk, err := c.Client(0).CreateTicket(context.Background(), api.TicketRequest{})
		if err != nil {
			t.Fatalf("pair for node%d: %v", i, err)
		}
		c.cfgs[i].PIN = tk.PIN
		c.cfgs[i].Peers = c.agents[0].P2PAddrs()
		c.start(i)
	}
	c.WaitConverged()
	return c
}

// logger discards agent logs unless PALYRA_TEST_LOG is set.
func logger() *slog.Logger {
	if os.Getenv("PALYRA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	a, err := agent.New(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("node%d: %v", i, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		c.t.Fatalf("start node%d: %v", i, err)
	}
	c.agents[i], c.ids[i] = a, a.PeerID()
	// A restart keeps its ports, as a real node does.
	c.cfgs[i].HTTPAddr = a.HTTPAddr()
	c.cfgs[i].Listen = nil
	for _, s := range a.P2PAddrs() {
		c.cfgs[i].Listen = append(c.cfgs[i].Listen, strings.SplitN(s, "/p2p/", 2)[0])
	}
}

// DataDir returns agent i's data dir.
func (c *Cluster) DataDir(i int) string { return c.cfgs[i].DataDir }

// Size is the number of agents.
func (c *Cluster) Size() int { return len(c.agents) }

// Agent returns agent i (nil while stopped).
func (c *Cluster) Agent(i int) *agent.Agent { return c.agents[i] }

// Client returns an API client of agent i with its local credential.
func (c *Cluster) Client(i int) *client.Client {
	c.t.Helper()
	tok, err := agent.ReadAdminToken(c.cfgs[i].DataDir)
	if err != nil {
		c.t.Fatal(err)
	}
	return client.New(c.cfgs[i].HTTPAddr, tok)
}

// Status returns agent i's status.
func (c *Cluster) Status(i int) *api.Status {
	c.t.Helper()
	s, err := c.Client(i).Status(context.Background())
	if err != nil {
		c.t.Fatalf("status of node%d: %v", i, err)
	}
	return s
}

// Running lists the indexes of running agents.
func (c *Cluster) Running() []int {
	var out []int
	for i, a := range c.agents {
		if a != nil {
			out = append(out, i)
		}
	}
	return out
}

// WaitConverged waits until every running agent sees every running agent
// alive and they all name one coordinator with quorum.
func (c *Cluster) WaitConverged() {
	c.t.Helper()
	c.WaitCoordinator(c.Running()...)
	Eventually(c.t, 30*time.Second, "all running agents alive everywhere", func() error {
		for _, i := range c.Running() {
			s := c.Status(i)
			for _, j := range c.Running() {
				if st := stateOf(s, c.cfgs[j].Name); st != "alive" {
					return fmt.Errorf("node%d sees node%d %s", i, j, st)
				}
			}
		}
		return nil
	})
}

// WaitCoordinator waits until the given agents name one coordinator, one
// of them, with quorum, and returns its index.
func (c *Cluster) WaitCoordinator(among ...int) int {
	c.t.Helper()
	coord := -1
	Eventually(c.t, 30*time.Second, "one coordinator with quorum", func() error {
		coord = -1
		for _, i := range among {
			s := c.Status(i)
			if s.Coordinator == nil || !s.Quorum {
				return fmt.Errorf("node%d: no coordinator (quorum %v)", i, s.Quorum)
			}
			j := slices.IndexFunc(c.cfgs, func(cfg agent.Config) bool { return cfg.Name == s.Coordinator.Name })
			if !slices.Contains(among, j) {
				return fmt.Errorf("node%d still names node%d", i, j)
			}
			if coord >= 0 && j != coord {
				return fmt.Errorf("node%d names node%d, others node%d", i, j, coord)
			}
			coord = j
		}
		return nil
	})
	return coord
}

// WaitVoters waits until agent i's status shows want alive voters.
func (c *Cluster) WaitVoters(i, want int) {
	c.t.Helper()
	Eventually(c.t, 30*time.Second, fmt.Sprintf("%d voters", want), func() error {
		n := 0
		for _, m := range c.Status(i).Members {
			if m.Voter && m.State == "alive" {
				n++
			}
		}
		if n != want {
			return fmt.Errorf("%d voters", n)
		}
		return nil
	})
}

// Stop closes agent i without leaving, like a crash.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if a := c.agents[i]; a != nil {
		c.agents[i] = nil
		_ = a.Close()
	}
}

// Restart starts a stopped agent i again from its data dir.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.cfgs[i].Init, c.cfgs[i].PIN = false, ""
	c.start(i)
}

// Partition cuts the cluster into groups; agents in no group are isolated.
func (c *Cluster) Partition(groups ...[]int) {
	c.t.Helper()
	group := map[peer.ID]int{}
	for g, members := range groups {
		for _, i := range members {
			group[c.ids[i]] = g + 1
		}
	}
	for i, a := range c.agents {
		if a == nil {
			continue
		}
		mine := group[c.ids[i]]
		a.SetBlocked(func(p peer.ID) bool {
			g, known := group[p]
			return known && (mine == 0 || g != mine) || !known && slices.Contains(c.ids, p)
		})
	}
}

// Heal undoes Partition.
func (c *Cluster) Heal() {
	for _, a := range c.agents {
		if a != nil {
			a.SetBlocked(nil)
		}
	}
}

// Close stops every agent.
func (c *Cluster) Close() {
	for i := range c.agents {
		c.Stop(i)
	}
}

func stateOf(s *api.Status, name string) string {
	for _, m := range s.Members {
		if m.Name == name {
			return m.State
		}
	}
	return "absent"
}

// Eventually polls f until it returns nil or d passes, then fails t with
// f's last error.
func Eventually(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		<-tick.C
	}
}
