package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestApproval: a PIN made with --require-approval keeps the join pending
// until an operator approves it; a rejected join fails with its own message
// and leaves no data dir. Neither PIN nor credential shows up in any log.
func TestApproval(t *testing.T) {
	a := newNode(t, "alpha")
	a.startOK("--init")
	waitFor(t, 20*time.Second, "alpha coordinator", func() error {
		if s := a.status(); s.Coordinator == nil {
			return fmt.Errorf("no coordinator")
		}
		return nil
	})
	tk := a.pair("--require-approval", "--role", "operator")

	b := newNode(t, "bravo")
	b.start("--pin", tk.PIN, "--peer", a.addr())
	waitFor(t, 20*time.Second, "bravo pending on alpha", func() error {
		out, _, _ := a.cli("nodes", "list")
		if !strings.Contains(out, "bravo") || !strings.Contains(out, "pending") {
			return fmt.Errorf("nodes list:\n%s", out)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(b.dir, "node.crt")); !os.IsNotExist(err) {
		t.Fatalf("a pending join already wrote a certificate (err %v)", err)
	}
	if out, errOut, code := a.cli("nodes", "approve", "bravo"); code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("approve: exit %d: %s%s", code, out, errOut)
	}
	b.waitHealthy()
	var show struct {
		Roles []string `json:"roles"`
		State string   `json:"state"`
	}
	waitFor(t, 20*time.Second, "bravo alive with role operator", func() error {
		b.cliJSON(&show, "nodes", "show", "bravo")
		if show.State != "alive" || len(show.Roles) != 1 || show.Roles[0] != "operator" {
			return fmt.Errorf("bravo: %+v", show)
		}
		return nil
	})
	// An operator's node may create PINs and approve joins itself.
	tk2 := b.pair("--require-approval")
	c := newNode(t, "charlie")
	done := make(chan string, 1)
	go func() {
		msg, _ := runJoin(t, c, tk2.PIN, b.addr())
		done <- msg
	}()
	waitFor(t, 20*time.Second, "charlie pending", func() error {
		out, _, _ := b.cli("nodes", "list")
		if !strings.Contains(out, "charlie") {
			return fmt.Errorf("nodes list:\n%s", out)
		}
		return nil
	})
	if out, errOut, code := b.cli("nodes", "reject", "charlie"); code != 0 || !strings.Contains(out, "rejected") {
		t.Fatalf("reject: exit %d: %s%s", code, out, errOut)
	}
	select {
	case msg := <-done:
		if !strings.Contains(msg, "rejected") {
			t.Fatalf("rejected join said %q", msg)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("rejected join did not end")
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Fatalf("rejected join left %s behind", c.dir)
	}

	// Secrets appear only in the answers that created them.
	for _, n := range []*node{a, b} {
		tok, err := os.ReadFile(filepath.Join(n.dir, "admin.token"))
		if err != nil {
			t.Fatal(err)
		}
		log := n.log.String()
		for _, secret := range []string{tk.PIN, tk2.PIN, string(tok)} {
			if strings.Contains(log, secret) {
				t.Fatalf("%s's log contains a secret", n.name)
			}
		}
	}
}
