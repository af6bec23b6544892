package mesh_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/goleak"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/mesh"
)

// gateWait bounds every handshake, stream and poll of these tests. It is
// generous for the race detector on two cores; nothing waits for it when
// things work.
const gateWait = 20 * time.Second

// Protocols of the test handlers: pairProto is open to anyone (as pairing
// is), echoProto needs an authenticated peer.
const (
	pairProto protocol.ID = "/palyra/test-pair/1.0.0"
	echoProto protocol.ID = "/palyra/test/1.0.0"
)

var warmLibp2p sync.Once

// checkGateLeaks fails t if goroutines started after the call outlive t's
// cleanups. Register it before anything else, so it runs last.
func checkGateLeaks(t *testing.T) {
	t.Helper()
	// libp2p starts a few process-wide goroutines with its first host: let
	// them start before the snapshot.
	warmLibp2p.Do(func() {
		key, _ := newKey(t)
		h, err := mesh.NewHost(key, []string{"/ip4/127.0.0.1/tcp/0"}, mesh.NewGate(mesh.GateConfig{}))
		if err != nil {
			t.Fatalf("warm-up host: %v", err)
		}
		_ = h.Close()
	})
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

func newKey(t *testing.T) (crypto.PrivKey, ed25519.PublicKey) {
	t.Helper()
	key, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	raw, err := pub.Raw()
	if err != nil {
		t.Fatalf("raw public key: %v", err)
	}
	return key, ed25519.PublicKey(raw)
}

func newCA(t *testing.T, meshID string) *ca.CA {
	t.Helper()
	authority, err := ca.New(meshID, time.Now(), 365*24*time.Hour, nil)
	if err != nil {
		t.Fatalf("new CA: %v", err)
	}
	return authority
}

func issue(t *testing.T, authority *ca.CA, pub ed25519.PublicKey, name string, notBefore time.Time, lifetime time.Duration) *ca.Certificate {
	t.Helper()
	cert, err := authority.Issue(notBefore, pub, name, []string{"node"}, lifetime, nil)
	if err != nil {
		t.Fatalf("issue %s: %v", name, err)
	}
	return cert
}

// gateNode is a libp2p host behind a gate, serving echoProto and pairProto.
type gateNode struct {
	id      peer.ID
	host    host.Host
	gate    *mesh.Gate
	cert    *ca.Certificate // issued by member; nil otherwise
	handled atomic.Int32    // streams that reached a test handler
}

// startGateNode builds a loopback host with key behind a gate of cfg.
func startGateNode(t *testing.T, key crypto.PrivKey, cfg mesh.GateConfig) *gateNode {
	t.Helper()
	n := &gateNode{gate: mesh.NewGate(cfg)}
	h, err := mesh.NewHost(key, []string{"/ip4/127.0.0.1/tcp/0"}, n.gate)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	n.id, n.host = h.ID(), h
	serve := func(s network.Stream) {
		n.handled.Add(1)
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(gateWait))
		_, _ = io.Copy(s, s)
	}
	h.SetStreamHandler(echoProto, serve)
	h.SetStreamHandler(pairProto, serve)
	return n
}

// member starts a node of authority's mesh named name.
func member(t *testing.T, authority *ca.CA, name string) *gateNode {
	t.Helper()
	key, pub := newKey(t)
	cert := issue(t, authority, pub, name, time.Now(), 24*time.Hour)
	n := startGateNode(t, key, mesh.GateConfig{CA: authority, Cert: cert})
	n.cert = cert
	return n
}

// connect dials b from a.
func connect(t *testing.T, a, b *gateNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gateWait)
	defer cancel()
	if err := a.host.Connect(ctx, peer.AddrInfo{ID: b.id, Addrs: b.host.Addrs()}); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

func await(t *testing.T, from, to *gateNode) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gateWait)
	defer cancel()
	return from.gate.Await(ctx, to.id)
}

