package mesh

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// DefaultListen is where an agent's libp2p host listens when no --listen is
// given: TCP and QUIC on port 7420, every interface.
var DefaultListen = []string{
	"/ip4/0.0.0.0/tcp/7420",
	"/ip4/0.0.0.0/udp/7420/quic-v1",
}

// NewHost builds the quiet, LAN-only libp2p host every agent runs: TCP and
// QUIC only (no WebSocket/WebTransport/WebRTC), Noise, no relay, no NAT port
// mapping or hole punching, reachability forced private, libp2p's own metrics
// off. Every inbound stream passes through gate before its handler runs.
func NewHost(key crypto.PrivKey, listen []string, gate *Gate) (host.Host, error) {
	if len(listen) == 0 {
		listen = DefaultListen
	}
	base, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(gate.resourceManager(base)),
		libp2p.ConnectionGater(gate),
	)
	if err != nil {
		base.Close()
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	gate.attach(h)
	return h, nil
}
