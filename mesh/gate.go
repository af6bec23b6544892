package mesh

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/palyra-mesh/palyra/ca"
)

// AuthProtocol is the certificate handshake every member runs after a
// libp2p connection: each side sends its mesh certificate and checks the
// other's chain, validity, revocation and that the certificate key is the
// key libp2p already authenticated (the peer ID).
const AuthProtocol = protocol.ID("/palyra/auth/1.0.0")

// authHello is the one message each side of the handshake sends.
type authHello struct {
	Cert  []byte `json:"cert,omitempty"`
	Error string `json:"error,omitempty"`
}

// GateConfig configures a Gate.
type GateConfig struct {
	// CA verifies peer certificates. Nil on a host that has not joined a mesh
	// yet: such a gate admits nobody beyond the open protocols.
	CA *ca.CA
	// Cert is this node's own certificate, shown to peers.
	Cert *ca.Certificate
	// Open lists protocols any peer may open before authenticating (pairing).
	Open []protocol.ID
	// Revoked reports whether a peer's identity is revoked. Nil: none is.
	// It must be fast and safe for concurrent use (it runs on every
	// connection and handshake).
	Revoked func(peer.ID) bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives handshake failures at debug level.
	Logger *slog.Logger
	// OnAuthenticated, if set, is called (on its own goroutine) after a peer
	// showed a valid certificate.
	OnAuthenticated func(peer.ID)
}

// Gate is the authentication gate. It wraps the host's resource manager so
// that an inbound stream whose peer has not authenticated is reset at
// protocol negotiation, whatever service registered the protocol (ours,
// kad-dht's, anyone's), except for the open protocols. Safe for concurrent use.
type Gate struct {
	cfg  GateConfig
	host host.Host
	log  *slog.Logger

	mu       sync.Mutex
	ca       *ca.CA
	cert     *ca.Certificate
	peers    map[peer.ID]*ca.Certificate
	stale    map[peer.ID]bool // peers whose certificate stopped verifying
	blocked  func(peer.ID) bool
	inflight map[peer.ID]*handshake
}

type handshake struct {
	done chan struct{}
	err  error
}

// NewGate returns a gate; it is attached to a host by NewHost.
func NewGate(cfg GateConfig) *Gate {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Gate{
		cfg:      cfg,
		ca:       cfg.CA,
		cert:     cfg.Cert,
		log:      cfg.Logger.With("component", "gate"),
		peers:    make(map[peer.ID]*ca.Certificate),
		stale:    make(map[peer.ID]bool),
		inflight: make(map[peer.ID]*handshake),
	}
}

func (g *Gate) attach(h host.Host) {
	g.host = h
	h.SetStreamHandler(AuthProtocol, g.handle)
	h.Network().Notify(&network.NotifyBundle{
		// The dialing side authenticates at once, so the first protected
		// stream either way finds the peer known.
		ConnectedF: func(_ network.Network, c network.Conn) {
			if c.Stat().Direction != network.DirOutbound {
				return
			}
			if authority, _ := g.identity(); authority == nil {
				return
			}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := g.Await(ctx, c.RemotePeer()); err != nil {
					g.log.Debug("handshake after connect", "peer", c.RemotePeer(), "err", err)
				}
			}()
		},
		DisconnectedF: func(n network.Network, c network.Conn) {
			p := c.RemotePeer()
			if n.Connectedness(p) != network.Connected {
				g.forget(p)
			}
		},
	})
}

// Peer returns the verified certificate of an authenticated peer.
func (g *Gate) Peer(p peer.ID) (*ca.Certificate, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.peers[p]
	return c, ok
}

// Authenticated lists the peers with a verified certificate.
func (g *Gate) Authenticated() map[peer.ID]*ca.Certificate {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[peer.ID]*ca.Certificate, len(g.peers))
	for p, c := range g.peers {
		out[p] = c
	}
	return out
}

// SetIdentity installs the mesh CA and this node's certificate, e.g. once
// pairing has produced them or after renewal.
func (g *Gate) SetIdentity(authority *ca.CA, cert *ca.Certificate) {
	g.mu.Lock()
	g.ca, g.cert = authority, cert
	g.mu.Unlock()
}

// identity returns the CA and own certificate, both nil unless both are set.
func (g *Gate) identity() (*ca.CA, *ca.Certificate) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ca == nil || g.cert == nil {
		return nil, nil
	}
	return g.ca, g.cert
}