// echo opens proto from a to b, sends a line and expects it back.
func echo(from, to *gateNode, proto protocol.ID) error {
	ctx, cancel := context.WithTimeout(context.Background(), gateWait)
	defer cancel()
	s, err := from.host.NewStream(ctx, to.id, proto)
	if err != nil {
		return fmt.Errorf("open %s: %w", proto, err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(gateWait))
	const msg = "hello over the gate"
	if _, err := s.Write([]byte(msg)); err != nil {
		return fmt.Errorf("write %s: %w", proto, err)
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("close write %s: %w", proto, err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		return fmt.Errorf("read %s: %w", proto, err)
	}
	if string(got) != msg {
		return fmt.Errorf("echo on %s = %q, want %q", proto, got, msg)
	}
	return nil
}

// waitFor polls cond until it returns nil or gateWait passes.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(gateWait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, gateWait, err)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait
	}
}

func TestGateMembersAuthenticate(t *testing.T) {
	checkGateLeaks(t)
	authority := newCA(t, "home")
	a, b := member(t, authority, "alpha"), member(t, authority, "bravo")

	connect(t, a, b)

	// Concurrent callers share the handshake and all succeed.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = await(t, a, b) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("a awaits b (caller %d): %v", i, err)
		}
	}
	if err := await(t, b, a); err != nil {
		t.Fatalf("b awaits a: %v", err)
	}

	tests := []struct {
		name     string
		from, to *gateNode
	}{
		{"a knows b", a, b},
		{"b knows a", b, a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := mustPeer(t, tt.from.gate, tt.to.id)
			if !bytes.Equal(cert.Raw, tt.to.cert.Raw) || cert.Serial != tt.to.cert.Serial {
				t.Errorf("Peer = %s serial %s, want %s serial %s", cert.Name, cert.Serial, tt.to.cert.Name, tt.to.cert.Serial)
			}
			if cert.MeshID != "home" || !cert.HasRole("node") {
				t.Errorf("Peer = %s of %q with roles %v, want mesh home and role node", cert.Name, cert.MeshID, cert.Roles)
			}
			id, err := mesh.PeerIDFromKey(cert.PublicKey)
			if err != nil || id != tt.to.id {
				t.Errorf("certificate key is peer %s (%v), want %s", id, err, tt.to.id)
			}
			if _, ok := tt.from.gate.Authenticated()[tt.to.id]; !ok {
				t.Error("Authenticated does not list the peer")
			}
			if err := echo(tt.to, tt.from, echoProto); err != nil {
				t.Errorf("authenticated peer cannot open a gated protocol: %v", err)
			}
		})
	}
	if a.handled.Load() != 1 || b.handled.Load() != 1 {
		t.Errorf("handlers ran %d and %d times, want once each", a.handled.Load(), b.handled.Load())
	}
}

// TestGateAuthenticatesOnConnect: the dialing side runs the handshake as
// soon as the connection is up, so neither side needs to call Await.
func TestGateAuthenticatesOnConnect(t *testing.T) {
	checkGateLeaks(t)
	authority := newCA(t, "home")
	a, b := member(t, authority, "alpha"), member(t, authority, "bravo")
	connect(t, a, b)
	waitFor(t, "both sides authenticated", func() error {
		if _, ok := a.gate.Peer(b.id); !ok {
			return errors.New("a does not know b")
		}
		if _, ok := b.gate.Peer(a.id); !ok {
			return errors.New("b does not know a")
		}
		return nil
	})
	for _, dir := range []struct{ from, to *gateNode }{{a, b}, {b, a}} {
		if err := echo(dir.from, dir.to, echoProto); err != nil {
			t.Errorf("gated protocol after connect: %v", err)
		}
	}
}

// mustPeer returns g's certificate of p; it shows the serial a peer presents.
func mustPeer(t *testing.T, g *mesh.Gate, p peer.ID) *ca.Certificate {
	t.Helper()
	cert, ok := g.Peer(p)
	if !ok {
		t.Fatalf("gate does not know peer %s", p)
	}
	return cert
}

