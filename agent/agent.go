package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	routedhost "github.com/libp2p/go-libp2p/p2p/host/routed"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/mesh"
	"github.com/palyra-mesh/palyra/pairing"
)

// mdnsService is the mDNS service name members advertise. It is the same
// for every mesh because a joiner with only a PIN does not know the mesh ID;
// the PIN exchange itself tells meshes apart.
const mdnsService = "palyra"

// Agent is one running palyra node.
type Agent struct {
	cfg Config
	log *slog.Logger

	id        *identity
	adminTok  string
	gate      *mesh.Gate
	host      host.Host
	dht       *dht.IpfsDHT
	routed    host.Host // host with DHT peer routing, for dialing members
	transport *mesh.Transport
	gossip    *mesh.Gossip
	fsm       *control.FSM
	mdns      mdns.Service
	found     chan peer.AddrInfo
	httpSrv   *http.Server
	httpLn    net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	metaMu sync.Mutex
	meta   mesh.Meta

	certP atomic.Pointer[ca.Certificate] // current certificate (renewed in place)

	revs  revocations
	revIn chan []byte // revocation lists from gossip, for revocationLoop

	// raftMu serialises starting and stopping raft; the running node is
	// published in voter for lock-free reads (nil on non-voters).
	raftMu sync.Mutex
	voter  atomic.Pointer[raftNode]

	closeOnce sync.Once
	fatal     chan error
}

// New validates cfg. It starts nothing.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Agent{
		cfg:    cfg,
		log:    cfg.Logger,
		fsm:    control.NewFSM(),
		found:  make(chan peer.AddrInfo, 16),
		revIn:  make(chan []byte, 16),
		ctx:    ctx,
		cancel: cancel,
		fatal:  make(chan error, 1),
	}, nil
}

// Start brings the node up: it creates or joins a mesh first when the data
// dir holds none, then starts every part and returns. On error everything
// started so far is closed again.
//
// Start sets the process umask to 077 (unix) and makes the data dir private
// (prepareDataDir); a data dir owned by another user is refused.
func (a *Agent) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	// Bind the API first: a busy port must fail before a mesh is created or
	// a PIN is spent.
	if a.httpLn, err = net.Listen("tcp", a.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("http listen %s: %w", a.cfg.HTTPAddr, err)
	}
	// Secrets are 0600 in a 0700 dir: files created from here on (badger's,
	// raft snapshots) by the umask, what is already there by prepareDataDir.
	privateUmask()
	if err := prepareDataDir(a.cfg.DataDir, a.log); err != nil {
		return err
	}
	a.gate = mesh.NewGate(mesh.GateConfig{
		Open:    []protocol.ID{pairing.Protocol, renewProtocol},
		Logger:  a.log,
		Revoked: a.isRevokedPeer,
		OnAuthenticated: func(p peer.ID) {
			if a.dht != nil {
				mesh.AddAuthenticated(a.dht, p)
			}
		},
	})
	switch {
	case hasMesh(a.cfg.DataDir):
		a.id, err = loadIdentity(a.cfg.DataDir)
		if err != nil {
			return err
		}
	case a.cfg.Init:
		if a.id, err = a.createMesh(); err != nil {
			return err
		}
	case a.cfg.PIN != "":
		// Pairing runs on the node's real host (same key, same port) with
		// an identity-less gate; nothing is written until it succeeds.
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return err
		}
		if err := a.startHost(key); err != nil {
			return err
		}
		if a.id, err = a.pair(ctx, key); err != nil {
			return err
		}
	default:
		return ErrNoMesh
	}
	a.certP.Store(a.id.cert)
	if err := a.checkExpiry(time.Now()); err != nil {
		return err
	}
	a.gate.SetIdentity(a.id.ca, a.id.cert)
	a.loadRevocations()
	if a.host == nil {
		if err := a.startHost(a.id.key); err != nil {
			return err
		}
	}
	if a.adminTok, err = adminToken(a.cfg.DataDir); err != nil {
		return err
	}
	if a.cfg.MDNS {
		// Members advertise themselves so `palyra agent --pin` alone finds one.
		if err := a.startMDNS(); err != nil {
			return err
		}
	}
	if a.dht, err = mesh.StartDHT(a.host, a.id.mesh.MeshID); err != nil {
		return err
	}
	a.routed = routedhost.Wrap(a.host, a.dht)
	a.meta = mesh.Meta{Name: a.id.mesh.Name, Version: a.cfg.Version, Eligible: a.cfg.Coordinator, Voter: a.id.mesh.Voter}
	a.refreshAddrs()
	a.seedPeerstore()
	if a.id.mesh.Voter {
		if err := a.startRaft(); err != nil {
			return err
		}
	}
	if err := a.startGossip(); err != nil {
		return err
	}
	a.host.SetStreamHandler(pairing.Protocol, a.handlePair)
	a.host.SetStreamHandler(pairing.RelayProtocol, a.handleRelay)
	a.host.SetStreamHandler(controlProtocol, a.handleControl)
	a.host.SetStreamHandler(renewProtocol, a.handleRenew)
	if err := a.startHTTP(); err != nil {
		return err
	}
	a.goTracked(a.joinLoop)
	a.goTracked(a.reconnectLoop)
	a.goTracked(a.raftLoop)
	a.goTracked(a.revocationLoop)
	a.goTracked(a.renewLoop)
	a.log.Info("agent started", "node", a.id.mesh.Name, "peer", a.host.ID(), "mesh", a.id.mesh.MeshID,
		"http", a.httpLn.Addr().String(), "addrs", a.host.Addrs())
	return nil
}

