package tp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"
)

// gossipWait bounds every poll in these tests. It is generous because the
// race detector on two cores slows everything down; the polls return as
// soon as their condition holds.
const gossipWait = 20 * time.Second

// quietHostOptions are the options of a quiet libp2p test host listening
// on listen: TCP and Noise only, no relay, no NAT mapping, no metrics, no
// resource limits, no mDNS.
func quietHostOptions(listen string) []libp2p.Option {
	return []libp2p.Option{
		libp2p.ListenAddrStrings(listen),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	}
}

// newGossipTestHost starts a quiet libp2p host on 127.0.0.1.
func newGossipTestHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append(quietHostOptions("/ip4/127.0.0.1/tcp/0"), opts...)...)
	if err != nil {
		t.Fatalf("libp2p host: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func newGossipTestTransport(t *testing.T, h host.Host, auth Authorizer, mutate ...func(*TransportConfig)) *Transport {
	t.Helper()
	cfg := TransportConfig{Host: h, Auth: auth}
	for _, m := range mutate {
		m(&cfg)
	}
	tr, err := NewTransport(cfg)
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	t.Cleanup(func() { _ = tr.Shutdown() })
	return tr
}

// gossipAddress is the memberlist address of transport tr's host.
func gossipAddress(t *testing.T, tr *Transport) memberlist.Address {
	t.Helper()
	ip, port, err := tr.AdvertiseAddr()
	if err != nil {
		t.Fatalf("AdvertiseAddr: %v", err)
	}
	return memberlist.Address{Name: tr.Host().ID().String(), Addr: net.JoinHostPort(ip, strconv.Itoa(port))}
}

// waitForGossip polls cond until it returns nil or gossipWait passes.
func waitForGossip(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(gossipWait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, gossipWait, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not a wait
	}
}

// denyAuth refuses one peer and counts every decision.
type denyAuth struct {
	deny peer.ID

	mu    sync.Mutex
	calls map[peer.ID]int
}

func (a *denyAuth) Await(_ context.Context, p peer.ID) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.calls == nil {
		a.calls = make(map[peer.ID]int)
	}
	a.calls[p]++
	if p == a.deny {
		return fmt.Errorf("peer %s: %w", p, errTestDenied)
	}
	return nil
}

func (a *denyAuth) count(p peer.ID) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[p]
}

var errTestDenied = errors.New("denied by test authorizer")

// unusedTCPAddr returns a 127.0.0.1 address nothing listens on.
func unusedTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// silentTCPAddr returns a 127.0.0.1 address that accepts TCP connections and
// never answers, so a libp2p dial to it hangs until its context ends.
func silentTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

func randomPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestTransportConfigValidate(t *testing.T) {
	err := TransportConfig{QueueLen: -1, DialTimeout: -time.Second}.Validate()
	if err == nil {
		t.Fatal("Validate accepted a config without host and with negative limits")
	}
	for _, want := range []string{"host is required", "queue length", "dial timeout"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("Validate() = %q, missing %q", err, want)
		}
	}
	if _, err := NewTransport(TransportConfig{}); err == nil {
		t.Error("NewTransport accepted an empty config")
	}
}

func TestPacketRoundTrip(t *testing.T) {
	a := newGossipTestTransport(t, newGossipTestHost(t), nil)
	b := newGossipTestTransport(t, newGossipTestHost(t), nil)
	to := gossipAddress(t, b)

	want := [][]byte{[]byte("ping"), bytes.Repeat([]byte{7}, 1400), {}, []byte("last")}
	for _, p := range want {
		if _, err := a.WriteToAddress(p, to); err != nil {
			t.Fatalf("WriteToAddress: %v", err)
		}
	}
	// The empty packet is not delivered: memberlist never sends one and an
	// empty datagram carries nothing.
	for _, p := range [][]byte{want[0], want[1], want[3]} {
		select {
		case pkt := <-b.PacketCh():
			if !bytes.Equal(pkt.Buf, p) {
				t.Fatalf("got packet of %d bytes, want %d", len(pkt.Buf), len(p))
			}
			host, port, err := net.SplitHostPort(pkt.From.String())
			if err != nil || host != "127.0.0.1" || port == "0" {
				t.Errorf("Packet.From = %q, want 127.0.0.1:<port>", pkt.From)
			}
			if pkt.Timestamp.IsZero() {
				t.Error("Packet.Timestamp is zero")
			}
		case <-time.After(gossipWait):
			t.Fatalf("packet %q not delivered", p)
		}
	}

	// The name-less path finds the peer from the address it has seen.
	if _, err := a.WriteTo([]byte("by address"), to.Addr); err != nil {
		t.Fatalf("WriteTo known address: %v", err)
	}
	select {
	case pkt := <-b.PacketCh():
		if string(pkt.Buf) != "by address" {
			t.Fatalf("got %q", pkt.Buf)
		}
	case <-time.After(gossipWait):
		t.Fatal("WriteTo packet not delivered")
	}
}

