package mesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Gossip protocol IDs. memberlist's two channels map onto two libp2p
// protocols: best-effort packets (UDP in memberlist's own transport) and
// reliable streams (TCP there: push/pull, fallback ping, joins).
const (
	// PacketProtocol carries memberlist packets as length-prefixed frames on
	// one long-lived stream per sending peer (see frame.go).
	PacketProtocol = "/palyra/gossip/packet/1.0.0"
	// StreamProtocol carries one memberlist stream connection per libp2p
	// stream.
	StreamProtocol = "/palyra/gossip/stream/1.0.0"
)

// Transport defaults and internal limits.
const (
	// DefaultQueueLen is the per-peer packet queue length when
	// TransportConfig.QueueLen is zero.
	DefaultQueueLen = 256
	// DefaultDialTimeout bounds connecting to a peer when
	// TransportConfig.DialTimeout is zero.
	DefaultDialTimeout = 2 * time.Second

	// authTimeout bounds Authorizer.Await on both sides of a gossip stream.
	authTimeout = 2 * time.Second
	// writerIdleTimeout closes a peer's packet stream after this long
	// without packets, so peers that left the mesh do not pin a goroutine
	// and a stream each. memberlist probes every live member far more
	// often than this.
	writerIdleTimeout = 2 * time.Minute
	// maxAddrBook caps the ip:port → peer table used by WriteTo and
	// DialTimeout, so addresses seen from many short-lived peers cannot grow
	// it without bound.
	maxAddrBook = 4096
)

// Errors returned by the gossip transport. memberlist sees the unreachable
// cases as a bare *net.OpError whose Err is one of these (see WriteTo).
var (
	// ErrTransportShutdown is returned once Shutdown has been called.
	ErrTransportShutdown = errors.New("gossip transport shut down")
	// ErrUnknownGossipAddr means an ip:port given without a node name
	// belongs to no peer the transport or the peerstore knows.
	ErrUnknownGossipAddr = errors.New("no peer known at gossip address")
	// ErrNoAdvertiseAddr means the libp2p host has no TCP listen address
	// that other members could reach.
	ErrNoAdvertiseAddr = errors.New("no tcp listen address to advertise")
)

// Authorizer decides whether a peer may exchange gossip. Await returns nil
// when p may gossip and an error otherwise; it may block up to ctx's
// deadline while an authentication handshake with p completes. It must be
// safe for concurrent use: the transport calls it from every stream handler
// and every dial.
type Authorizer interface {
	Await(ctx context.Context, p peer.ID) error
}

// TransportConfig configures a Transport.
type TransportConfig struct {
	// Host is the libp2p host gossip runs over. It must already be
	// listening on at least one TCP address; the transport neither starts
	// nor closes it.
	Host host.Host
	// Auth gates every gossip stream, inbound and outbound. Nil allows
	// every peer and is meant for tests only.
	Auth Authorizer
	// Logger receives the transport's logs. Nil discards them.
	Logger *slog.Logger
	// QueueLen is the per-peer outbound packet queue length; when a queue is
	// full further packets are dropped, as a full UDP socket buffer would.
	// Zero means DefaultQueueLen.
	QueueLen int
	// DialTimeout bounds connecting to a peer. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
}

// Validate reports every problem with the configuration at once.
func (c TransportConfig) Validate() error {
	var errs []error
	if c.Host == nil {
		errs = append(errs, errors.New("host is required"))
	}
	if c.QueueLen < 0 {
		errs = append(errs, fmt.Errorf("queue length %d is negative", c.QueueLen))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("dial timeout %s is negative", c.DialTimeout))
	}
	return errors.Join(errs...)
}

