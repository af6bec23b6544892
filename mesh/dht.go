package mesh

import (
	"fmt"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// DHTPrefix returns the private kad-dht protocol prefix of a mesh. palyra
// never speaks the public IPFS DHT's protocol and has no bootstrap peers
// beyond the mesh's own members.
func DHTPrefix(meshID string) protocol.ID {
	return protocol.ID("/palyra/" + meshID)
}

// StartDHT starts a kad-dht server in the mesh's private namespace, used for
// peer routing (finding a member's addresses by peer ID) when gossip has not
// told them. Its streams pass the gate like every other protocol, so only
// members take part. Values are off: nothing is stored but provider records.
func StartDHT(h host.Host, meshID string) (*dht.IpfsDHT, error) {
	d, err := dht.New(h,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(DHTPrefix(meshID)),
		dht.DisableValues(),
		dht.RoutingTableRefreshPeriod(time.Minute),
	)
	if err != nil {
		return nil, fmt.Errorf("kad-dht: %w", err)
	}
	return d, nil
}

// AddAuthenticated puts an authenticated member into the DHT's routing
// table at once, instead of waiting for the next refresh.
func AddAuthenticated(d *dht.IpfsDHT, p peer.ID) {
	_, _ = d.RoutingTable().TryAddPeer(p, true, false)
}
