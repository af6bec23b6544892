package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/mesh"
)

// newFounder starts a one-node mesh on loopback and waits until it leads.
func newFounder(tb testing.TB) *Agent {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.DataDir, cfg.Init, cfg.MDNS = "founder", filepath.Join(tb.TempDir(), "founder"), true, false
	cfg.Listen, cfg.HTTPAddr = []string{"/ip4/127.0.0.1/tcp/0"}, "127.0.0.1:0"
	cfg.Timings = TestTimings()
	a, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = a.Close() })
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !a.isLeader() {
		select {
		case <-ctx.Done():
			tb.Fatal("the founder did not become coordinator within 30s")
		case <-tick.C:
		}
	}
	return a
}

// stateJSON is the replicated state as JSON, to tell whether a request
// changed it.
func stateJSON(tb testing.TB, a *Agent) string {
	tb.Helper()
	var b []byte
	var err error
	a.fsm.Read(func(s *control.State) { b, err = json.Marshal(s) })
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// FuzzControlRequest sends arbitrary control requests, as a member's
// /palyra/control/1.0.0 stream carries them (framing is FuzzReadMsg's), to
// a coordinator acting for a principal with the admin role. It must not
// panic; a refused request gets a 4xx error with a message and changes
// nothing; an accepted one answers JSON.
func FuzzControlRequest(f *testing.F) {
	for _, seed := range []string{
		`{"op":"pairing.create","principal":"p"}`,
		`{"op":"pairing.create","body":{"ttl":"1m","roles":["operator"],"require_approval":true}}`,
		`{"op":"pairing.create","body":{"ttl":"forever","roles":["x y"]}}`,
		`{"op":"pairing.create","body":"not an object"}`,
		`{"op":"pairing.list"}`,
		`{"op":"nodes.list","stale":true}`,
		`{"op":"nodes.show","name":"founder"}`,
		`{"op":"nodes.show","name":"../../etc"}`,
		`{"op":"nodes.revoke","name":"founder"}`,
		`{"op":"nodes.revoke","name":"ghost"}`,
		`{"op":"nodes.approve","name":"ghost"}`,
		`{"op":"nodes.reject","name":""}`,
		`{"op":"cert.renew","body":{"cert":"AAAA","csr":"","peer":"12D3KooW"}}`,
		`{"op":"cert.renew","body":[]}`,
		`{"op":"raft.prepare"}`,
		`{"op":""}`,
		`{"op":"mesh.init","body":{}}`,
	} {
		f.Add([]byte(seed))
	}
	a := newFounder(f)
	admin := principal{Name: "fuzz", Roles: []string{"admin"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req controlRequest
		if json.Unmarshal(b, &req) != nil {
			return
		}
		before := stateJSON(t, a)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := a.onCoordinator(ctx, admin, req)
		if err != nil {
			// Bad input is the caller's mistake: a 4xx with a message.
			if ae := toAPIError(err); ae.Status < 400 || ae.Status >= 500 || ae.Message == "" {
				t.Fatalf("op %q: error %v answers %d %s", req.Op, err, ae.Status, ae.Code)
			}
			if after := stateJSON(t, a); after != before {
				t.Fatalf("op %q was refused (%v) but changed the state", req.Op, err)
			}
			return
		}
		if !json.Valid(res) {
			t.Fatalf("op %q answered %q", req.Op, res)
		}
	})
}

// FuzzRenewRequest sends arbitrary renewals, as /palyra/renew/1.0.0 (an
// open protocol) carries them, to the coordinator. It must not panic; a
// refused renewal changes nothing; a signed one is a certificate of this
// mesh for the requesting peer's own key under its registered name.
func FuzzRenewRequest(f *testing.F) {
	a := newFounder(f)
	raw, err := a.id.key.Raw()
	if err != nil {
		f.Fatal(err)
	}
	own := a.cert()
	csr, err := ca.NewCSR(ed25519.PrivateKey(raw), own.Name, nil)
	if err != nil {
		f.Fatal(err)
	}
	other, err := ca.NewCSR(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)), own.Name, nil)
	if err != nil {
		f.Fatal(err)
	}
	self := a.host.ID().String()
	f.Add(own.Raw, csr, self)
	f.Add(own.Raw, other, self)
	f.Add(own.Raw, csr, "12D3KooWGkxN4tGR3eEvgGSBwuNRi3KqHMHXgqp16LNUiz94srV7")
	f.Add(own.Raw[:len(own.Raw)-1], csr, self)
	f.Add([]byte{}, []byte{}, "")
	f.Fuzz(func(t *testing.T, cert, csr []byte, peerID string) {
		before := stateJSON(t, a)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		der, err := a.signRenewal(ctx, renewRequest{Cert: cert, CSR: csr, Peer: peerID})
		if err != nil {
			if after := stateJSON(t, a); after != before {
				t.Fatalf("a refused renewal (%v) changed the state", err)
			}
			return
		}
		c, err := ca.ParseCertificate(der)
		if err != nil {
			t.Fatalf("signed a certificate that does not parse: %v", err)
		}
		pid, err := mesh.PeerIDFromKey(c.PublicKey)
		if err != nil || pid.String() != peerID {
			t.Fatalf("renewed a certificate for %v, asked by %s", pid, peerID)
		}
		if err := a.id.ca.Verify(time.Now(), c, c.PublicKey); err != nil {
			t.Fatalf("renewed certificate does not verify: %v", err)
		}
		var known bool
		a.fsm.Read(func(s *control.State) {
			n, ok := s.Nodes[c.Name]
			known = ok && n.PeerID == peerID && !n.Revoked
		})
		if !known {
			t.Fatalf("renewed %q for %s, which is not its registered node", c.Name, peerID)
		}
	})
}