// Transport is a memberlist.NodeAwareTransport over libp2p, so gossip shares
// the libp2p port, its encryption and the mesh's authentication gate.
//
// memberlist node names are libp2p peer ID strings; the addresses memberlist
// sees are the ip:port of each member's TCP listen address, used only as
// dial hints and for logging.
//
// Goroutines: one writer per peer with queued packets (started by
// WriteToAddress, ended by a dial failure, a write failure, idleness or
// Shutdown) and the stream handlers libp2p runs for inbound streams. Every
// one is counted in wg; Shutdown waits for all of them. Lock order: mu is a
// leaf lock; nothing that can block is done while holding it.
type Transport struct {
	cfg TransportConfig // with defaults applied; read-only after NewTransport
	log *slog.Logger

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	// ctx is cancelled by Shutdown: it aborts dials and Await calls, and its
	// Done channel is the shutdown signal every delivery selects on.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	writers  map[peer.ID]*peerWriter
	streams  map[network.Stream]struct{} // every open stream we own or handed to memberlist
	addrBook map[string]peer.ID          // "ip:port" → peer, for the name-less WriteTo and DialTimeout

	// pending counts packets queued and not yet written or dropped (Flush).
	pending atomic.Int64
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// peerWriter owns the outbound packet stream to one peer.
type peerWriter struct {
	peer  peer.ID
	hint  string // memberlist's ip:port for the peer, a dial hint
	queue chan []byte
}

// NewTransport builds a transport on cfg.Host and registers the handlers for
// PacketProtocol and StreamProtocol. It starts no goroutine of its own until
// the first packet is written. The caller hands it to memberlist in
// Config.Transport, and memberlist calls Shutdown.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gossip transport config: %w", err)
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg: cfg,
		log: logger.With("component", "gossip-transport"),
		// Unbuffered like memberlist's NetTransport: a slow consumer pushes
		// back on the sender's stream, whose queue then drops.
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		ctx:      ctx,
		cancel:   cancel,
		writers:  make(map[peer.ID]*peerWriter),
		streams:  make(map[network.Stream]struct{}),
		addrBook: make(map[string]peer.ID),
	}
	t.cfg.Host.SetStreamHandler(PacketProtocol, t.handlePacketStream)
	t.cfg.Host.SetStreamHandler(StreamProtocol, t.handleStream)
	return t, nil
}

// Host returns the libp2p host the transport runs on.
func (t *Transport) Host() host.Host { return t.cfg.Host }

// FinalAdvertiseAddr returns the address memberlist advertises for this
// node: the first reachable TCP listen address of the libp2p host (see
// AdvertiseAddr). A non-empty ip overrides the IP; port is ignored because
// gossip arrives on the libp2p port and nowhere else (memberlist passes its
// BindPort default, 7946, which nothing listens on).
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	advIP, advPort, err := t.advertise()
	if err != nil {
		return nil, 0, err
	}
	if ip != "" {
		advIP = net.ParseIP(ip)
		if advIP == nil {
			return nil, 0, fmt.Errorf("advertise address %q is not an ip", ip)
		}
	}
	return advIP, advPort, nil
}

// AdvertiseAddr returns the ip and port this node advertises to the mesh:
// the first TCP listen address with a specific, non-loopback IP; for a host
// listening on an unspecified IP (0.0.0.0 or ::), the first non-loopback
// interface address of that family; loopback only when nothing else exists.
func (t *Transport) AdvertiseAddr() (string, int, error) {
	ip, port, err := t.advertise()
	if err != nil {
		return "", 0, err
	}
	return ip.String(), port, nil
}

func (t *Transport) advertise() (net.IP, int, error) {
	return pickAdvertiseAddr(t.cfg.Host.Network().ListenAddresses(), interfaceIPs)
}

// interfaceIPs lists the IPs of the machine's interfaces.
func interfaceIPs() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	ips := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	return ips, nil
}