func TestWriteToAddressErrors(t *testing.T) {
	a := newGossipTestTransport(t, newGossipTestHost(t), nil)

	tests := []struct {
		name  string
		write func() error
		check func(error) bool
	}{
		{
			name: "oversized packet",
			write: func() error {
				_, err := a.WriteToAddress(make([]byte, MaxFrameSize+1), memberlist.Address{Name: randomPeerID(t).String(), Addr: "127.0.0.1:1"})
				return err
			},
			check: func(err error) bool { return errors.Is(err, ErrFrameTooLarge) },
		},
		{
			name: "bad node name",
			write: func() error {
				_, err := a.WriteToAddress([]byte("x"), memberlist.Address{Name: "not-a-peer-id", Addr: "127.0.0.1:1"})
				return err
			},
			check: func(err error) bool { return err != nil },
		},
		{
			// failedRemote needs the bare type: a type assertion, not errors.As.
			name: "unknown address without name",
			write: func() error {
				_, err := a.WriteTo([]byte("x"), unusedTCPAddr(t))
				return err
			},
			check: func(err error) bool {
				op, ok := err.(*net.OpError)
				return ok && op.Op == "write" && op.Net == "tcp" && errors.Is(err, ErrUnknownGossipAddr)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.write(); !tc.check(err) {
				t.Errorf("got error %v (%T)", err, err)
			}
		})
	}
}

// TestWriteToUnreachableNeverBlocks checks the two properties memberlist's
// failure detector depends on: a write to a dead or hanging peer returns at
// once with a nil error, and a full queue drops instead of blocking.
func TestWriteToUnreachableNeverBlocks(t *testing.T) {
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"refused", unusedTCPAddr},
		{"silent", silentTCPAddr}, // the dial hangs until DialTimeout
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newGossipTestTransport(t, newGossipTestHost(t), nil, func(c *TransportConfig) {
				c.QueueLen = 4
				c.DialTimeout = time.Minute
			})
			to := memberlist.Address{Name: randomPeerID(t).String(), Addr: tc.addr(t)}
			start := time.Now()
			for i := 0; i < 100; i++ {
				if _, err := tr.WriteToAddress([]byte("ping"), to); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			// Generous bound: a blocking transport would wait for the
			// one-minute dial.
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("100 writes took %s", d)
			}
			// Shutdown cancels the hanging dial and waits for the writer.
			start = time.Now()
			if err := tr.Shutdown(); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("Shutdown took %s: the pending dial was not cancelled", d)
			}
			if _, err := tr.WriteToAddress([]byte("late"), to); !errors.Is(err, ErrTransportShutdown) {
				t.Errorf("write after Shutdown: %v, want ErrTransportShutdown", err)
			}
		})
	}
}

func TestDialUnreachableIsBareOpError(t *testing.T) {
	tr := newGossipTestTransport(t, newGossipTestHost(t), nil)
	tests := []struct {
		name    string
		addr    memberlist.Address
		timeout time.Duration
	}{
		{"refused", memberlist.Address{Name: randomPeerID(t).String(), Addr: unusedTCPAddr(t)}, time.Minute},
		{"silent", memberlist.Address{Name: randomPeerID(t).String(), Addr: silentTCPAddr(t)}, 300 * time.Millisecond},
		{"unknown address without name", memberlist.Address{Addr: unusedTCPAddr(t)}, time.Second},
		{"bad name", memberlist.Address{Name: "nope", Addr: unusedTCPAddr(t)}, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tr.DialAddressTimeout(tc.addr, tc.timeout)
			if err == nil {
				_ = conn.Close()
				t.Fatal("dial succeeded")
			}
			op, ok := err.(*net.OpError)
			if !ok {
				t.Fatalf("error %v is %T, want a bare *net.OpError", err, err)
			}
			if op.Op != "dial" || op.Net != "tcp" {
				t.Errorf("OpError Op=%q Net=%q, want dial/tcp", op.Op, op.Net)
			}
		})
	}
}