// TestGateRefusesBadCertificates has a member (the verifier) meet a peer
// whose certificate is wrong. The peer's own gate trusts the verifier's CA,
// so that it accepts the verifier and shows its bad certificate: the
// verifier's Await then carries the verification error itself.
func TestGateRefusesBadCertificates(t *testing.T) {
	now := time.Now()
	home := newCA(t, "home")
	tests := []struct {
		name string
		// cert returns the bad peer's certificate for its key pub.
		cert func(t *testing.T, pub ed25519.PublicKey) *ca.Certificate
		// verifier adjusts the verifying gate.
		verifier func(cfg *mesh.GateConfig)
		sentinel error  // the ca error the verifier's Await wraps; nil: none
		reason   string // what its message says
	}{
		{
			name: "other mesh",
			cert: func(t *testing.T, pub ed25519.PublicKey) *ca.Certificate {
				return issue(t, newCA(t, "elsewhere"), pub, "intruder", now, time.Hour)
			},
			sentinel: ca.ErrOtherMesh, reason: "another mesh",
		},
		{
			name: "same mesh ID, other CA key",
			cert: func(t *testing.T, pub ed25519.PublicKey) *ca.Certificate {
				return issue(t, newCA(t, "home"), pub, "intruder", now, time.Hour)
			},
			sentinel: ca.ErrOtherMesh, reason: "different CA key",
		},
		{
			name: "expired",
			cert: func(t *testing.T, pub ed25519.PublicKey) *ca.Certificate {
				return issue(t, home, pub, "intruder", now, time.Hour)
			},
			verifier: func(cfg *mesh.GateConfig) {
				cfg.Now = func() time.Time { return now.Add(2 * time.Hour) }
			},
			sentinel: ca.ErrExpired, reason: "expired",
		},
		{
			name: "not yet valid",
			cert: func(t *testing.T, pub ed25519.PublicKey) *ca.Certificate {
				return issue(t, home, pub, "intruder", now.Add(time.Hour), time.Hour)
			},
			sentinel: ca.ErrNotYetValid, reason: "not yet valid",
		},
		{
			name: "key of another node",
			cert: func(t *testing.T, _ ed25519.PublicKey) *ca.Certificate {
				_, other := newKey(t)
				return issue(t, home, other, "intruder", now, time.Hour)
			},
			sentinel: ca.ErrKeyMismatch, reason: "not the peer's key",
		},
		{
			name: "tampered signature",
			cert: func(t *testing.T, pub ed25519.PublicKey) *ca.Certificate {
				der := bytes.Clone(issue(t, home, pub, "intruder", now, time.Hour).Raw)
				der[len(der)-1] ^= 0x01 // the DER ends with the Ed25519 signature
				cert, err := ca.ParseCertificate(der)
				if err != nil {
					t.Fatalf("parse tampered certificate: %v", err)
				}
				return cert
			},
			sentinel: ca.ErrBadSignature, reason: "signature does not verify",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkGateLeaks(t)
			key, pub := newKey(t)
			badCert := tt.cert(t, pub)
			bad := startGateNode(t, key, mesh.GateConfig{CA: home, Cert: badCert})

			vkey, vpub := newKey(t)
			cfg := mesh.GateConfig{CA: home, Cert: issue(t, home, vpub, "verifier", now, 24*time.Hour)}
			if tt.verifier != nil {
				tt.verifier(&cfg)
			}
			verifier := startGateNode(t, vkey, cfg)
			connect(t, bad, verifier)

			// The bad peer starts: the verifier refuses its hello and tells
			// it why in words; the ca sentinel does not cross the wire.
			err := await(t, bad, verifier)
			if !errors.Is(err, mesh.ErrNotAuthenticated) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("bad peer's Await = %v, want ErrNotAuthenticated saying %q", err, tt.reason)
			}

			// The verifier starts: it verifies the reply itself.
			err = await(t, verifier, bad)
			if err == nil {
				t.Fatal("verifier's Await accepted the bad certificate")
			}
			if !errors.Is(err, mesh.ErrNotAuthenticated) {
				t.Errorf("verifier's Await = %v, want it to wrap ErrNotAuthenticated", err)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("verifier's Await = %v, want it to wrap %v", err, tt.sentinel)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("verifier's Await = %q, want the reason %q", err, tt.reason)
			}

			if _, ok := verifier.gate.Peer(bad.id); ok {
				t.Error("verifier's gate records the refused peer")
			}
			if err := echo(bad, verifier, echoProto); err == nil {
				t.Error("refused peer opened a gated protocol")
			}
			if n := verifier.handled.Load(); n != 0 {
				t.Errorf("verifier's handler ran %d times for the refused peer", n)
			}
		})
	}
}