// createMesh makes a new mesh in the data dir: CA, the founder's key and
// certificate. The raft cluster is bootstrapped by startRaft.
func (a *Agent) createMesh() (*identity, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	idb := make([]byte, 8)
	if _, err := rand.Read(idb); err != nil {
		return nil, err
	}
	meshID := hex.EncodeToString(idb)
	now := time.Now()
	authority, err := ca.New(meshID, now, a.cfg.CALifetime, nil)
	if err != nil {
		return nil, err
	}
	pub, err := edPublic(key)
	if err != nil {
		return nil, err
	}
	cert, err := authority.Issue(now, pub, a.cfg.Name, []string{"admin"}, a.cfg.CertLifetime, nil)
	if err != nil {
		return nil, err
	}
	id := &identity{key: key, ca: authority, cert: cert, mesh: meshFile{MeshID: meshID, Name: a.cfg.Name, Voter: true, Bootstrap: true}}
	if err := id.save(a.cfg.DataDir); err != nil {
		return nil, err
	}
	a.log.Info("created mesh", "mesh", meshID, "node", a.cfg.Name)
	return id, nil
}

// pair joins a mesh with the PIN and saves the resulting identity.
func (a *Agent) pair(ctx context.Context, key crypto.PrivKey) (*identity, error) {
	pin, code, err := parseJoinInput(a.cfg.PIN)
	if err != nil {
		return nil, &pairing.Error{Code: pairing.CodeBadRequest, Message: err.Error()}
	}
	var members []peer.AddrInfo
	for _, p := range append(append([]string{}, a.cfg.Peers...), code.Peers...) {
		ai, err := parsePeer(p)
		if err != nil {
			return nil, fmt.Errorf("--peer %q: %w", p, err)
		}
		members = append(members, ai)
	}
	var found <-chan peer.AddrInfo
	if a.cfg.MDNS {
		if err := a.startMDNS(); err != nil {
			return nil, err
		}
		found = a.found
	} else if len(members) == 0 {
		return nil, errors.New("no member to contact: give --peer MULTIADDR (mDNS is off)")
	}
	raw, err := key.Raw()
	if err != nil {
		return nil, err
	}
	b, err := pairing.Join(ctx, pairing.JoinConfig{
		Host: a.host, Key: ed25519.NewKeyFromSeed(raw[:32]), Name: a.cfg.Name, PIN: pin,
		Members: members, Found: found, Wait: a.cfg.JoinWait, CAFingerprint: code.CAFingerprint,
		OnPending: func() {
			a.log.Info("join is waiting for an operator's approval (palyra nodes approve " + a.cfg.Name + ")")
		},
		Logger: a.log,
	})
	if err != nil {
		return nil, err
	}
	authority, err := ca.Load([]byte(b.CACertPEM), nil)
	if err != nil {
		return nil, err
	}
	cert, err := ca.ParseCertificatePEM([]byte(b.CertPEM))
	if err != nil {
		return nil, err
	}
	id := &identity{key: key, ca: authority, cert: cert, mesh: meshFile{MeshID: b.MeshID, Name: b.Name, Peers: b.Peers}}
	if err := id.save(a.cfg.DataDir); err != nil {
		return nil, err
	}
	a.log.Info("joined mesh", "mesh", b.MeshID, "node", b.Name, "roles", b.Roles)
	return id, nil
}