// pickAdvertiseAddr chooses the address to advertise among the host's TCP
// listen addresses, expanding an unspecified IP into the interface IPs of
// the same family. Link-local IPs are skipped: other members could not dial
// them without a zone. The first non-loopback candidate wins; loopback is
// the last resort (a single-machine test mesh).
func pickAdvertiseAddr(listen []ma.Multiaddr, ifaces func() ([]net.IP, error)) (net.IP, int, error) {
	var loopIP net.IP
	loopPort := 0
	var ifaceIPs []net.IP
	ifacesLoaded := false
	for _, a := range listen {
		ip, port, ok := tcpIPPort(a)
		if !ok || port == 0 {
			continue
		}
		candidates := []net.IP{ip}
		if ip.IsUnspecified() {
			if !ifacesLoaded {
				var err error
				if ifaceIPs, err = ifaces(); err != nil {
					return nil, 0, err
				}
				ifacesLoaded = true
			}
			candidates = candidates[:0]
			for _, c := range ifaceIPs {
				if (c.To4() != nil) == (ip.To4() != nil) {
					candidates = append(candidates, c)
				}
			}
		}
		for _, c := range candidates {
			switch {
			case c.IsUnspecified(), c.IsLinkLocalUnicast(), c.IsMulticast():
			case c.IsLoopback():
				if loopIP == nil {
					loopIP, loopPort = c, port
				}
			default:
				return c, port, nil
			}
		}
	}
	if loopIP != nil {
		return loopIP, loopPort, nil
	}
	return nil, 0, ErrNoAdvertiseAddr
}

// JoinAddress returns the string memberlist's Join needs to reach peer p at
// the TCP multiaddr maddr: "<peerID>/<ip>:<port>". The peer ID prefix is
// what keeps Join from resolving the address: a bare name would go to
// net.LookupIP and send a DNS query off the machine.
func JoinAddress(p peer.ID, maddr ma.Multiaddr) (string, error) {
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("join address: %w", err)
	}
	if id, err := peer.IDFromP2PAddr(maddr); err == nil && id != p {
		return "", fmt.Errorf("join address %s: names peer %s, not %s", maddr, id, p)
	}
	ip, port, ok := tcpIPPort(maddr)
	if !ok {
		return "", fmt.Errorf("join address %s: not an /ip4 or /ip6 tcp address", maddr)
	}
	if ip.IsUnspecified() || port == 0 {
		return "", fmt.Errorf("join address %s: unspecified ip or port", maddr)
	}
	return p.String() + "/" + net.JoinHostPort(ip.String(), strconv.Itoa(port)), nil
}

// tcpIPPort extracts ip and port from /ip4|ip6/<ip>/tcp/<port>, optionally
// followed by /p2p/<id>. Anything else (dns, quic, circuits) is refused:
// memberlist's addresses must be literal ip:port.
func tcpIPPort(maddr ma.Multiaddr) (net.IP, int, bool) {
	if len(maddr) < 2 || len(maddr) > 3 {
		return nil, 0, false
	}
	var ip net.IP
	switch maddr[0].Code() {
	case ma.P_IP4, ma.P_IP6:
		ip = net.IP(maddr[0].RawValue())
	default:
		return nil, 0, false
	}
	if maddr[1].Code() != ma.P_TCP || len(maddr[1].RawValue()) != 2 {
		return nil, 0, false
	}
	if len(maddr) == 3 && maddr[2].Code() != ma.P_P2P {
		return nil, 0, false
	}
	return ip, int(binary.BigEndian.Uint16(maddr[1].RawValue())), true
}

// tcpAddrOf converts a connection multiaddr to the *net.TCPAddr memberlist
// expects in Packet.From and LocalAddr/RemoteAddr: memberlist falls back to
// From.String() as the ping reply address, so it must read "ip:port".
func tcpAddrOf(maddr ma.Multiaddr) *net.TCPAddr {
	ip, port, ok := tcpIPPort(maddr)
	if !ok {
		return &net.TCPAddr{IP: net.IPv4zero}
	}
	return &net.TCPAddr{IP: ip, Port: port}
}

