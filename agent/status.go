package agent

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/api"
	"github.com/palyra-mesh/palyra/mesh"
)

func (a *Agent) status() api.Status {
	st := api.Status{
		MeshID: a.id.mesh.MeshID,
		Self:   api.NodeRef{Name: a.id.mesh.Name, PeerID: a.host.ID().String()},
	}
	// A voter knows the coordinator from raft itself; others from gossip.
	coord, haveCoord := a.coordinator()
	var voters map[peer.ID]bool
	if r := a.raft(); r != nil {
		voters = voterIDs(r)
		_, leaderID := r.LeaderWithID()
		coord, haveCoord = peer.ID(""), false
		if id, err := peer.Decode(string(leaderID)); err == nil && leaderID != "" {
			coord, haveCoord = id, true
		}
		st.Term = raftTerm(r)
	}
	st.Quorum = haveCoord
	for _, m := range a.gossip.Members() {
		mv := api.MemberView{
			Name: m.Meta.Name, PeerID: m.PeerID.String(), State: m.State,
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
	return st
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