func edPublic(k crypto.PrivKey) (ed25519.PublicKey, error) {
	raw, err := k.GetPublic().Raw()
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(raw), nil
}

func (a *Agent) startHost(key crypto.PrivKey) error {
	h, err := mesh.NewHost(key, a.cfg.Listen, a.gate)
	if err != nil {
		return err
	}
	a.host = h
	return nil
}

func (a *Agent) startMDNS() error {
	if a.mdns != nil {
		return nil
	}
	a.mdns = mdns.NewMdnsService(a.host, mdnsService, mdnsNotifee{a})
	return a.mdns.Start()
}

type mdnsNotifee struct{ a *Agent }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	select {
	case n.a.found <- ai:
	default:
	}
}

func (a *Agent) startGossip() error {
	tr, err := mesh.NewTransport(mesh.TransportConfig{Host: a.host, Auth: a.gate, Logger: a.log})
	if err != nil {
		return err
	}
	a.transport = tr
	gc := mesh.GossipConfig{
		Transport:  tr,
		Meta:       a.currentMeta,
		OnChange:   a.membershipChanged,
		OnMessage:  a.gossipMessage,
		LocalState: a.gossipRevocations,
		MergeState: a.gossipMessage,
		Logger:     a.log,
	}
	t := a.cfg.Timings
	gc.ProbeInterval, gc.ProbeTimeout, gc.GossipInterval, gc.SuspicionMult = t.ProbeInterval, t.ProbeTimeout, t.GossipInterval, t.SuspicionMult
	g, err := mesh.NewGossip(gc)
	if err != nil {
		tr.Shutdown()
		return err
	}
	a.gossip = g // before Start: its goroutines call back into the agent
	return g.Start()
}

func (a *Agent) currentMeta() mesh.Meta {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	return a.meta
}

func (a *Agent) setMeta(f func(*mesh.Meta)) {
	a.metaMu.Lock()
	f(&a.meta)
	a.metaMu.Unlock()
	if a.gossip != nil {
		if err := a.gossip.UpdateMeta(2 * time.Second); err != nil {
			a.log.Debug("update meta", "err", err)
		}
	}
}

// refreshAddrs puts the host's current listen addresses into the meta.
func (a *Agent) refreshAddrs() {
	addrs := advertiseOrder(a.host.Addrs())
	a.metaMu.Lock()
	a.meta.Addrs = addrs
	a.metaMu.Unlock()
}

// advertiseOrder lists addresses for the metadata, loopback ones last:
// metadata that outgrows its 512 bytes loses addresses from the end, and a
// loopback address is the least use to other machines.
func advertiseOrder(addrs []ma.Multiaddr) []string {
	rank := func(m ma.Multiaddr) int {
		if manet.IsIPLoopback(m) {
			return 1
		}
		return 0
	}
	sorted := slices.Clone(addrs)
	slices.SortStableFunc(sorted, func(x, y ma.Multiaddr) int { return rank(x) - rank(y) })
	out := make([]string, len(sorted))
	for i, m := range sorted {
		out[i] = m.String()
	}
	return out
}

// membershipChanged runs after gossip saw a change: remember members'
// addresses so a restart can rejoin without a PIN.
func (a *Agent) membershipChanged() {
	peers := a.memberAddrs(16)
	if len(peers) == 0 {
		return
	}
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	if equalStrings(peers, a.id.mesh.Peers) {
		return
	}
	a.id.mesh.Peers = peers
	if err := a.id.saveMesh(a.cfg.DataDir); err != nil {
		a.log.Warn("save peers", "err", err)
	}
}

// savedPeers returns the member addresses saved in mesh.json.
func (a *Agent) savedPeers() []string {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	return slices.Clone(a.id.mesh.Peers)
}

