package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/mesh"
	"github.com/palyra-mesh/palyra/store"
)

// Voter management (autopilot-like). The coordinator keeps the raft voter
// set in line with gossip: it promotes alive, eligible members that have been
// stable for a while, up to maxVoters and keeping the count odd, removes
// voters that are dead while the rest still make a quorum, and demotes one
// healthy voter when the count is even and nobody can make it odd. A member runs raft
// only once the coordinator has asked it to (op raft.prepare): non-voters run
// no raft.
const (
	maxVoters = 5
	// reconcileEvery paces the coordinator's voter reconciliation.
	reconcileEvery = time.Second
	// valueLogGCEvery paces badger's value-log garbage collection (raft
	// deletes compacted log entries; their space comes back only this way).
	valueLogGCEvery = 10 * time.Minute
)

// raftNode is this node's running raft and its store.
type raftNode struct {
	*mesh.Raft
	store   *store.Store
	started time.Time
}

// raft returns the running raft node, nil on a non-voter.
func (a *Agent) raft() *raftNode { return a.voter.Load() }

// startRaft opens the raft store and starts raft; the founder bootstraps a
// one-voter cluster when there is no raft state yet. A no-op when running.
func (a *Agent) startRaft() error {
	a.raftMu.Lock()
	defer a.raftMu.Unlock()
	if a.voter.Load() != nil {
		return nil
	}
	// raft.prepare arrives on a stream handler Close does not wait for:
	// once closing, nothing would stop a raft started now.
	if err := a.ctx.Err(); err != nil {
		return fmt.Errorf("agent closing: %w", err)
	}
	dir := filepath.Join(a.cfg.DataDir, dirRaft)
	st, err := store.Open(store.Config{Dir: filepath.Join(dir, "badger"), Logger: a.log})
	if err != nil {
		return err
	}
	a.fsm.Reset()
	rc := mesh.RaftConfig{
		Dir:       dir,
		Logs:      st,
		Stable:    st,
		FSM:       a.fsm,
		Bootstrap: a.id.mesh.Bootstrap,
		Logger:    a.log,
	}
	t := a.cfg.Timings
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = t.HeartbeatTimeout, t.ElectionTimeout, t.LeaderLeaseTimeout
	r, err := mesh.StartRaft(a.host, a.gate, rc)
	if err != nil {
		st.Close()
		return err
	}
	a.voter.Store(&raftNode{Raft: r, store: st, started: time.Now()})
	if !a.id.mesh.Voter || a.id.mesh.Bootstrap {
		a.metaMu.Lock()
		a.id.mesh.Voter, a.id.mesh.Bootstrap = true, false
		err := a.id.saveMesh(a.cfg.DataDir)
		a.metaMu.Unlock()
		if err != nil {
			return err
		}
	}
	a.log.Info("raft started", "bootstrap", rc.Bootstrap)
	return nil
}

// stopRaft stops raft and closes its store. With forget, the raft data is
// deleted too: the node was removed from the voters, and a later promotion
// must start from the leader's state, not from a configuration that still
// lists this node.
func (a *Agent) stopRaft(forget bool) error {
	a.raftMu.Lock()
	defer a.raftMu.Unlock()
	r := a.voter.Swap(nil)
	if r == nil {
		return nil
	}
	err := errors.Join(r.Close(), r.store.Close())
	if forget {
		a.metaMu.Lock()
		a.id.mesh.Voter = false
		err = errors.Join(err, a.id.saveMesh(a.cfg.DataDir))
		a.metaMu.Unlock()
		err = errors.Join(err, os.RemoveAll(filepath.Join(a.cfg.DataDir, dirRaft)))
		a.log.Info("no longer a voter: raft stopped")
	}
	return err
}