func TestStreamRoundTrip(t *testing.T) {
	a := newGossipTestTransport(t, newGossipTestHost(t), nil)
	b := newGossipTestTransport(t, newGossipTestHost(t), nil)

	conn, err := a.DialAddressTimeout(gossipAddress(t, b), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatalf("write: %v", err)
	}

	var in net.Conn
	select {
	case in = <-b.StreamCh():
	case <-time.After(gossipWait):
		t.Fatal("no inbound stream")
	}
	defer in.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	for _, c := range []net.Conn{conn, in} {
		for _, addr := range []net.Addr{c.LocalAddr(), c.RemoteAddr()} {
			if h, _, err := net.SplitHostPort(addr.String()); err != nil || h != "127.0.0.1" {
				t.Errorf("conn address %q, want 127.0.0.1:<port>", addr)
			}
		}
	}

	// memberlist relies on deadlines and checks net.Error.Timeout().
	if err := conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	_, err = conn.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline: %v, want a net.Error with Timeout()", err)
	}
}

// TestDialAfterRestart checks that a member that comes back with the same
// key on the same address is reachable at once: the failed dials while it
// was down must not leave it in the swarm's dial backoff.
func TestDialAfterRestart(t *testing.T) {
	a := newGossipTestTransport(t, newGossipTestHost(t), nil)
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	hb := newGossipTestHost(t, libp2p.Identity(priv))
	b := newGossipTestTransport(t, hb, nil)
	to := gossipAddress(t, b)
	dial := func() error {
		c, err := a.DialAddressTimeout(to, 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
	if err := dial(); err != nil {
		t.Fatalf("dial before restart: %v", err)
	}

	_ = b.Shutdown()
	_ = hb.Close()
	// Once a's old connection is gone, a dial really dials, is refused and
	// (without the transport's Clear) would put the peer in backoff.
	waitForGossip(t, "old connection closed", func() error {
		if c := a.Host().Network().Connectedness(hb.ID()); c == network.Connected {
			return errors.New("still connected")
		}
		return nil
	})
	if err := dial(); err == nil {
		t.Fatal("dial to a stopped peer succeeded")
	}

	_, port, _ := net.SplitHostPort(to.Addr)
	hb2, err := libp2p.New(append(quietHostOptions("/ip4/127.0.0.1/tcp/"+port), libp2p.Identity(priv))...)
	if err != nil {
		t.Fatalf("restart on port %s: %v", port, err)
	}
	t.Cleanup(func() { _ = hb2.Close() })
	b2 := newGossipTestTransport(t, hb2, nil)
	if err := dial(); err != nil {
		t.Fatalf("first dial after restart: %v", err)
	}
	select {
	case c := <-b2.StreamCh():
		_ = c.Close()
	case <-time.After(gossipWait):
		t.Fatal("restarted peer got no stream")
	}
}

func TestAuthorizerRefusesStreamsAndPackets(t *testing.T) {
	ha, hb := newGossipTestHost(t), newGossipTestHost(t)
	authB := &denyAuth{deny: ha.ID()}
	a := newGossipTestTransport(t, ha, nil)
	b := newGossipTestTransport(t, hb, authB)
	to := gossipAddress(t, b)

	t.Run("stream", func(t *testing.T) {
		conn, err := a.DialAddressTimeout(to, 5*time.Second)
		if err != nil {
			return // refused at negotiation: fine
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(gossipWait))
		_, _ = conn.Write([]byte("let me in"))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("read on a refused stream succeeded")
		}
		select {
		case c := <-b.StreamCh():
			_ = c.Close()
			t.Fatal("refused stream was handed to memberlist")
		default:
		}
	})

	t.Run("packets", func(t *testing.T) {
		// Each refused packet stream makes a's writer fail and restart, so
		// two decisions by b's authorizer prove at least one stream was
		// refused and its handler is done.
		before := authB.count(ha.ID())
		waitForGossip(t, "second refusal", func() error {
			if _, err := a.WriteToAddress([]byte("ping"), to); err != nil {
				return err
			}
			if n := authB.count(ha.ID()) - before; n < 2 {
				return fmt.Errorf("%d refusals", n)
			}
			return nil
		})
		select {
		case pkt := <-b.PacketCh():
			t.Fatalf("refused peer delivered a packet from %s", pkt.From)
		default:
		}
	})

	t.Run("outbound", func(t *testing.T) {
		_, err := b.DialAddressTimeout(gossipAddress(t, a), 5*time.Second)
		if !errors.Is(err, errTestDenied) {
			t.Fatalf("dial to a refused peer: %v, want errTestDenied", err)
		}
		if _, ok := err.(*net.OpError); !ok {
			t.Fatalf("error %T, want a bare *net.OpError", err)
		}
	})
}

func TestFinalAdvertiseAddr(t *testing.T) {
	h := newGossipTestHost(t)
	tr := newGossipTestTransport(t, h, nil)
	port := 0
	for _, a := range h.Network().ListenAddresses() {
		if _, p, ok := tcpIPPort(a); ok {
			port = p
		}
	}

	ip, got, err := tr.FinalAdvertiseAddr("", 7946)
	if err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) || got != port {
		t.Fatalf("FinalAdvertiseAddr = %v, %d, %v; want 127.0.0.1, %d", ip, got, err, port)
	}
	ip, got, err = tr.FinalAdvertiseAddr("10.1.2.3", 7946)
	if err != nil || !ip.Equal(net.IPv4(10, 1, 2, 3)) || got != port {
		t.Fatalf("FinalAdvertiseAddr(override) = %v, %d, %v; want 10.1.2.3, %d", ip, got, err, port)
	}
	if _, _, err := tr.FinalAdvertiseAddr("not-an-ip", 0); err == nil {
		t.Fatal("FinalAdvertiseAddr accepted a non-IP override")
	}
}