// WriteToAddress queues b for the peer named addr.Name and returns at once
// with a nil error, whether or not the peer is reachable.
//
// Why it never blocks and never fails for an unreachable peer: memberlist
// calls it from its probe and gossip loops, so a blocking write would stall
// failure detection for every member; and memberlist's failedRemote only
// recognises a bare *net.OpError, so a wrapped dial error would leave a dead
// node undetected. Packets are best effort, as UDP is: memberlist's acks and
// suspicion decide liveness. The per-peer writer dials, and drops its queue
// when the dial fails.
func (t *Transport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	if addr.Name == "" {
		return t.WriteTo(b, addr.Addr)
	}
	p, err := peer.Decode(addr.Name)
	if err != nil {
		return time.Time{}, fmt.Errorf("gossip node name %q: %w", addr.Name, err)
	}
	return t.enqueue(p, addr.Addr, b)
}

// WriteTo is memberlist's name-less packet path (old protocol versions, a
// ping reply without a source node). It maps addr (ip:port) to a peer from
// the addresses the transport has seen and the peerstore. An unknown
// address yields a bare *net.OpError, the one error type memberlist's
// failedRemote treats as an unreachable member.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	p, ok := t.lookupAddr(addr)
	if !ok {
		return time.Time{}, opError("write", addr, ErrUnknownGossipAddr)
	}
	return t.enqueue(p, addr, b)
}

func (t *Transport) enqueue(p peer.ID, hint string, b []byte) (time.Time, error) {
	if len(b) > MaxFrameSize {
		return time.Time{}, fmt.Errorf("gossip packet to %s: %d bytes: %w", p, len(b), ErrFrameTooLarge)
	}
	// memberlist may reuse b once we return.
	buf := append([]byte(nil), b...)

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return time.Time{}, ErrTransportShutdown
	}
	t.rememberLocked(hint, p)
	w, ok := t.writers[p]
	if !ok {
		w = &peerWriter{peer: p, hint: hint, queue: make(chan []byte, t.cfg.QueueLen)}
		t.writers[p] = w
		t.wg.Add(1)
		go t.runWriter(w)
	}
	// Sending under mu is what makes retireWriter safe: once a writer is out
	// of the map nobody can queue to it. The send never blocks.
	queued := true
	select {
	case w.queue <- buf:
		t.pending.Add(1)
	default:
		// Full queue: drop, as a full UDP buffer would. Blocking here would
		// stall memberlist's probe loop behind one slow peer.
		queued = false
	}
	t.mu.Unlock()
	if !queued {
		t.log.Debug("gossip packet dropped: queue full", "peer", p)
	}
	return time.Now(), nil
}

// runWriter dials p's packet stream and feeds it frames from the queue until
// an error, idleness or Shutdown.
func (t *Transport) runWriter(w *peerWriter) {
	defer t.wg.Done()
	defer t.retireWriter(w)

	s, err := t.openStream(t.ctx, w.peer, w.hint, PacketProtocol, t.cfg.DialTimeout)
	if err != nil {
		t.log.Debug("gossip packet stream: dial failed", "peer", w.peer, "err", err)
		return
	}
	defer t.untrackStream(s)
	// We never read from a packet stream; tell the remote so.
	_ = s.CloseRead()

	idle := time.NewTimer(writerIdleTimeout)
	defer idle.Stop()
	var frame []byte
	for {
		select {
		case <-t.ctx.Done():
			_ = s.Reset()
			return
		case <-idle.C:
			_ = s.Close()
			return
		case b := <-w.queue:
			frame, err = appendFrame(frame[:0], b)
			if err != nil { // enqueue checked the size; keep the writer alive regardless
				t.pending.Add(-1)
				continue
			}
			// A peer that stops reading fills the yamux window; the
			// deadline turns that into an error instead of a stuck writer.
			_ = s.SetWriteDeadline(time.Now().Add(t.cfg.DialTimeout))
			_, err := s.Write(frame)
			t.pending.Add(-1)
			if err != nil {
				t.log.Debug("gossip packet stream: write failed", "peer", w.peer, "err", err)
				_ = s.Reset()
				return
			}
			idle.Reset(writerIdleTimeout)
		}
	}
}

