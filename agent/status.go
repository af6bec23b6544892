package agent

import (
	"github.com/hashicorp/raft"
	"github.com/palyra-mesh/palyra/api"

	"github.com/palyra-mesh/palyra/mesh"
)

func (a *Agent) status() api.Status {
	st := api.Status{
		MeshID: a.id.mesh.MeshID,
		Self:   api.NodeRef{Name: a.id.mesh.Name, PeerID: a.host.ID().String()},
	}
	coord, haveCoord := a.coordinator()
	voters := map[string]bool{}
	if a.raft != nil {
		if f := a.raft.GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				if s.Suffrage == raft.Voter {
					voters[string(s.ID)] = true
				}
			}
		}
		_, leaderID := a.raft.LeaderWithID()
		st.Quorum = leaderID != ""
	} else {
		st.Quorum = haveCoord
	}
	for _, m := range a.gossip.Members() {
		mv := api.MemberView{
			Name: m.Meta.Name, PeerID: m.PeerID.String(), State: m.State,
			Coordinator: haveCoord && m.PeerID == coord,
			Voter:       m.Meta.Voter || voters[m.PeerID.String()],
			Addrs:       nonNil(m.Meta.Addrs), Capabilities: nonNil(m.Meta.Caps), Version: m.Meta.Version,
		}
		if mv.Coordinator {
			st.Coordinator = &api.NodeRef{Name: mv.Name, PeerID: mv.PeerID}
			st.Term = m.Meta.Term
		}
		st.Members = append(st.Members, mv)
	}
	if len(st.Members) == 0 {
		// Gossip has not reported ourselves yet: show at least this node.
		meta := a.currentMeta()
		st.Members = []api.MemberView{selfView(a, meta)}
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
