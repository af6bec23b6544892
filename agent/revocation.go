package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
)

// Revocations reach every member two ways: through raft (voters apply
// node.revoke and hold the signed list in the replicated state) and through
// gossip (every member broadcasts a newer list it adopts, and exchanges its
// list in push/pull), so non-voters learn within a gossip round or two. A
// list is adopted only if the mesh CA signed it and its version is newer;
// it is kept in the data dir so a restart keeps refusing revoked peers.

const (
	fileRevocations = "revocations.json"
	// msgRevocations prefixes a revocation list in gossip messages and state.
	msgRevocations = 'R'
)

// revocations is this node's current list, with a set for fast lookups.
type revocations struct {
	mu   sync.RWMutex
	list ca.RevocationList
	set  map[peer.ID]bool
}

func (r *revocations) revoked(p peer.ID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.set[p]
}

func (r *revocations) current() ca.RevocationList {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.list
}

// isRevokedPeer reports whether p's identity is revoked.
func (a *Agent) isRevokedPeer(p peer.ID) bool { return a.revs.revoked(p) }

// loadRevocations reads the saved list at start; a list that fails to
// verify is ignored (the mesh will send a good one).
func (a *Agent) loadRevocations() {
	b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, fileRevocations))
	if err != nil {
		return
	}
	l, err := ca.ParseRevocations(b)
	if err == nil {
		err = a.id.ca.VerifyRevocations(l)
	}
	if err != nil {
		a.log.Warn("ignoring saved revocation list", "err", err)
		return
	}
	a.setRevocations(l)
}

func (a *Agent) setRevocations(l ca.RevocationList) []peer.ID {
	set := make(map[peer.ID]bool, len(l.Peers))
	var added []peer.ID
	a.revs.mu.Lock()
	defer a.revs.mu.Unlock()
	for _, s := range l.Peers {
		p, err := peer.Decode(s)
		if err != nil {
			continue
		}
		set[p] = true
		if !a.revs.set[p] {
			added = append(added, p)
		}
	}
	a.revs.list, a.revs.set = l, set
	return added
}

// adoptRevocations takes l if it is newer and signed by the mesh CA: it
// saves it, cuts the revoked peers off and passes the list on by gossip.
func (a *Agent) adoptRevocations(l ca.RevocationList) error {
	if l.Version <= a.revs.current().Version {
		return nil
	}
	if err := a.id.ca.VerifyRevocations(l); err != nil {
		return err
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(a.cfg.DataDir, fileRevocations), b, 0o644); err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	added := a.setRevocations(l)
	a.gate.Disconnect(added...)
	a.log.Info("revocation list adopted", "version", l.Version, "revoked", added)
	if a.gossip != nil {
		a.gossip.Broadcast("revocations", append([]byte{msgRevocations}, b...))
	}
	return nil
}

// gossipRevocations is this node's gossip state for push/pull.
func (a *Agent) gossipRevocations() []byte {
	l := a.revs.current()
	if l.Version == 0 {
		return nil
	}
	b, _ := json.Marshal(l)
	return append([]byte{msgRevocations}, b...)
}

// gossipMessage receives a broadcast or a peer's push/pull state. It runs
// on memberlist's goroutines, so the work is handed to revocationLoop.
func (a *Agent) gossipMessage(b []byte) {
	if len(b) < 2 || b[0] != msgRevocations {
		return
	}
	select {
	case a.revIn <- b[1:]:
	default: // a newer list will come again by push/pull
	}
}

// revocationLoop adopts lists arriving by gossip and from the raft state.
func (a *Agent) revocationLoop() {
	for {
		changed := a.fsm.Changed()
		var fromRaft ca.RevocationList
		a.fsm.Read(func(s *control.State) { fromRaft = s.Revocations })
		if err := a.adoptRevocations(fromRaft); err != nil {
			a.log.Warn("revocation list from raft refused", "err", err)
		}
		select {
		case <-a.ctx.Done():
			return
		case <-changed:
		case b := <-a.revIn:
			l, err := ca.ParseRevocations(b)
			if err == nil {
				err = a.adoptRevocations(l)
			}
			if err != nil {
				a.log.Debug("revocation list from gossip refused", "err", err)
			}
		}
	}
}