// seedPeerstore puts the saved members' addresses into the peerstore before
// anything dials: raft addresses are peer IDs, and after a whole-mesh restart
// nothing else knows where the other voters are.
func (a *Agent) seedPeerstore() {
	for _, s := range append(append([]string{}, a.cfg.Peers...), a.id.mesh.Peers...) {
		if ai, err := parsePeer(s); err == nil && ai.ID != a.host.ID() {
			a.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.AddressTTL)
		}
	}
}

// raftLoop follows raft on this node: it publishes coordinator, term and
// voter status in gossip, writes the founding record, reconciles voters while
// leader, and notices when this node was removed from the voters.
func (a *Agent) raftLoop() {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var lastReconcile, leaderSince time.Time
	lastGC := time.Now()
	for {
		r := a.raft()
		var leaderCh <-chan bool
		if r != nil {
			leaderCh = r.LeaderCh()
			switch {
			case r.State() == raft.Shutdown:
				// raft shuts itself down when the leader removed us.
				if err := a.stopRaft(true); err != nil {
					a.log.Warn("stop raft", "err", err)
				}
				continue
			case a.removedSilently(r):
				// We were dropped from the voters without hearing of it: the
				// leader gossip announces no longer talks to us. Become a
				// plain member; the leader promotes us again if it wants.
				a.log.Info("no leader contact while a coordinator is announced: leaving raft")
				if err := a.stopRaft(true); err != nil {
					a.log.Warn("stop raft", "err", err)
				}
				continue
			case r.State() == raft.Leader:
				if leaderSince.IsZero() {
					leaderSince = time.Now()
				}
				if err := a.founderInit(); err != nil {
					a.log.Warn("founding record", "err", err)
				}
				if time.Since(lastReconcile) >= reconcileEvery {
					lastReconcile = time.Now()
					a.reconcileVoters(r, leaderSince)
				}
			default:
				leaderSince = time.Time{}
			}
		}
		if r != nil && time.Since(lastGC) >= valueLogGCEvery {
			lastGC = time.Now()
			if err := r.store.RunGC(); err != nil {
				a.log.Warn("raft store garbage collection", "err", err)
			}
		}
		a.publishRaftMeta(r)
		select {
		case <-a.ctx.Done():
			return
		case <-leaderCh:
		case <-tick.C:
		}
	}
}

// removedSilently reports whether this voter's raft has heard no leader for
// a long while although gossip shows an alive coordinator other than us. A
// raft that has just started has heard nobody yet (LastContact is zero):
// the silence counts from its start.
func (a *Agent) removedSilently(r *raftNode) bool {
	quiet := 20 * a.cfg.Timings.HeartbeatTimeout
	if r.State() == raft.Leader || time.Since(r.started) < quiet || time.Since(r.LastContact()) < quiet {
		return false
	}
	coord, ok := a.announcedCoordinator()
	return ok && coord != a.host.ID()
}

// publishRaftMeta updates coordinator, term and voter in gossip metadata
// when they changed.
func (a *Agent) publishRaftMeta(r *raftNode) {
	var leader, voter bool
	var term uint64
	if r != nil {
		leader = r.State() == raft.Leader
		term = raftTerm(r)
		voter = isVoter(r, a.host.ID())
	}
	cur := a.currentMeta()
	unchanged := cur.Coordinator == leader && cur.Term == term && cur.Voter == voter
	if unchanged && (!leader || cur.Claim != nil) {
		return
	}
	var claim []byte
	if leader {
		// Without the CA key (not replicated yet) the claim is left out and
		// tried again on the next pass; until then members keep following
		// the last coordinator they could verify.
		var err error
		if claim, err = a.signClaim(term); err != nil {
			a.log.Debug("coordinator claim", "err", err)
			if unchanged {
				return
			}
		}
	}
	a.setMeta(func(m *mesh.Meta) { m.Coordinator, m.Term, m.Voter, m.Claim = leader, term, voter, claim })
}

// signClaim signs, with the CA key from the replicated state, the claim
// that this node is the coordinator at term.
func (a *Agent) signClaim(term uint64) ([]byte, error) {
	signer, err := a.signer()
	if err != nil {
		return nil, err
	}
	return signer.SignCoordinator(a.host.ID().String(), term)
}

