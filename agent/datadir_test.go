//go:build unix

package agent_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palyra-mesh/palyra/agent"
	"github.com/palyra-mesh/palyra/testutil"
)

// publicFiles may be 0644: they hold no secret.
var publicFiles = map[string]bool{"node.crt": true, "ca.crt": true, "mesh.json": true, "revocations.json": true}

// checkPrivate fails unless dir is 0700, admin.token is 0600 and nothing
// else in dir (raft/ included) but the public files is open to group or
// others.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		perm := fi.Mode().Perm()
		switch {
		case path == dir && perm != 0o700:
			t.Errorf("data dir has mode %v, want 0700", perm)
		case rel == "admin.token" && perm != 0o600:
			t.Errorf("admin.token has mode %v, want 0600", perm)
		case publicFiles[rel]:
		case perm&0o077 != 0:
			t.Errorf("%s has mode %v: open to group or others", rel, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDataDirTightened: an agent restarted on a data dir loosened to 0755,
// with a 0644 admin.token and node.key and 0644/0755 raft files, started
// with umask 022, makes it all private again and keeps its credential.
func TestDataDirTightened(t *testing.T) {
	c := testutil.NewCluster(t, 1)
	dir := c.DataDir(0)
	checkPrivate(t, dir)
	tok, err := agent.ReadAdminToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(0)

	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(path, 0o755)
		}
		return os.Chmod(path, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}

	c.Restart(0)
	c.WaitCoordinator(0)
	// A write makes badger (under the agent's umask) write more.
	if _, err := newTicket(t, c, 0); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir)
	if got, err := agent.ReadAdminToken(dir); err != nil || got != tok {
		t.Fatalf("admin token changed across the restart (err %v)", err)
	}
}

// TestDataDirOtherOwner: a data dir owned by another user is refused.
func TestDataDirOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root: this test must run there")
		}
		t.Skip("needs root to chown")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cfg := agent.DefaultConfig()
	cfg.Name, cfg.DataDir, cfg.Init, cfg.MDNS = "node0", dir, true, false
	cfg.Listen, cfg.HTTPAddr = []string{"/ip4/127.0.0.1/tcp/0"}, "127.0.0.1:0"
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = a.Start(ctx)
	if err == nil {
		a.Close()
		t.Fatal("agent started on a data dir owned by uid 65534")
	}
	if !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("error %q does not name the owner", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mesh.json")); err == nil {
		t.Fatal("a mesh was created in the refused dir")
	}
}