func (g *Gate) forget(p peer.ID) {
	g.mu.Lock()
	delete(g.peers, p)
	delete(g.stale, p)
	g.mu.Unlock()
}

// valid reports whether p holds a certificate that is still good now.
func (g *Gate) valid(p peer.ID) bool {
	g.mu.Lock()
	c, ok := g.peers[p]
	g.mu.Unlock()
	if !ok {
		return false
	}
	if err := g.check(c, nil); err != nil {
		g.mu.Lock()
		delete(g.peers, p)
		g.stale[p] = true
		g.mu.Unlock()
		return false
	}
	return true
}

// check verifies a certificate against the CA, the clock, the revocation
// set and (when remote is not nil) the peer's key.
func (g *Gate) check(c *ca.Certificate, remote ed25519.PublicKey) error {
	authority, _ := g.identity()
	if authority == nil {
		return fmt.Errorf("this node has no mesh certificate yet")
	}
	if err := authority.Verify(g.cfg.Now(), c, remote); err != nil {
		return err
	}
	if g.cfg.Revoked != nil {
		if p, err := PeerIDFromKey(c.PublicKey); err == nil && g.cfg.Revoked(p) {
			return fmt.Errorf("node %q (%s) is revoked", c.Name, p)
		}
	}
	return nil
}

// admits decides whether peer p may open proto on this host.
func (g *Gate) admits(p peer.ID, proto protocol.ID) bool {
	if proto == AuthProtocol || strings.HasPrefix(string(proto), "/ipfs/id/") || proto == "/ipfs/ping/1.0.0" {
		return true
	}
	for _, o := range g.cfg.Open {
		if proto == o {
			return true
		}
	}
	if g.valid(p) {
		return true
	}
	if _, known := g.Peer(p); !known && g.everKnown(p) {
		// We held a certificate of p that no longer verifies (e.g. it
		// expired because p renewed and we kept the old one): fetch the
		// current one so p's next stream passes.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = g.Await(ctx, p)
		}()
	}
	return false
}

func (g *Gate) everKnown(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stale[p]
}

// Reannounce shows this node's (renewed) certificate to every peer it is
// authenticated with, so they replace the one they hold.
func (g *Gate) Reannounce() {
	for p := range g.Authenticated() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := g.dial(ctx, p); err != nil {
				g.log.Debug("reannounce", "peer", p, "err", err)
			}
		}()
	}
}

// Await makes sure p is authenticated, running the handshake if needed.
// Concurrent callers for the same peer share one handshake.
func (g *Gate) Await(ctx context.Context, p peer.ID) error {
	if authority, _ := g.identity(); authority == nil {
		return fmt.Errorf("%w: this node has no mesh certificate", ErrNotAuthenticated)
	}
	if g.revoked(p) {
		return fmt.Errorf("%w: %w: %s", ErrNotAuthenticated, ErrRevoked, p)
	}
	if g.valid(p) {
		return nil
	}
	g.mu.Lock()
	hs, running := g.inflight[p]
	if !running {
		hs = &handshake{done: make(chan struct{})}
		g.inflight[p] = hs
	}
	g.mu.Unlock()
	if !running {
		go func() {
			hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			hs.err = g.dial(hctx, p)
			g.mu.Lock()
			delete(g.inflight, p)
			g.mu.Unlock()
			close(hs.done)
		}()
	}
	select {
	case <-hs.done:
		return hs.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dial runs the initiator side of the handshake.
func (g *Gate) dial(ctx context.Context, p peer.ID) error {
	s, err := g.host.NewStream(ctx, p, AuthProtocol)
	if err != nil {
		return fmt.Errorf("auth stream to %s: %w", p, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	_, own := g.identity()
	if err := WriteMsg(s, authHello{Cert: own.Raw}); err != nil {
		s.Reset()
		return fmt.Errorf("auth hello to %s: %w", p, err)
	}
	var reply authHello
	if err := ReadMsg(s, 64<<10, &reply); err != nil {
		s.Reset()
		return fmt.Errorf("auth reply from %s: %w", p, err)
	}
	if reply.Error != "" {
		return fmt.Errorf("%w: %s refused us: %s", ErrNotAuthenticated, p, reply.Error)
	}
	return g.accept(s.Conn(), reply.Cert)
}

// handle runs the responder side of the handshake.
func (g *Gate) handle(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	var hello authHello
	if err := ReadMsg(s, 64<<10, &hello); err != nil {
		s.Reset()
		return
	}
	if err := g.accept(s.Conn(), hello.Cert); err != nil {
		g.log.Debug("handshake refused", "peer", s.Conn().RemotePeer(), "err", err)
		_ = WriteMsg(s, authHello{Error: err.Error()})
		return
	}
	if _, own := g.identity(); own != nil {
		_ = WriteMsg(s, authHello{Cert: own.Raw})
	}
}

// accept verifies a certificate presented on conn and records the peer.
func (g *Gate) accept(conn network.Conn, der []byte) error {
	p := conn.RemotePeer()
	cert, err := ca.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotAuthenticated, p, err)
	}
	remote, err := ed25519Key(conn.RemotePublicKey())
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotAuthenticated, p, err)
	}
	if err := g.check(cert, remote); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotAuthenticated, p, err)
	}
	g.mu.Lock()
	_, known := g.peers[p]
	g.peers[p] = cert
	delete(g.stale, p)
	g.mu.Unlock()
	if !known && g.cfg.OnAuthenticated != nil {
		go g.cfg.OnAuthenticated(p)
	}
	return nil
}