// memberAddrs lists up to n alive members' addresses (with /p2p/), self excluded.
func (a *Agent) memberAddrs(n int) []string {
	var out []string
	for _, m := range a.gossip.Members() {
		if m.PeerID == a.host.ID() || m.State != "alive" {
			continue
		}
		for _, s := range m.Meta.Addrs {
			out = append(out, s+"/p2p/"+m.PeerID.String())
		}
		if len(out) >= n {
			break
		}
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// joinLoop joins gossip through the known peers, retrying with backoff
// until one answers (after a restart the others may still be down).
func (a *Agent) joinLoop() {
	wait := 200 * time.Millisecond
	for {
		var peers []peer.AddrInfo
		for _, s := range append(append([]string{}, a.cfg.Peers...), a.savedPeers()...) {
			if ai, err := parsePeer(s); err == nil && ai.ID != a.host.ID() {
				peers = append(peers, ai)
			}
		}
		if len(peers) == 0 {
			return
		}
		n, err := a.gossip.Join(mergeAddrInfos(peers))
		if err == nil && n > 0 {
			a.log.Info("joined gossip", "contacted", n)
			return
		}
		a.log.Debug("gossip join", "err", err)
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// reconnectLoop tries, now and then, to join members this node sees dead
// (not left, not revoked): a healed partition merges back this way.
func (a *Agent) reconnectLoop() {
	tick := time.NewTicker(a.cfg.Timings.Reconnect)
	defer tick.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-tick.C:
		}
		var peers []peer.AddrInfo
		for _, m := range a.gossip.Members() {
			if m.State != "dead" || a.isRevokedPeer(m.PeerID) || time.Since(m.Since) > 24*time.Hour {
				continue
			}
			ai := peer.AddrInfo{ID: m.PeerID}
			for _, s := range m.Meta.Addrs {
				if addr, err := ma.NewMultiaddr(s); err == nil {
					ai.Addrs = append(ai.Addrs, addr)
				}
			}
			peers = append(peers, ai)
		}
		if len(peers) == 0 {
			continue
		}
		mrand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
		if n, err := a.gossip.Join(peers[:min(3, len(peers))]); err == nil && n > 0 {
			a.log.Debug("reconnected to members seen dead", "contacted", n)
		}
	}
}

func mergeAddrInfos(in []peer.AddrInfo) []peer.AddrInfo {
	idx := map[peer.ID]int{}
	var out []peer.AddrInfo
	for _, ai := range in {
		if i, ok := idx[ai.ID]; ok {
			out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
			continue
		}
		idx[ai.ID] = len(out)
		out = append(out, peer.AddrInfo{ID: ai.ID, Addrs: append([]ma.Multiaddr{}, ai.Addrs...)})
	}
	return out
}

func (a *Agent) goTracked(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

func (a *Agent) startHTTP() error {
	ln := a.httpLn
	a.httpSrv = &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	a.goTracked(func() {
		if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case a.fatal <- fmt.Errorf("http: %w", err):
			default:
			}
		}
	})
	return nil
}

// PeerID returns this node's libp2p peer ID.
func (a *Agent) PeerID() peer.ID { return a.host.ID() }

// P2PAddrs returns this node's libp2p addresses ending in /p2p/PEER_ID, as
// --peer takes them.
func (a *Agent) P2PAddrs() []string {
	var out []string
	for _, m := range a.host.Addrs() {
		out = append(out, m.String()+"/p2p/"+a.host.ID().String())
	}
	return out
}

// SetBlocked cuts this node off from the peers blocked returns true for
// (nil heals); see mesh.Gate.SetBlocked. For in-process partition tests.
func (a *Agent) SetBlocked(blocked func(peer.ID) bool) { a.gate.SetBlocked(blocked) }

// HTTPAddr returns the address the HTTP API listens on.
func (a *Agent) HTTPAddr() string { return a.httpLn.Addr().String() }

// Leave tells the mesh this node is leaving.
func (a *Agent) Leave(ctx context.Context) error {
	if a.gossip == nil {
		return nil
	}
	timeout := 3 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	return a.gossip.Leave(timeout)
}

// Wait returns when the agent hit a fatal error.
func (a *Agent) Wait() error { return <-a.fatal }

// Close stops everything this agent started. Idempotent.
func (a *Agent) Close() error {
	var errs []error
	a.closeOnce.Do(func() {
		a.cancel()
		if a.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			errs = append(errs, a.httpSrv.Shutdown(ctx))
			cancel()
		} else if a.httpLn != nil {
			errs = append(errs, a.httpLn.Close())
		}
		if a.mdns != nil {
			errs = append(errs, a.mdns.Close())
		}
		if a.gossip != nil {
			errs = append(errs, a.gossip.Close())
		}
		if a.transport != nil {
			errs = append(errs, a.transport.Shutdown())
		}
		if a.dht != nil {
			errs = append(errs, a.dht.Close())
		}
		if a.host != nil {
			errs = append(errs, a.host.Close())
		}
		a.wg.Wait()
		errs = append(errs, a.stopRaft(false))
	})
	return errors.Join(errs...)
}

