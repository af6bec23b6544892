package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// formMesh creates a mesh on nodes[0] and joins the others with PINs made
// on nodes[0], then waits until every node sees every other alive and a
// coordinator with quorum.
func formMesh(t testing.TB, nodes []*node, extra ...string) {
	t.Helper()
	nodes[0].startOK(append([]string{"--init"}, extra...)...)
	waitCoordinator(t, nodes[:1])
	for _, n := range nodes[1:] {
		n.startOK(append([]string{"--pin", nodes[0].pair().PIN, "--peer", nodes[0].addr()}, extra...)...)
	}
	waitAllAlive(t, nodes)
}

// waitAllAlive waits until every node lists every node alive.
func waitAllAlive(t testing.TB, nodes []*node) {
	t.Helper()
	waitFor(t, 30*time.Second, "every node alive everywhere", func() error {
		for _, n := range nodes {
			s := n.quietStatus()
			for _, m := range nodes {
				if st := memberState(s, m.name); st != "alive" {
					return fmt.Errorf("%s sees %s %s", n.name, m.name, st)
				}
			}
		}
		return nil
	})
}

// waitCoordinator waits until all nodes name the same coordinator (none of
// not) with quorum, and returns its name.
func waitCoordinator(t testing.TB, nodes []*node, not ...string) string {
	t.Helper()
	var coord string
	waitFor(t, 30*time.Second, "one coordinator with quorum on every node", func() error {
		coord = ""
		for _, n := range nodes {
			s := n.quietStatus()
			if s.Coordinator == nil || !s.Quorum {
				return fmt.Errorf("%s: coordinator %v quorum %v", n.name, s.Coordinator, s.Quorum)
			}
			if slices.Contains(not, s.Coordinator.Name) {
				return fmt.Errorf("%s still names %s", n.name, s.Coordinator.Name)
			}
			if coord != "" && s.Coordinator.Name != coord {
				return fmt.Errorf("%s says %s, others %s", n.name, s.Coordinator.Name, coord)
			}
			coord = s.Coordinator.Name
			flagged := 0
			for _, m := range s.Members {
				if m.Coordinator {
					flagged++
				}
			}
			if flagged != 1 {
				return fmt.Errorf("%s lists %d members as coordinator", n.name, flagged)
			}
		}
		return nil
	})
	return coord
}

// waitVoters waits until the coordinator's status shows want voters.
func waitVoters(t testing.TB, n *node, want int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d voters", want), func() error {
		s := n.quietStatus()
		var voters []string
		for _, m := range s.Members {
			if m.Voter && m.State == "alive" {
				voters = append(voters, m.Name)
			}
		}
		if len(voters) != want {
			return fmt.Errorf("voters %v", voters)
		}
		return nil
	})
}

func byName(nodes []*node, name string) *node {
	for _, n := range nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func without(nodes []*node, drop *node) []*node {
	var out []*node
	for _, n := range nodes {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}

// registry returns "name:revoked" for every node, sorted, as n's API says.
func registry(t testing.TB, n *node) string {
	t.Helper()
	var list struct {
		Nodes []struct {
			Name    string `json:"name"`
			Revoked bool   `json:"revoked"`
		} `json:"nodes"`
	}
	n.cliJSON(&list, "nodes", "list")
	var out []string
	for _, x := range list.Nodes {
		out = append(out, fmt.Sprintf("%s:%v", x.Name, x.Revoked))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// TestFailover: five eligible agents become five voters; kill -9 of the
// coordinator leaves a new one within seconds and pairing works through
// every survivor; the old coordinator comes back as a follower; a revoked
// node is refused everywhere; the whole mesh killed and restarted re-forms
// with its state.
func TestFailover(t *testing.T) {
	names := []string{"alpha", "bravo", "charlie", "delta", "echo"}
	var nodes []*node
	for _, name := range names {
		nodes = append(nodes, newNode(t, name))
	}
	formMesh(t, nodes)
	waitVoters(t, nodes[0], 5)
	first := waitCoordinator(t, nodes)

	old := byName(nodes, first)
	old.kill()
	survivors := without(nodes, old)
	waitCoordinator(t, survivors, first)
	// A PIN made on any survivor works.
	for i, n := range survivors {
		tk := n.pair()
		if len(tk.PIN) != 6 {
			t.Fatalf("pair on %s after failover: %+v", n.name, tk)
		}
		if i == len(survivors)-1 {
			f := newNode(t, "foxtrot")
			f.startOK("--pin", tk.PIN, "--peer", n.addr(), "--coordinator=false")
			nodes = append(nodes, f)
			survivors = append(survivors, f)
		}
	}
	waitAllAlive(t, survivors)

	// The old coordinator returns as a follower: exactly one coordinator.
	old.startOK()
	waitCoordinator(t, nodes, first)

	// Revoke foxtrot (from the founder, whose certificate says admin): it
	// is refused everywhere within 5 s.
	f := byName(nodes, "foxtrot")
	if out, errOut, code := nodes[0].cli("nodes", "revoke", "foxtrot"); code != 0 {
		t.Fatalf("revoke: %s%s", out, errOut)
	}
	others := without(nodes, f)
	waitFor(t, 5*time.Second, "foxtrot revoked on every member", func() error {
		for _, n := range others {
			for _, m := range n.quietStatus().Members {
				if m.Name == "foxtrot" && !m.Revoked {
					return fmt.Errorf("%s does not show foxtrot revoked", n.name)
				}
			}
		}
		return nil
	})
	if _, errOut, code := f.cli("pair"); code == 0 {
		t.Fatal("a revoked node could still reach the coordinator")
	} else if errOut == "" {
		t.Fatal("no error message from a revoked node's pair")
	}
	// A node with role node may not revoke.
	if _, errOut, code := nodes[1].cli("nodes", "revoke", "alpha"); code == 0 || !strings.Contains(errOut, "lacks permission") {
		t.Fatalf("revoke by a plain node: exit %d %s", code, errOut)
	}
	want := registry(t, nodes[0])
	if !strings.Contains(want, "foxtrot:true") || strings.Count(want, ":") != 6 {
		t.Fatalf("registry %s", want)
	}

	// kill -9 every node, restart them all: the mesh re-forms by itself,
	// with the same registry, the revocation still in force and a PIN made
	// before the crash still valid.
	pending := nodes[2].pair()
	for _, n := range nodes {
		n.kill()
	}
	for _, n := range others {
		n.startOK()
	}
	waitCoordinator(t, others)
	waitAllAlive(t, others)
	for _, n := range others {
		if got := registry(t, n); got != want {
			t.Fatalf("registry on %s after restart: %s, want %s", n.name, got, want)
		}
	}
	g := newNode(t, "golf")
	g.startOK("--pin", pending.PIN, "--peer", nodes[3].addr())
	waitAllAlive(t, append(others, g))
	f.start()
	waitFor(t, 20*time.Second, "revoked foxtrot still refused after restart", func() error {
		s := others[0].quietStatus()
		for _, m := range s.Members {
			if m.Name == "foxtrot" && (m.State == "alive" || !m.Revoked) {
				return fmt.Errorf("foxtrot is %s revoked=%v", m.State, m.Revoked)
			}
		}
		return nil
	})
}