func raftTerm(r *raftNode) uint64 {
	var t uint64
	fmt.Sscan(r.Stats()["term"], &t)
	return t
}

// voterIDs returns the voters of the latest raft configuration.
func voterIDs(r *raftNode) map[peer.ID]bool {
	out := map[peer.ID]bool{}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return out
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			if id, err := peer.Decode(string(s.ID)); err == nil {
				out[id] = true
			}
		}
	}
	return out
}

func isVoter(r *raftNode, self peer.ID) bool { return voterIDs(r)[self] }

// founderInit writes the mesh.init command once, on the founder.
func (a *Agent) founderInit() error {
	var done bool
	a.fsm.Read(func(s *control.State) { done = s.MeshID != "" })
	if done || a.id.ca.Key == nil {
		return nil
	}
	keyPEM, err := a.id.ca.KeyPEM()
	if err != nil {
		return err
	}
	c := a.cert()
	_, err = a.apply(a.ctx, control.OpInit, control.Init{
		MeshID: a.id.mesh.MeshID, CACertPEM: string(a.id.ca.CertPEM()), CAKeyPEM: string(keyPEM),
		Node: control.Node{Name: c.Name, PeerID: a.host.ID().String(), Roles: c.Roles, CertPEM: string(c.PEM()),
			Serial: c.Serial, CertExpiresAt: c.NotAfter, JoinedAt: time.Now()},
	})
	return err
}

// reconcileVoters is one autopilot pass on the leader, which has led since
// leaderSince.
func (a *Agent) reconcileVoters(r *raftNode, leaderSince time.Time) {
	voters := voterIDs(r)
	members := map[peer.ID]mesh.Member{}
	for _, m := range a.gossip.Members() {
		members[m.PeerID] = m
	}
	now := time.Now()

	// Remove voters that have been dead (or gone) for a while, one at a
	// time, only while the voters left alive still make a quorum of the
	// smaller set. The leader never removes itself. A voter gossip does not
	// know at all counts as gone only once this node has led for VoterDead:
	// after a whole-mesh restart gossip finds the voters after raft does.
	alive := 0
	for id := range voters {
		if m, ok := members[id]; id == a.host.ID() || (ok && m.State == "alive") {
			alive++
		}
	}
	for id := range voters {
		m, ok := members[id]
		dead := a.cfg.Timings.VoterDead
		gone := a.isRevokedPeer(id) ||
			!ok && now.Sub(leaderSince) >= dead ||
			ok && (m.State == "dead" || m.State == "left") && now.Sub(m.Since) >= dead
		if id == a.host.ID() || !gone {
			continue
		}
		if alive < (len(voters)-1)/2+1 {
			a.log.Warn("dead voter kept: removing it would lose quorum", "peer", id)
			break
		}
		a.log.Info("removing dead voter", "peer", id, "node", m.Meta.Name)
		if err := r.RemoveServer(raft.ServerID(id.String()), 0, 5*time.Second).Error(); err != nil {
			a.log.Warn("remove voter", "peer", id, "err", err)
		}
		return // one change per pass; the next pass sees the new configuration
	}

	// A voter in the configuration that runs no raft (it restarted without
	// its raft data, or left raft believing itself removed) is asked to
	// start it again.
	for id := range voters {
		m, ok := members[id]
		if ok && id != a.host.ID() && m.State == "alive" && !m.Meta.Voter && now.Sub(m.Since) >= a.cfg.Timings.VoterStable {
			if err := a.promote(r, m); err != nil {
				a.log.Warn("restart voter", "node", m.Meta.Name, "err", err)
			}
			return
		}
	}

	// Promote stable, eligible members up to maxVoters, keeping the count odd.
	var cands []mesh.Member
	for id, m := range members {
		if voters[id] || id == a.host.ID() || m.State != "alive" || !m.Meta.Eligible || now.Sub(m.Since) < a.cfg.Timings.VoterStable || a.isRevokedPeer(id) {
			continue
		}
		cands = append(cands, m)
	}
	target := min(maxVoters, len(voters)+len(cands))
	if target%2 == 0 {
		target--
	}
	if target < len(voters) && alive == len(voters) {
		a.demoteOne(r, voters, members)
		return
	}
	if target <= len(voters) {
		return
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Since.Before(cands[j].Since) })
	for _, m := range cands[:target-len(voters)] {
		if err := a.promote(r, m); err != nil {
			a.log.Warn("promote voter", "node", m.Meta.Name, "err", err)
			return
		}
	}
}