// TestGateIdentityless is a node that is pairing: its gate has no CA. It may
// open the open protocols of a member, nothing else.
func TestGateIdentityless(t *testing.T) {
	checkGateLeaks(t)
	authority := newCA(t, "home")
	key, pub := newKey(t)
	m := startGateNode(t, key, mesh.GateConfig{
		CA: authority, Cert: issue(t, authority, pub, "member", time.Now(), time.Hour), Open: []protocol.ID{pairProto},
	})
	pkey, _ := newKey(t)
	p := startGateNode(t, pkey, mesh.GateConfig{})
	connect(t, p, m)

	tests := []struct {
		name     string
		from, to *gateNode
		proto    protocol.ID
		wantOK   bool
	}{
		{"pairing node opens the open protocol", p, m, pairProto, true},
		{"pairing node opens a gated protocol", p, m, echoProto, false},
		{"member opens a gated protocol on the pairing node", m, p, echoProto, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.to.handled.Load()
			err := echo(tt.from, tt.to, tt.proto)
			if (err == nil) != tt.wantOK {
				t.Fatalf("echo on %s: %v, want ok = %v", tt.proto, err, tt.wantOK)
			}
			if ran := tt.to.handled.Load() - before; ran != map[bool]int32{true: 1, false: 0}[tt.wantOK] {
				t.Errorf("handler ran %d times", ran)
			}
		})
	}

	t.Run("handshakes fail both ways", func(t *testing.T) {
		if err := await(t, p, m); !errors.Is(err, mesh.ErrNotAuthenticated) {
			t.Errorf("pairing node's Await = %v, want ErrNotAuthenticated", err)
		}
		err := await(t, m, p)
		if !errors.Is(err, mesh.ErrNotAuthenticated) || !strings.Contains(err.Error(), "no mesh certificate") {
			t.Errorf("member's Await of a pairing node = %v, want ErrNotAuthenticated saying it has no certificate", err)
		}
		if _, ok := m.gate.Peer(p.id); ok {
			t.Error("member records the pairing node")
		}
		if err := echo(p, m, echoProto); err == nil {
			t.Error("after the handshakes the pairing node opened a gated protocol")
		}
	})

	t.Run("identity installed later", func(t *testing.T) {
		_, ppub := newKey(t)
		// A certificate for the wrong key stays refused after SetIdentity...
		p.gate.SetIdentity(authority, issue(t, authority, ppub, "paired", time.Now(), time.Hour))
		if err := await(t, p, m); !errors.Is(err, mesh.ErrNotAuthenticated) {
			t.Errorf("Await with another key's certificate = %v, want ErrNotAuthenticated", err)
		}
		// ...and its own certificate admits it.
		raw, err := pkey.GetPublic().Raw()
		if err != nil {
			t.Fatal(err)
		}
		p.gate.SetIdentity(authority, issue(t, authority, raw, "paired", time.Now(), time.Hour))
		if err := await(t, p, m); err != nil {
			t.Fatalf("Await after pairing: %v", err)
		}
		if err := echo(p, m, echoProto); err != nil {
			t.Errorf("paired node cannot open a gated protocol: %v", err)
		}
	})
}