// retireWriter removes w from the writer table and drops whatever is still
// queued. The next packet for the peer starts a fresh writer and dial,
// which is how a member that comes back becomes reachable again.
func (t *Transport) retireWriter(w *peerWriter) {
	t.mu.Lock()
	if t.writers[w.peer] == w {
		delete(t.writers, w.peer)
	}
	t.mu.Unlock()
	for {
		select {
		case <-w.queue:
			t.pending.Add(-1)
		default:
			return
		}
	}
}

// Flush waits until every queued packet was written or dropped, or ctx
// ends. A node that leaves calls it so its goodbye reaches the others
// before the transport shuts down.
func (t *Transport) Flush(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for t.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// DialAddressTimeout opens a reliable stream to the peer named addr.Name
// (or, without a name, the peer known at addr.Addr) and returns it as a
// net.Conn. A failure is a bare *net.OpError with Op "dial", so memberlist
// can tell an unreachable member from a local problem.
func (t *Transport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	var p peer.ID
	if addr.Name == "" {
		var ok bool
		if p, ok = t.lookupAddr(addr.Addr); !ok {
			return nil, opError("dial", addr.Addr, ErrUnknownGossipAddr)
		}
	} else {
		var err error
		if p, err = peer.Decode(addr.Name); err != nil {
			return nil, opError("dial", addr.Addr, fmt.Errorf("gossip node name %q: %w", addr.Name, err))
		}
	}
	if timeout <= 0 {
		timeout = t.cfg.DialTimeout
	}
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	s, err := t.openStream(ctx, p, addr.Addr, StreamProtocol, min(timeout, t.cfg.DialTimeout))
	if err != nil {
		return nil, opError("dial", addr.Addr, err)
	}
	return t.newStreamConn(s), nil
}

// DialTimeout is memberlist's name-less stream dial; see DialAddressTimeout.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// openStream connects to p (teaching the peerstore memberlist's address for
// it first), waits for the authorizer, and opens a stream on proto. The
// returned stream is tracked, so Shutdown resets it.
func (t *Transport) openStream(ctx context.Context, p peer.ID, hint string, proto protocol.ID, dialTimeout time.Duration) (network.Stream, error) {
	if p == t.cfg.Host.ID() {
		return nil, errors.New("gossip to self")
	}
	t.addHint(p, hint)

	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := t.cfg.Host.Connect(dctx, peer.AddrInfo{ID: p}); err != nil {
		// A failed dial puts the peer in the swarm's backoff, which would
		// keep refusing a member that restarts on the same address.
		t.clearBackoff(p)
		return nil, fmt.Errorf("connect %s: %w", p, err)
	}
	if err := t.authorize(ctx, p); err != nil {
		return nil, err
	}
	// A fresh bound for opening the stream: the authorizer may have used
	// most of the connect budget on its handshake.
	sctx, cancelStream := context.WithTimeout(ctx, dialTimeout)
	defer cancelStream()
	s, err := t.cfg.Host.NewStream(sctx, p, proto)
	if err != nil {
		t.clearBackoff(p)
		return nil, fmt.Errorf("open %s stream to %s: %w", proto, p, err)
	}
	if !t.trackStream(s) {
		_ = s.Reset()
		return nil, ErrTransportShutdown
	}
	return s, nil
}

// addHint adds memberlist's ip:port for p to the peerstore as a TCP
// multiaddr. It is added even when the peerstore knows other addresses:
// memberlist's address is the one the member itself advertised most
// recently, so it is also the right one after a restart on a new port.
func (t *Transport) addHint(p peer.ID, hint string) {
	tcp, ok := parseIPPort(hint)
	if !ok || tcp.IP.IsUnspecified() || tcp.Port == 0 {
		return
	}
	maddr, err := manet.FromNetAddr(tcp)
	if err != nil {
		return
	}
	t.cfg.Host.Peerstore().AddAddr(p, maddr, peerstore.AddressTTL)
}

// parseIPPort parses a literal "ip:port". It never resolves a name:
// net.ResolveTCPAddr would, and a DNS query must never leave the machine
// because of a gossip address.
func parseIPPort(addr string) (*net.TCPAddr, bool) {
	h, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, false
	}
	ip := net.ParseIP(h)
	port, err := strconv.ParseUint(ps, 10, 16)
	if ip == nil || err != nil {
		return nil, false
	}
	return &net.TCPAddr{IP: ip, Port: int(port)}, true
}