// ed25519Key converts a libp2p public key to an Ed25519 key.
func ed25519Key(pk crypto.PubKey) (ed25519.PublicKey, error) {
	if pk == nil || pk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("peer key is not Ed25519")
	}
	raw, err := pk.Raw()
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(raw), nil
}

// PeerIDFromKey returns the libp2p peer ID of an Ed25519 key.
func PeerIDFromKey(pub ed25519.PublicKey) (peer.ID, error) {
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pk)
}

// resourceManager wraps base so inbound streams are gated at negotiation.
func (g *Gate) resourceManager(base network.ResourceManager) network.ResourceManager {
	return &gatedResources{ResourceManager: base, gate: g}
}

type gatedResources struct {
	network.ResourceManager
	gate *Gate
}

func (r *gatedResources) OpenStream(p peer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	s, err := r.ResourceManager.OpenStream(p, dir)
	if err != nil || dir != network.DirInbound {
		return s, err
	}
	return &gatedStream{StreamManagementScope: s, peer: p, gate: r.gate}, nil
}

type gatedStream struct {
	network.StreamManagementScope
	peer peer.ID
	gate *Gate
}

func (s *gatedStream) SetProtocol(proto protocol.ID) error {
	if !s.gate.admits(s.peer, proto) {
		return fmt.Errorf("%w: %s may not open %s", ErrNotAuthenticated, s.peer, proto)
	}
	return s.StreamManagementScope.SetProtocol(proto)
}

// Disconnect forgets peers (e.g. just revoked) and closes every connection
// to them; the connection gater then refuses them for good.
func (g *Gate) Disconnect(peers ...peer.ID) {
	for _, p := range peers {
		g.forget(p)
		if g.host != nil {
			_ = g.host.Network().ClosePeer(p)
		}
	}
}

func (g *Gate) revoked(p peer.ID) bool {
	if g.cfg.Revoked != nil && g.cfg.Revoked(p) {
		return true
	}
	g.mu.Lock()
	blocked := g.blocked
	g.mu.Unlock()
	return blocked != nil && blocked(p)
}

// SetBlocked makes the gate treat peers for which blocked returns true as
// unreachable: no connection either way, existing ones closed. It is how
// in-process tests cut the network (nil heals).
func (g *Gate) SetBlocked(blocked func(peer.ID) bool) {
	g.mu.Lock()
	g.blocked = blocked
	g.mu.Unlock()
	if blocked == nil || g.host == nil {
		return
	}
	for _, p := range g.host.Network().Peers() {
		if blocked(p) {
			g.Disconnect(p)
		}
	}
}

// The gate is also the host's connection gater: a revoked peer cannot even
// finish a connection, whatever protocol it wants.
var _ connmgr.ConnectionGater = (*Gate)(nil)

// InterceptPeerDial refuses to dial revoked peers.
func (g *Gate) InterceptPeerDial(p peer.ID) bool { return !g.revoked(p) }

// InterceptAddrDial allows every address.
func (g *Gate) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool { return true }

// InterceptAccept allows every inbound connection until its peer is known.
func (g *Gate) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses revoked peers once their identity is known.
func (g *Gate) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.revoked(p)
}

// InterceptUpgraded allows every upgraded connection.
func (g *Gate) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// Host returns the libp2p host the gate guards.
func (g *Gate) Host() host.Host { return g.host }
