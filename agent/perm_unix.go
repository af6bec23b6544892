//go:build unix

package agent

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// privateUmask sets the process umask to 077, so every file and dir created
// from now on (by badger, raft's snapshot store, anyone) is private to the
// agent's user whatever mode the creator asks for. Files written with an
// explicit chmod (writeFileAtomic: the public node.crt, ca.crt, mesh.json,
// revocations.json stay 0644) are not affected. The umask is per process and
// stays set.
func privateUmask() { syscall.Umask(0o077) }

// checkOwner refuses a data dir that belongs to another user.
func checkOwner(dir string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("data dir %s is owned by uid %d, not by this user (uid %d): run the agent as the dir's owner or choose another --data-dir", dir, st.Uid, uid)
	}
	return nil
}