func (t *Transport) clearBackoff(p peer.ID) {
	if sw, ok := t.cfg.Host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}

// authorize runs the Authorizer with its own deadline inside ctx.
func (t *Transport) authorize(ctx context.Context, p peer.ID) error {
	if t.cfg.Auth == nil {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, authTimeout)
	defer cancel()
	if err := t.cfg.Auth.Await(actx, p); err != nil {
		return fmt.Errorf("authorize %s: %w", p, err)
	}
	return nil
}

// handlePacketStream reads frames from a peer's packet stream and delivers
// them to memberlist until the stream ends or the transport shuts down.
func (t *Transport) handlePacketStream(s network.Stream) {
	if !t.enterHandler(s) {
		return
	}
	defer t.wg.Done()
	defer t.untrackStream(s)

	remote := s.Conn().RemotePeer()
	if err := t.authorize(t.ctx, remote); err != nil {
		t.log.Debug("gossip packet stream refused", "peer", remote, "err", err)
		_ = s.Reset()
		return
	}
	from := tcpAddrOf(s.Conn().RemoteMultiaddr())
	r := bufio.NewReader(s)
	for {
		buf, err := readFrame(r, MaxFrameSize)
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = s.Close()
			} else {
				_ = s.Reset()
			}
			return
		}
		if len(buf) == 0 {
			continue
		}
		pkt := &memberlist.Packet{Buf: buf, From: from, Timestamp: time.Now()}
		// memberlist shuts the transport down before its packet loop stops
		// reading, so this send must also watch our own shutdown signal.
		select {
		case t.packetCh <- pkt:
		case <-t.ctx.Done():
			_ = s.Reset()
			return
		}
	}
}

// handleStream hands an authorised inbound stream to memberlist.
func (t *Transport) handleStream(s network.Stream) {
	if !t.enterHandler(s) {
		return
	}
	defer t.wg.Done()

	remote := s.Conn().RemotePeer()
	if err := t.authorize(t.ctx, remote); err != nil {
		t.log.Debug("gossip stream refused", "peer", remote, "err", err)
		t.untrackStream(s)
		_ = s.Reset()
		return
	}
	conn := t.newStreamConn(s)
	select {
	case t.streamCh <- conn:
	case <-t.ctx.Done():
		_ = conn.Close()
	}
}

// enterHandler registers a running handler and its stream, or resets the
// stream if Shutdown has begun. Adding to wg under mu, only while not
// closed, is what makes Shutdown's wg.Wait final.
func (t *Transport) enterHandler(s network.Stream) bool {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = s.Reset()
		return false
	}
	t.wg.Add(1)
	t.streams[s] = struct{}{}
	t.rememberLocked(tcpAddrOf(s.Conn().RemoteMultiaddr()).String(), s.Conn().RemotePeer())
	t.mu.Unlock()
	return true
}

func (t *Transport) trackStream(s network.Stream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.streams[s] = struct{}{}
	return true
}

func (t *Transport) untrackStream(s network.Stream) {
	t.mu.Lock()
	delete(t.streams, s)
	t.mu.Unlock()
}