// demoteOne removes the most recently joined voter other than the leader,
// to bring an even voter count (after a dead voter was removed and no member
// can replace it) back to odd: an even count tolerates no more failures
// than the odd count below it, and costs more replication.
func (a *Agent) demoteOne(r *raftNode, voters map[peer.ID]bool, members map[peer.ID]mesh.Member) {
	var pick mesh.Member
	for id := range voters {
		m, ok := members[id]
		if ok && id != a.host.ID() && (pick.PeerID == "" || m.Since.After(pick.Since)) {
			pick = m
		}
	}
	if pick.PeerID == "" {
		return
	}
	a.log.Info("demoting a voter to keep the voter count odd", "node", pick.Meta.Name, "voters", len(voters))
	if err := r.RemoveServer(raft.ServerID(pick.PeerID.String()), 0, 5*time.Second).Error(); err != nil {
		a.log.Warn("demote voter", "node", pick.Meta.Name, "err", err)
	}
}

// promote asks m to start raft, then adds it as a voter.
func (a *Agent) promote(r *raftNode, m mesh.Member) error {
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	if _, err := a.callMember(ctx, m.PeerID, controlRequest{Op: opRaftPrepare}); err != nil {
		return fmt.Errorf("prepare %s: %w", m.Meta.Name, err)
	}
	id := m.PeerID.String()
	if err := r.AddVoter(raft.ServerID(id), raft.ServerAddress(id), 0, 10*time.Second).Error(); err != nil {
		return fmt.Errorf("add voter %s: %w", m.Meta.Name, err)
	}
	a.log.Info("promoted voter", "node", m.Meta.Name, "peer", m.PeerID)
	return nil
}

// prepareRaft serves raft.prepare: only the coordinator may ask, and only an
// eligible node says yes.
func (a *Agent) prepareRaft(from peer.ID) error {
	if !a.cfg.Coordinator {
		return errf(409, "conflict", "%s runs with --coordinator=false", a.id.mesh.Name)
	}
	// Gossip, not our own raft: a voter the coordinator removed while it was
	// cut off still runs raft with a stale configuration and knows no leader.
	if coord, ok := a.announcedCoordinator(); !ok || coord != from {
		return errf(403, "forbidden", "only the coordinator may make this node a voter")
	}
	return a.startRaft()
}

// noCoordinator explains why no coordinator can take a write: on a minority
// side it says how many voters are reachable.
func (a *Agent) noCoordinator() error {
	members := a.gossip.Members()
	alive := map[peer.ID]bool{a.host.ID(): true}
	voters := map[peer.ID]bool{}
	for _, m := range members {
		if m.State == "alive" {
			alive[m.PeerID] = true
		}
		if m.Meta.Voter {
			voters[m.PeerID] = true
		}
	}
	if r := a.raft(); r != nil {
		voters = voterIDs(r) // a voter knows the configuration itself
	}
	if len(voters) == 0 {
		return fmt.Errorf("%w: no member announces itself as coordinator", mesh.ErrNoCoordinator)
	}
	reachable := 0
	for id := range voters {
		if alive[id] {
			reachable++
		}
	}
	return fmt.Errorf("%w: no quorum: %d of %d voters reachable", mesh.ErrNoCoordinator, reachable, len(voters))
}
