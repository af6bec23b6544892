package agent

import (
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/api"
	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/mesh"
)

// leaderContactFresh is how recently a follower must have heard from the
// leader to report it as coordinator (two heartbeat timeouts).
const leaderContactFresh = time.Second

func (a *Agent) status() api.Status {
	st := api.Status{
		MeshID: a.id.mesh.MeshID,
		Self:   api.NodeRef{Name: a.id.mesh.Name, PeerID: a.host.ID().String()},
	}
	coord, haveCoord := a.coordinator()
	var voters map[peer.ID]bool
	if r := a.raft(); r != nil {
		voters = voterIDs(r)
		st.Term = raftTerm(r)
	}
	st.Quorum = haveCoord
	for _, m := range a.gossip.Members() {
		// A member's metadata is its own claim; the name in the
		// certificate it showed us is the CA's.
		name := m.Meta.Name
		if c, ok := a.gate.Peer(m.PeerID); ok {
			name = c.Name
		}
		mv := api.MemberView{
			Name: name, PeerID: m.PeerID.String(), State: m.State,
			Coordinator: haveCoord && m.PeerID == coord,
			Voter:       m.Meta.Voter || voters[m.PeerID],
			Addrs:       nonNil(m.Meta.Addrs), Capabilities: nonNil(m.Meta.Caps), Version: m.Meta.Version,
			Revoked: a.isRevokedPeer(m.PeerID),
		}
		if mv.Coordinator {
			st.Coordinator = &api.NodeRef{Name: mv.Name, PeerID: mv.PeerID}
			if st.Term == 0 {
				st.Term = m.Meta.Term
			}
		}
		st.Members = append(st.Members, mv)
	}
	if len(st.Members) == 0 {
		// Gossip has not reported ourselves yet: show at least this node.
		st.Members = []api.MemberView{selfView(a, a.currentMeta())}
	}
	if !st.Quorum {
		st.Warnings = append(st.Warnings, a.noCoordinator().Error())
	}
	st.Warnings = append(st.Warnings, a.expiryWarnings(time.Now())...)
	return st
}

// expiryWarnings says when the CA or a certificate this node knows of (its
// own, its authenticated peers', the registry's on voters) is close to
// expiry: under a quarter of its lifetime left means renewal (due at a
// third) is failing.
func (a *Agent) expiryWarnings(now time.Time) []string {
	var out []string
	caCert := a.id.ca.Cert
	caLife := caCert.NotAfter.Sub(caCert.NotBefore)
	if left := caCert.NotAfter.Sub(now); left < min(30*24*time.Hour, caLife/3) {
		out = append(out, fmt.Sprintf("the mesh CA expires in %s (at %s): the mesh must be re-created before then", left.Round(time.Second), caCert.NotAfter.UTC().Format(time.RFC3339)))
	}
	seen := map[string]bool{}
	warn := func(name string, notAfter time.Time, life time.Duration) {
		if seen[name] || life <= 0 {
			return
		}
		seen[name] = true
		if left := notAfter.Sub(now); left < life/4 {
			verb := "expires in " + left.Round(time.Second).String()
			if left <= 0 {
				verb = "expired " + (-left).Round(time.Second).String() + " ago"
			}
			out = append(out, fmt.Sprintf("certificate of %s %s and was not renewed", name, verb))
		}
	}
	own := a.cert()
	warn(own.Name, own.NotAfter, own.Lifetime())
	for _, c := range a.gate.Authenticated() {
		warn(c.Name, c.NotAfter, c.Lifetime())
	}
	a.fsm.Read(func(s *control.State) {
		for _, n := range s.Nodes {
			if !n.Revoked {
				warn(n.Name, n.CertExpiresAt, a.cfg.CertLifetime)
			}
		}
	})
	sort.Strings(out)
	return out
}

func selfView(a *Agent, meta mesh.Meta) api.MemberView {
	return api.MemberView{Name: meta.Name, PeerID: a.host.ID().String(), State: "alive", Coordinator: meta.Coordinator,
		Voter: meta.Voter, Addrs: nonNil(meta.Addrs), Capabilities: nonNil(meta.Caps), Version: meta.Version}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