// rememberLocked records that peer p is reachable at the literal ip:port
// addr. Callers hold mu.
func (t *Transport) rememberLocked(addr string, p peer.ID) {
	if _, ok := parseIPPort(addr); !ok {
		return
	}
	if old, ok := t.addrBook[addr]; ok && old == p {
		return
	}
	if len(t.addrBook) >= maxAddrBook {
		for k := range t.addrBook { // evict an arbitrary entry
			delete(t.addrBook, k)
			break
		}
	}
	t.addrBook[addr] = p
}

// lookupAddr maps a literal ip:port to a peer: first from what memberlist
// and inbound streams told us, then from the peerstore.
func (t *Transport) lookupAddr(addr string) (peer.ID, bool) {
	t.mu.Lock()
	p, ok := t.addrBook[addr]
	t.mu.Unlock()
	if ok {
		return p, true
	}
	ps := t.cfg.Host.Peerstore()
	for _, id := range ps.PeersWithAddrs() {
		for _, a := range ps.Addrs(id) {
			ip, port, ok := tcpIPPort(a)
			if ok && net.JoinHostPort(ip.String(), strconv.Itoa(port)) == addr {
				t.mu.Lock()
				t.rememberLocked(addr, id)
				t.mu.Unlock()
				return id, true
			}
		}
	}
	return "", false
}

// opError builds the bare *net.OpError memberlist's failedRemote looks for
// (Net "tcp", Op "dial" or "write"). It must not be wrapped: failedRemote
// uses a type switch, not errors.As.
func opError(op, addr string, err error) *net.OpError {
	e := &net.OpError{Op: op, Net: "tcp", Err: err}
	if tcp, ok := parseIPPort(addr); ok {
		e.Addr = tcp
	}
	return e
}

// PacketCh returns the channel of inbound packets; memberlist reads it.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh returns the channel of inbound, authorised stream connections;
// memberlist reads it and owns (closes) each connection.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown removes the protocol handlers, cancels pending dials and
// authorisations, resets every open gossip stream and waits for every
// goroutine the transport started. It is idempotent; memberlist calls it
// from its own Shutdown, before its packet loop stops.
func (t *Transport) Shutdown() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.wg.Wait()
		return nil
	}
	t.closed = true
	streams := make([]network.Stream, 0, len(t.streams))
	for s := range t.streams {
		streams = append(streams, s)
	}
	clear(t.streams)
	t.mu.Unlock()

	t.cfg.Host.RemoveStreamHandler(PacketProtocol)
	t.cfg.Host.RemoveStreamHandler(StreamProtocol)
	t.cancel()
	for _, s := range streams {
		_ = s.Reset()
	}
	t.wg.Wait()
	return nil
}

// streamConn is a libp2p stream seen as the net.Conn memberlist expects.
// Deadlines go to the stream: yamux reports an expired one as a net.Error
// whose Timeout() is true (not os.ErrDeadlineExceeded), which is what
// memberlist checks.
type streamConn struct {
	network.Stream
	t      *Transport
	local  *net.TCPAddr
	remote *net.TCPAddr
	once   sync.Once
}

var _ net.Conn = (*streamConn)(nil)

func (t *Transport) newStreamConn(s network.Stream) *streamConn {
	return &streamConn{
		Stream: s,
		t:      t,
		local:  tcpAddrOf(s.Conn().LocalMultiaddr()),
		remote: tcpAddrOf(s.Conn().RemoteMultiaddr()),
	}
}

// Close closes the stream both ways and forgets it.
func (c *streamConn) Close() error {
	var err error
	c.once.Do(func() {
		c.t.untrackStream(c.Stream)
		err = c.Stream.Close()
	})
	return err
}

// LocalAddr is the local ip:port of the underlying libp2p connection.
func (c *streamConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the remote ip:port of the underlying libp2p connection.
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }
