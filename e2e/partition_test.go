package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPartition cuts a five-voter mesh 3|2 with network namespaces: the
// 2-side refuses writes and says why while still answering reads, the
// 3-side goes on; after healing there is one coordinator and the same state
// everywhere.
func TestPartition(t *testing.T) {
	requireNetLab(t)
	lab := newNetLab(t, 5)
	names := []string{"alpha", "bravo", "charlie", "delta", "echo"}
	var nodes []*node
	for i, name := range names {
		nodes = append(nodes, newNetNode(t, lab, i, name))
	}
	formMesh(t, nodes)
	waitVoters(t, nodes[0], 5)
	waitCoordinator(t, nodes)

	major, minor := nodes[:3], nodes[3:]
	lab.Partition([]int{0, 1, 2}, []int{3, 4})

	// The 3-side keeps (or elects) a coordinator and takes writes.
	coord := waitCoordinator(t, major)
	if coord != "alpha" && coord != "bravo" && coord != "charlie" {
		t.Fatalf("3-side coordinator %s", coord)
	}
	tk := nodes[1].pair()
	if len(tk.PIN) != 6 {
		t.Fatalf("pair on the 3-side: %+v", tk)
	}

	// The 2-side refuses writes with a clear reason, and still reads.
	for _, n := range minor {
		waitFor(t, 30*time.Second, n.name+" refuses writes for lack of quorum", func() error {
			_, errOut, code := n.cli("pair")
			if code == 0 {
				return fmt.Errorf("pair succeeded")
			}
			if !strings.Contains(errOut, "no quorum: 2 of 5 voters reachable") {
				return fmt.Errorf("pair said %q", strings.TrimSpace(errOut))
			}
			return nil
		})
		s := n.status()
		if s.Quorum || s.Coordinator != nil {
			t.Fatalf("%s claims coordinator %v quorum %v", n.name, s.Coordinator, s.Quorum)
		}
		if !strings.Contains(strings.Join(s.Warnings, ";"), "no quorum") {
			t.Fatalf("%s status does not say quorum is lost: %v", n.name, s.Warnings)
		}
		// The registry still reads, from a voter's copy, saying so.
		var list struct {
			Nodes    []struct{ Name string } `json:"nodes"`
			Warnings []string                `json:"warnings"`
		}
		n.cliJSON(&list, "nodes", "list")
		if len(list.Nodes) != len(nodes) || !strings.Contains(strings.Join(list.Warnings, ";"), "may be stale") {
			t.Fatalf("nodes list on %s: %+v", n.name, list)
		}
		if out, errOut, code := n.cli("nodes", "show", "alpha"); code != 0 || !strings.Contains(out, "no quorum: 2 of 5 voters reachable; answered from") || !strings.Contains(out, "BEGIN CERTIFICATE") {
			t.Fatalf("nodes show on %s: exit %d %s%s", n.name, code, out, errOut)
		}
	}

	// Heal: one coordinator, everyone alive, the same registry everywhere.
	lab.Heal()
	waitAllAlive(t, nodes)
	waitCoordinator(t, nodes)
	want := registry(t, nodes[0])
	for _, n := range nodes[1:] {
		waitFor(t, 10*time.Second, "same registry on "+n.name, func() error {
			if got := registry(t, n); got != want {
				return fmt.Errorf("%s, want %s", got, want)
			}
			return nil
		})
	}
	// The PIN made during the partition works after healing, via the
	// formerly cut-off side.
	f := newNetNode(t, lab, 4, "foxtrot")
	f.listen = fmt.Sprintf("/ip4/%s/tcp/7430", lab.IP(4))
	f.http = "127.0.0.1:7431"
	f.startOK("--pin", tk.PIN, "--peer", nodes[4].addr())
	waitAllAlive(t, append(nodes, f))
}

// TestMDNSJoin: on a LAN (a lab of namespaces), `palyra agent --pin` with no
// --peer finds a member by mDNS.
func TestMDNSJoin(t *testing.T) {
	requireNetLab(t)
	lab := newNetLab(t, 2)
	a, b := newNetNode(t, lab, 0, "alpha"), newNetNode(t, lab, 1, "bravo")
	a.startOK("--init", "--no-mdns=false")
	waitCoordinator(t, []*node{a})
	b.startOK("--pin", a.pair().PIN, "--no-mdns=false")
	waitAllAlive(t, []*node{a, b})
}