// TestGateRechecksAuthenticatedPeers: revocation and expiry take effect on
// a peer that already authenticated, at its next stream.
func TestGateRechecksAuthenticatedPeers(t *testing.T) {
	start := time.Now()
	tests := []struct {
		name     string
		change   func(revoked *atomic.Bool, clock *atomic.Int64)
		sentinel error
		reason   string
	}{
		{"revoked", func(revoked *atomic.Bool, _ *atomic.Int64) { revoked.Store(true) }, nil, "revoked"},
		{"expired", func(_ *atomic.Bool, clock *atomic.Int64) { clock.Add(int64(2 * time.Hour)) }, ca.ErrExpired, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkGateLeaks(t)
			authority := newCA(t, "home")
			var revoked atomic.Bool
			var clock atomic.Int64 // offset from the real clock
			vkey, vpub := newKey(t)
			verifier := startGateNode(t, vkey, mesh.GateConfig{
				CA:      authority,
				Cert:    issue(t, authority, vpub, "verifier", start, 24*time.Hour),
				Revoked: func(peer.ID) bool { return revoked.Load() },
				Now:     func() time.Time { return time.Now().Add(time.Duration(clock.Load())) },
			})
			key, pub := newKey(t)
			peerNode := startGateNode(t, key, mesh.GateConfig{CA: authority, Cert: issue(t, authority, pub, "peer", start, time.Hour)})
			connect(t, peerNode, verifier)
			if err := await(t, peerNode, verifier); err != nil {
				t.Fatalf("Await: %v", err)
			}
			if err := echo(peerNode, verifier, echoProto); err != nil {
				t.Fatalf("authenticated peer: %v", err)
			}

			tt.change(&revoked, &clock)
			if err := echo(peerNode, verifier, echoProto); err == nil {
				t.Fatal("peer still opens a gated protocol")
			}
			if _, ok := verifier.gate.Peer(peerNode.id); ok {
				t.Error("gate still records the peer")
			}
			err := await(t, verifier, peerNode)
			if !errors.Is(err, mesh.ErrNotAuthenticated) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Await = %v, want ErrNotAuthenticated saying %q", err, tt.reason)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("Await = %v, want it to wrap %v", err, tt.sentinel)
			}
			if n := verifier.handled.Load(); n != 1 {
				t.Errorf("handler ran %d times, want once (before the change)", n)
			}
		})
	}
}

// TestGateRefusesRevokedPeer: a revoked peer holds a valid certificate of
// the mesh, yet gets no connection, no handshake and no gated stream.
func TestGateRefusesRevokedPeer(t *testing.T) {
	tests := []struct {
		name string
		// revoke revokes bad on verifier's gate, given a connected and
		// authenticated pair, or before they ever met (connected false).
		connected bool
		revoke    func(verifier, bad *gateNode, revoked *atomic.Bool)
	}{
		{"before connecting", false, func(_, _ *gateNode, revoked *atomic.Bool) { revoked.Store(true) }},
		{"then disconnected", true, func(verifier, bad *gateNode, revoked *atomic.Bool) {
			revoked.Store(true)
			verifier.gate.Disconnect(bad.id)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkGateLeaks(t)
			authority := newCA(t, "home")
			bad := member(t, authority, "revoked")
			var revoked atomic.Bool
			vkey, vpub := newKey(t)
			verifier := startGateNode(t, vkey, mesh.GateConfig{
				CA:      authority,
				Cert:    issue(t, authority, vpub, "verifier", time.Now(), time.Hour),
				Revoked: func(p peer.ID) bool { return revoked.Load() && p == bad.id },
			})
			if tt.connected {
				connect(t, bad, verifier)
				if err := await(t, verifier, bad); err != nil {
					t.Fatalf("Await before revocation: %v", err)
				}
			}
			tt.revoke(verifier, bad, &revoked)

			ctx, cancel := context.WithTimeout(context.Background(), gateWait)
			defer cancel()
			err := bad.host.Connect(ctx, peer.AddrInfo{ID: verifier.id, Addrs: verifier.host.Addrs()})
			t.Logf("revoked peer dials: %v", err)
			waitFor(t, "verifier holds no connection to the revoked peer", func() error {
				if c := verifier.host.Network().Connectedness(bad.id); c == network.Connected {
					return fmt.Errorf("connectedness %v", c)
				}
				return nil
			})
			if _, ok := verifier.gate.Peer(bad.id); ok {
				t.Error("verifier records the revoked peer")
			}
			verifier.host.Peerstore().AddAddrs(bad.id, bad.host.Addrs(), time.Hour)
			err = await(t, verifier, bad)
			t.Logf("verifier awaits the revoked peer: %v", err)
			if err == nil {
				t.Fatal("verifier authenticated a revoked peer")
			}
			if err := echo(bad, verifier, echoProto); err == nil {
				t.Error("revoked peer opened a gated protocol")
			}
			if want := int32(0); verifier.handled.Load() != want {
				t.Errorf("verifier's handler ran %d times for the revoked peer", verifier.handled.Load())
			}
		})
	}
}

