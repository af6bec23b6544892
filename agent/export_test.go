package agent

import "github.com/palyra-mesh/palyra/mesh"

// Claim makes a's gossip metadata claim another node name and version, as
// a misbehaving member could.
func (a *Agent) Claim(name, version string) {
	a.setMeta(func(m *mesh.Meta) { m.Name, m.Version = name, version })
}