// handlePair takes a joiner's pairing stream: the coordinator answers it,
// any other member relays it to the coordinator.
func (a *Agent) handlePair(s network.Stream) {
	defer s.Close()
	ctx, cancel := context.WithTimeout(a.ctx, 12*time.Minute)
	defer cancel()
	if a.isLeader() {
		srv := a.pairingServer()
		if err := srv.Serve(ctx, s, s.Conn().RemotePeer(), a.id.mesh.Name); err != nil {
			a.log.Debug("pairing ended", "peer", s.Conn().RemotePeer(), "err", err)
		}
		return
	}
	coord, ok := a.coordinator()
	if !ok {
		_ = mesh.WriteMsg(s, pairing.Challenge{Error: &pairing.Error{Code: pairing.CodeUnavailable, Message: "no coordinator reachable from " + a.id.mesh.Name}})
		return
	}
	if err := pairing.Relay(ctx, s, coord, a.gate); err != nil {
		a.log.Debug("pairing relay", "err", err)
		_ = mesh.WriteMsg(s, pairing.Challenge{Error: &pairing.Error{Code: pairing.CodeUnavailable, Message: "relay to coordinator failed: " + err.Error()}})
	}
}

// handleRelay is the coordinator's end of a relayed pairing.
func (a *Agent) handleRelay(s network.Stream) {
	defer s.Close()
	relay, ok := a.gate.Peer(s.Conn().RemotePeer())
	if !ok {
		s.Reset()
		return
	}
	if !a.isLeader() {
		_ = mesh.WriteMsg(s, pairing.Challenge{Error: &pairing.Error{Code: pairing.CodeUnavailable, Message: a.id.mesh.Name + " is not the coordinator (an election may be under way)"}})
		return
	}
	joiner, err := pairing.ReadRelayHeader(s)
	if err != nil {
		s.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, 12*time.Minute)
	defer cancel()
	if err := a.pairingServer().Serve(ctx, s, joiner, relay.Name); err != nil {
		a.log.Debug("pairing ended", "peer", joiner, "relay", relay.Name, "err", err)
	}
}

func (a *Agent) pairingServer() *pairing.Server {
	return &pairing.Server{Authority: &authority{a}, Now: time.Now, Logger: a.log}
}

// isLeader reports whether this node is the coordinator.
func (a *Agent) isLeader() bool {
	r := a.raft()
	return r != nil && r.State() == raft.Leader
}

// coordinator returns the coordinator's peer ID: from raft on a voter, from
// gossip (the alive member announcing it at the highest term) otherwise.
func (a *Agent) coordinator() (peer.ID, bool) {
	if r := a.raft(); r != nil {
		// A voter asks raft, trusting a leader only if heard from recently:
		// a follower keeps naming the last leader until its election timer
		// fires.
		_, leaderID := r.LeaderWithID()
		fresh := r.State() == raft.Leader || time.Since(r.LastContact()) < leaderContactFresh
		if id, err := peer.Decode(string(leaderID)); err == nil && leaderID != "" && fresh {
			return id, true
		}
		// No leader in our raft: maybe none exists (election, minority), or
		// we were removed from the voters without hearing of it and the
		// leader no longer talks to us. Gossip tells which.
	}
	return a.announcedCoordinator()
}

// announcedCoordinator is the alive member announcing itself coordinator in
// gossip at the highest term.
func (a *Agent) announcedCoordinator() (peer.ID, bool) {
	return announcedCoordinator(a.gossip.Members(), a.id.ca)
}

// announcedCoordinator picks, among members, the alive one announcing
// itself coordinator at the highest term with a claim the CA signed. An
// unsigned or forged announcement (any member can put anything in its own
// metadata, and gossip relays metadata for others) is ignored.
func announcedCoordinator(members []mesh.Member, authority *ca.CA) (peer.ID, bool) {
	var best mesh.Member
	found := false
	for _, m := range members {
		if m.State != "alive" || !m.Meta.Coordinator || found && m.Meta.Term <= best.Meta.Term {
			continue
		}
		if authority.VerifyCoordinator(m.PeerID.String(), m.Meta.Term, m.Meta.Claim) == nil {
			best, found = m, true
		}
	}
	return best.PeerID, found
}