func TestGateForgetsDisconnectedPeer(t *testing.T) {
	checkGateLeaks(t)
	authority := newCA(t, "home")
	a, b := member(t, authority, "alpha"), member(t, authority, "bravo")
	connect(t, a, b)
	if err := await(t, a, b); err != nil {
		t.Fatalf("Await: %v", err)
	}
	mustPeer(t, a.gate, b.id)
	mustPeer(t, b.gate, a.id)

	if err := a.host.Network().ClosePeer(b.id); err != nil {
		t.Fatalf("ClosePeer: %v", err)
	}
	for _, side := range []struct {
		name       string
		gate       *mesh.Gate
		remote     peer.ID
		remoteName string
	}{{"a", a.gate, b.id, "bravo"}, {"b", b.gate, a.id, "alpha"}} {
		waitFor(t, side.name+" forgets "+side.remoteName, func() error {
			if _, ok := side.gate.Peer(side.remote); ok {
				return errors.New("peer still known")
			}
			if len(side.gate.Authenticated()) != 0 {
				return errors.New("Authenticated not empty")
			}
			return nil
		})
	}

	// A new connection brings a new handshake.
	connect(t, b, a)
	if err := await(t, b, a); err != nil {
		t.Fatalf("Await after reconnecting: %v", err)
	}
	if err := echo(b, a, echoProto); err != nil {
		t.Errorf("after the new handshake: %v", err)
	}

	// Closing a host also makes the other side forget it.
	if err := b.host.Close(); err != nil {
		t.Fatalf("close b: %v", err)
	}
	waitFor(t, "a forgets the closed host", func() error {
		if _, ok := a.gate.Peer(b.id); ok {
			return errors.New("peer still known")
		}
		return nil
	})
}

// silentListener accepts TCP connections and never answers, so a libp2p
// dial to it hangs in the security handshake. It returns its multiaddr.
func silentListener(t *testing.T) multiaddr.Multiaddr {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	addr, err := manet.FromNetAddr(l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestGateAwaitHonoursContext: a caller's context ends its wait for a
// handshake that hangs; the handshake itself ends with the host.
func TestGateAwaitHonoursContext(t *testing.T) {
	checkGateLeaks(t)
	authority := newCA(t, "home")
	a := member(t, authority, "alpha")
	_, pub := newKey(t)
	silent, err := mesh.PeerIDFromKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	a.host.Peerstore().AddAddr(silent, silentListener(t), time.Hour)

	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			if err := a.gate.Await(ctx, silent); !errors.Is(err, tt.wantErr) {
				t.Errorf("Await = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if _, ok := a.gate.Peer(silent); ok {
		t.Error("gate records a peer that never answered")
	}
}