func TestPickAdvertiseAddr(t *testing.T) {
	m := func(s string) ma.Multiaddr {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ifaces := func(ips ...string) func() ([]net.IP, error) {
		return func() ([]net.IP, error) {
			var out []net.IP
			for _, s := range ips {
				out = append(out, net.ParseIP(s))
			}
			return out, nil
		}
	}
	tests := []struct {
		name     string
		listen   []ma.Multiaddr
		ifaces   func() ([]net.IP, error)
		wantIP   string
		wantPort int
		wantErr  error
	}{
		{"specific ip", []ma.Multiaddr{m("/ip4/192.168.1.5/tcp/4001")}, ifaces(), "192.168.1.5", 4001, nil},
		{"skip quic", []ma.Multiaddr{m("/ip4/192.168.1.5/udp/4001/quic-v1"), m("/ip4/192.168.1.5/tcp/4002")}, ifaces(), "192.168.1.5", 4002, nil},
		{"unspecified uses first non-loopback interface", []ma.Multiaddr{m("/ip4/0.0.0.0/tcp/4001")},
			ifaces("127.0.0.1", "169.254.1.1", "fe80::1", "2001:db8::1", "10.0.0.7", "10.0.0.8"), "10.0.0.7", 4001, nil},
		{"unspecified with loopback only", []ma.Multiaddr{m("/ip4/0.0.0.0/tcp/4001")}, ifaces("127.0.0.1", "::1"), "127.0.0.1", 4001, nil},
		{"unspecified ipv6", []ma.Multiaddr{m("/ip6/::/tcp/4001")}, ifaces("10.0.0.7", "2001:db8::1"), "2001:db8::1", 4001, nil},
		{"loopback loses to a later real address", []ma.Multiaddr{m("/ip4/127.0.0.1/tcp/1"), m("/ip4/10.0.0.9/tcp/2")}, ifaces(), "10.0.0.9", 2, nil},
		{"port zero skipped", []ma.Multiaddr{m("/ip4/10.0.0.9/tcp/0")}, ifaces(), "", 0, ErrNoAdvertiseAddr},
		{"no tcp", []ma.Multiaddr{m("/ip4/10.0.0.9/udp/1/quic-v1")}, ifaces(), "", 0, ErrNoAdvertiseAddr},
		{"nothing", nil, ifaces(), "", 0, ErrNoAdvertiseAddr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ip, port, err := pickAdvertiseAddr(tc.listen, tc.ifaces)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !ip.Equal(net.ParseIP(tc.wantIP)) || port != tc.wantPort {
				t.Fatalf("got %v, %d, %v; want %s, %d", ip, port, err, tc.wantIP, tc.wantPort)
			}
		})
	}
}

