package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMeshFoundation walks the path a user takes: create a mesh, join a
// second machine with a PIN from the first, a third with a PIN created on
// the second contacting only the second, see everything from anywhere,
// burn a PIN with wrong guesses, restart a member.
func TestMeshFoundation(t *testing.T) {
	a, b, c := newNode(t, "alpha"), newNode(t, "bravo"), newNode(t, "charlie")

	a.startOK("--init")
	waitFor(t, 20*time.Second, "alpha coordinator", func() error {
		if s := a.status(); s.Coordinator == nil || s.Coordinator.Name != "alpha" {
			return fmt.Errorf("coordinator %+v", s.Coordinator)
		}
		return nil
	})

	// Secrets on disk are 0600 in a 0700 dir.
	for path, want := range map[string]os.FileMode{
		a.dir: 0o700, filepath.Join(a.dir, "node.key"): 0o600,
		filepath.Join(a.dir, "ca.key"): 0o600, filepath.Join(a.dir, "admin.token"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Fatalf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}

	// B joins with a PIN created on A.
	tk := a.pair()
	if len(tk.PIN) != 6 || tk.JoinCode == "" {
		t.Fatalf("pair answer %+v", tk)
	}
	b.startOK("--pin", tk.PIN, "--peer", a.addr())

	// C joins with a PIN created on B, contacting only B.
	tk2 := b.pair()
	c.startOK("--pin", tk2.PIN, "--peer", b.addr())

	waitFor(t, 20*time.Second, "all alive on charlie with alpha as coordinator", func() error {
		s := c.status()
		for _, name := range []string{"alpha", "bravo", "charlie"} {
			if st := memberState(s, name); st != "alive" {
				return fmt.Errorf("%s is %s", name, st)
			}
		}
		if s.Coordinator == nil || s.Coordinator.Name != "alpha" || !s.Quorum {
			return fmt.Errorf("coordinator %+v quorum %v", s.Coordinator, s.Quorum)
		}
		return nil
	})

	// nodes show on any member includes the certificate and relay record.
	var show struct {
		Name      string   `json:"name"`
		PeerID    string   `json:"peer_id"`
		Roles     []string `json:"roles"`
		CertPEM   string   `json:"certificate_pem"`
		RelayedBy string   `json:"relayed_by"`
	}
	c.cliJSON(&show, "nodes", "show", "charlie")
	if !strings.Contains(show.CertPEM, "BEGIN CERTIFICATE") || show.RelayedBy != "bravo" || len(show.Roles) != 1 || show.Roles[0] != "node" {
		t.Fatalf("nodes show charlie: %+v", show)
	}

	// The ticket records who created, relayed and used it, and no listing
	// shows a PIN.
	out, errOut, code := b.cli("pair", "list", "--json")
	if code != 0 {
		t.Fatalf("pair list: %s", errOut)
	}
	if strings.Contains(out, tk.PIN) || strings.Contains(out, tk2.PIN) || strings.Contains(out, `"pin"`) {
		t.Fatalf("pair list shows a PIN: %s", out)
	}
	var tickets struct {
		Tickets []struct {
			State     string `json:"state"`
			CreatedBy string `json:"created_by"`
			CreatedOn string `json:"created_on"`
			UsedBy    string `json:"used_by"`
			RelayedBy string `json:"relayed_by"`
		} `json:"tickets"`
	}
	b.cliJSON(&tickets, "pair", "list")
	if len(tickets.Tickets) != 2 {
		t.Fatalf("want 2 tickets, got %+v", tickets)
	}
	if r := tickets.Tickets[0]; r.State != "used" || r.CreatedOn != "bravo" || r.UsedBy != "charlie" || r.RelayedBy != "bravo" || !strings.Contains(r.CreatedBy, "bravo") {
		t.Fatalf("ticket record %+v", r)
	}

	// A used PIN says so.
	d := newNode(t, "delta")
	if msg, code := runJoin(t, d, tk.PIN, a.addr()); code == 0 || !strings.Contains(msg, "already used") {
		t.Fatalf("reused PIN: exit %d, %q", code, msg)
	}

	// Five wrong PINs burn a ticket; then the right PIN gets the burned message.
	tk3 := a.pair()
	wrong := wrongPIN(tk3.PIN)
	for i := 1; i <= 5; i++ {
		msg, code := runJoin(t, d, wrong, b.addr())
		if code == 0 || !strings.Contains(msg, "wrong PIN") {
			t.Fatalf("wrong PIN attempt %d: exit %d, %q", i, code, msg)
		}
	}
	if msg, code := runJoin(t, d, tk3.PIN, b.addr()); code == 0 || !strings.Contains(msg, "burned") {
		t.Fatalf("right PIN after burn: exit %d, %q", code, msg)
	}
	// Failed pairings left nothing behind.
	if _, err := os.Stat(d.dir); !os.IsNotExist(err) {
		t.Fatalf("failed pairing left %s behind (err %v)", d.dir, err)
	}

	// Restarting B keeps its peer ID and it is alive again everywhere.
	before := b.status().Self.PeerID
	b.stop()
	waitFor(t, 20*time.Second, "bravo left on alpha", func() error {
		if st := memberState(a.status(), "bravo"); st != "left" {
			return fmt.Errorf("bravo is %s", st)
		}
		return nil
	})
	b.startOK()
	if after := b.status().Self.PeerID; after != before {
		t.Fatalf("bravo's peer ID changed across restart: %s → %s", before, after)
	}
	waitFor(t, 20*time.Second, "bravo alive again on charlie", func() error {
		if st := memberState(c.status(), "bravo"); st != "alive" {
			return fmt.Errorf("bravo is %s", st)
		}
		return nil
	})

	// A member that dies is seen dead within seconds.
	c.kill()
	waitFor(t, 20*time.Second, "charlie dead on alpha", func() error {
		if st := memberState(a.status(), "charlie"); st != "dead" {
			return fmt.Errorf("charlie is %s", st)
		}
		return nil
	})

	// kill -9 of the coordinator loses nothing: a PIN created before the
	// crash still works after the restart, and the registry is intact.
	tk4 := b.pair()
	a.kill()
	a.startOK()
	waitFor(t, 20*time.Second, "a coordinator with quorum again", func() error {
		if s := a.status(); s.Coordinator == nil || !s.Quorum {
			return fmt.Errorf("coordinator %+v quorum %v", s.Coordinator, s.Quorum)
		}
		return nil
	})
	e := newNode(t, "echo")
	e.startOK("--pin", tk4.PIN, "--peer", b.addr())
	var list struct {
		Nodes []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"nodes"`
	}
	waitFor(t, 20*time.Second, "registry after restart", func() error {
		a.cliJSON(&list, "nodes", "list")
		got := map[string]string{}
		for _, n := range list.Nodes {
			got[n.Name] = n.State
		}
		if len(got) != 4 || got["alpha"] != "alive" || got["bravo"] != "alive" || got["echo"] != "alive" || got["charlie"] == "alive" {
			return fmt.Errorf("nodes %v", got)
		}
		return nil
	})
	// The dead member does not come back as a ghost through the restarted
	// coordinator's or the newcomer's gossip.
	for _, n := range []*node{a, b, e} {
		if st := memberState(n.status(), "charlie"); st == "alive" || st == "suspect" {
			t.Fatalf("charlie shows %s on %s after it died", st, n.name)
		}
	}
}

// wrongPIN returns a different PIN with the same first digit, so it selects
// the same ticket and counts against it.
func wrongPIN(pin string) string {
	last := (pin[5]-'0'+1)%10 + '0'
	return pin[:5] + string(last)
}