func TestJoinAddress(t *testing.T) {
	p, other := randomPeerID(t), randomPeerID(t)
	tests := []struct {
		name    string
		maddr   string
		want    string
		wantErr bool
	}{
		{"ipv4", "/ip4/127.0.0.1/tcp/4001", p.String() + "/127.0.0.1:4001", false},
		{"ipv6", "/ip6/2001:db8::1/tcp/4001", p.String() + "/[2001:db8::1]:4001", false},
		{"with own p2p suffix", "/ip4/10.0.0.1/tcp/9/p2p/" + p.String(), p.String() + "/10.0.0.1:9", false},
		{"other peer's suffix", "/ip4/10.0.0.1/tcp/9/p2p/" + other.String(), "", true},
		{"dns is refused", "/dns4/example.com/tcp/4001", "", true},
		{"quic is refused", "/ip4/10.0.0.1/udp/4001/quic-v1", "", true},
		{"unspecified", "/ip4/0.0.0.0/tcp/4001", "", true},
		{"port zero", "/ip4/10.0.0.1/tcp/0", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			maddr, err := ma.NewMultiaddr(tc.maddr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := JoinAddress(p, maddr)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("JoinAddress = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := JoinAddress("", ma.StringCast("/ip4/10.0.0.1/tcp/1")); err == nil {
		t.Error("JoinAddress accepted an empty peer ID")
	}
}

// gossipNode is one member of an in-process test mesh.
type gossipNode struct {
	host host.Host
	tr   *Transport
	ml   *memberlist.Memberlist
}

func (n *gossipNode) name() string { return n.host.ID().String() }

// joinAddr is the "<peerID>/<ip>:<port>" string others join n with.
func (n *gossipNode) joinAddr(t *testing.T) string {
	t.Helper()
	for _, a := range n.host.Addrs() {
		if s, err := JoinAddress(n.host.ID(), a); err == nil {
			return s
		}
	}
	t.Fatalf("host %s has no TCP address", n.host.ID())
	return ""
}

// stop closes n abruptly: no Leave, as a crash would.
func (n *gossipNode) stop() {
	_ = n.ml.Shutdown()
	_ = n.host.Close()
}

func (n *gossipNode) aliveNames() map[string]bool {
	out := make(map[string]bool)
	for _, m := range n.ml.Members() {
		out[m.Name] = true
	}
	return out
}

// memberlistLogOutput discards memberlist's chatter unless
// PALYRA_TEST_GOSSIP_LOG is set.
func memberlistLogOutput() io.Writer {
	if os.Getenv("PALYRA_TEST_GOSSIP_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

func startGossipNode(t *testing.T, auth Authorizer, mutate ...func(*memberlist.Config)) *gossipNode {
	t.Helper()
	h := newGossipTestHost(t)
	tr := newGossipTestTransport(t, h, auth)
	cfg := memberlist.DefaultLocalConfig()
	cfg.Name = h.ID().String()
	cfg.Transport = tr
	cfg.ProbeInterval = 200 * time.Millisecond
	cfg.ProbeTimeout = 100 * time.Millisecond
	cfg.SuspicionMult = 2
	cfg.GossipInterval = 50 * time.Millisecond
	cfg.PushPullInterval = time.Second
	cfg.LogOutput = memberlistLogOutput()
	for _, m := range mutate {
		m(cfg)
	}
	ml, err := memberlist.Create(cfg)
	if err != nil {
		t.Fatalf("memberlist.Create: %v", err)
	}
	n := &gossipNode{host: h, tr: tr, ml: ml}
	t.Cleanup(n.stop)
	return n
}

// stateRecorder is a memberlist.MergeDelegate that records the node states a
// joining node receives in its push/pull. memberlist keeps Dead and Left
// apart only internally (Node.State is never filled in elsewhere), so this
// is the one public way to tell them apart.
type stateRecorder struct {
	mu     sync.Mutex
	states map[string]memberlist.NodeStateType
}

func (r *stateRecorder) NotifyMerge(peers []*memberlist.Node) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = make(map[string]memberlist.NodeStateType, len(peers))
	for _, p := range peers {
		r.states[p.Name] = p.State
	}
	return nil
}

func (r *stateRecorder) snapshot() map[string]memberlist.NodeStateType {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states
}

func TestMemberlistOverLibp2p(t *testing.T) {
	nodes := []*gossipNode{startGossipNode(t, nil), startGossipNode(t, nil), startGossipNode(t, nil)}
	for _, n := range nodes[1:] {
		if _, err := n.ml.Join([]string{nodes[0].joinAddr(t)}); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	waitForGossip(t, "3 alive members everywhere", func() error {
		for _, n := range nodes {
			if got := n.aliveNames(); len(got) != 3 {
				return fmt.Errorf("%s sees %d members", n.name(), len(got))
			}
		}
		return nil
	})

	crashed, leaver, survivor := nodes[2], nodes[1], nodes[0]
	crashed.stop()
	waitForGossip(t, "crashed node declared dead", func() error {
		for _, n := range []*gossipNode{leaver, survivor} {
			if n.aliveNames()[crashed.name()] {
				return fmt.Errorf("%s still lists %s", n.name(), crashed.name())
			}
		}
		return nil
	})

	if err := leaver.ml.Leave(gossipWait); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	waitForGossip(t, "leaver gone", func() error {
		if survivor.aliveNames()[leaver.name()] {
			return errors.New("survivor still lists the leaver")
		}
		return nil
	})
	leaver.stop()

	// A newcomer's push/pull with the survivor shows the states the survivor
	// holds: the crashed node dead, the leaver left.
	rec := &stateRecorder{}
	observer := startGossipNode(t, nil, func(c *memberlist.Config) { c.Merge = rec })
	if _, err := observer.ml.Join([]string{survivor.joinAddr(t)}); err != nil {
		t.Fatalf("observer join: %v", err)
	}
	states := rec.snapshot()
	want := map[string]memberlist.NodeStateType{
		survivor.name(): memberlist.StateAlive,
		crashed.name():  memberlist.StateDead,
		leaver.name():   memberlist.StateLeft,
	}
	for name, st := range want {
		if got, ok := states[name]; !ok || got != st {
			// A dead node may already have been reaped.
			if name == crashed.name() && !ok {
				continue
			}
			t.Errorf("survivor's state for %s = %v (present %v), want %v", name, got, ok, st)
		}
	}
}

func TestMemberlistRefusedPeerCannotJoin(t *testing.T) {
	intruderHost := newGossipTestHost(t)
	auth := &denyAuth{deny: intruderHost.ID()}
	a := startGossipNode(t, auth)
	b := startGossipNode(t, auth)
	if _, err := b.ml.Join([]string{a.joinAddr(t)}); err != nil {
		t.Fatalf("join: %v", err)
	}

	tr := newGossipTestTransport(t, intruderHost, nil)
	cfg := memberlist.DefaultLocalConfig()
	cfg.Name = intruderHost.ID().String()
	cfg.Transport = tr
	cfg.LogOutput = memberlistLogOutput()
	intruder, err := memberlist.Create(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = intruder.Shutdown() })
	if n, err := intruder.Join([]string{a.joinAddr(t), b.joinAddr(t)}); err == nil || n != 0 {
		t.Fatalf("refused peer joined: contacted %d, err %v", n, err)
	}
	if auth.count(intruderHost.ID()) == 0 {
		t.Fatal("authorizer was never asked about the intruder")
	}
	waitForGossip(t, "a and b see each other", func() error {
		for _, n := range []*gossipNode{a, b} {
			names := n.aliveNames()
			if names[intruderHost.ID().String()] {
				return fmt.Errorf("%s lists the intruder", n.name())
			}
			if len(names) != 2 {
				return fmt.Errorf("%s sees %d members", n.name(), len(names))
			}
		}
		return nil
	})
}

// TestTransportShutdownLeavesNoGoroutines runs gossip between two nodes,
// shuts them down and checks that nothing of theirs keeps running.
func TestTransportShutdownLeavesNoGoroutines(t *testing.T) {
	// Let libp2p start its process-wide goroutines before the snapshot.
	warm := newGossipTestHost(t)
	_ = warm.Close()
	silent := silentTCPAddr(t) // its accept loop outlives the check
	ignore := goleak.IgnoreCurrent()

	func() {
		a := startGossipNode(t, nil)
		b := startGossipNode(t, nil)
		if _, err := b.ml.Join([]string{a.joinAddr(t)}); err != nil {
			t.Fatalf("join: %v", err)
		}
		waitForGossip(t, "2 members", func() error {
			if len(a.aliveNames()) != 2 || len(b.aliveNames()) != 2 {
				return errors.New("not converged")
			}
			return nil
		})
		// A pending hanging dial must be cancelled too.
		if _, err := a.tr.WriteToAddress([]byte("x"), memberlist.Address{Name: randomPeerID(t).String(), Addr: silent}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []*gossipNode{a, b} {
			if err := n.tr.Shutdown(); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if err := n.tr.Shutdown(); err != nil { // idempotent
				t.Fatalf("second Shutdown: %v", err)
			}
			n.tr.mu.Lock()
			left := len(n.tr.writers) + len(n.tr.streams)
			n.tr.mu.Unlock()
			if left != 0 {
				t.Errorf("%d writers or streams left after Shutdown", left)
			}
			n.stop()
		}
	}()
	goleak.VerifyNone(t, ignore)
}
