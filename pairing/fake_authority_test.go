package pairing

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/mesh"
)

// testMeshID is the mesh every test coordinator runs.
const testMeshID = "test-mesh"

// founderName is the node that founded the test mesh: the coordinator.
const founderName = "coordinator"

// fakeAuthority is agent's authority without raft: its state lives in a
// real control.FSM, founded with control.OpInit, and every write is a
// control command applied to that FSM as raft applies a committed entry.
// Reads, Decision and Issue are those of agent's authority. It is safe for
// concurrent use.
type fakeAuthority struct {
	fsm *control.FSM
	// ca is the mesh CA as the coordinator's identity holds it.
	ca *ca.CA
	// now is the coordinator's clock: it stamps every command.
	now   func() time.Time
	peers []string

	// mu serialises the writes, as raft applies one entry at a time.
	mu    sync.Mutex
	index uint64
	// writeErr, when set, fails every replicated write (a lost quorum).
	writeErr error
}

var _ Authority = (*fakeAuthority)(nil)

// newFakeAuthority founds a mesh: a new CA, and the founder registered by
// control.OpInit with a certificate from it.
func newFakeAuthority(t testing.TB, now func() time.Time) *fakeAuthority {
	t.Helper()
	authority, err := ca.New(testMeshID, now(), 24*time.Hour, nil)
	if err != nil {
		t.Fatalf("new ca: %v", err)
	}
	keyPEM, err := authority.KeyPEM()
	if err != nil {
		t.Fatalf("ca key: %v", err)
	}
	founder := newJoiner(t)
	cert, err := authority.Issue(now(), founder.pub, founderName, []string{"node"}, time.Hour, nil)
	if err != nil {
		t.Fatalf("founder certificate: %v", err)
	}
	f := &fakeAuthority{
		fsm:   control.NewFSM(),
		ca:    authority,
		now:   now,
		peers: []string{"/ip4/127.0.0.1/udp/4001/quic-v1/p2p/" + founder.id.String()},
	}
	f.mustApply(t, control.OpInit, control.Init{
		MeshID: testMeshID, CACertPEM: string(authority.CertPEM()), CAKeyPEM: string(keyPEM),
		Node: control.Node{Name: founderName, PeerID: founder.id.String(), Roles: cert.Roles, CertPEM: string(cert.PEM()),
			Serial: cert.Serial, CertExpiresAt: cert.NotAfter, JoinedAt: now()},
	})
	return f
}

// apply is agent's apply: it commits one command, stamped with the
// coordinator's clock, and returns its result. As there, ctx does not stop
// a write.
func (f *fakeAuthority) apply(_ context.Context, op control.Op, v any) (any, error) {
	return f.applyAt(f.now().UTC(), op, v)
}

// applyAt commits one command stamped at.
func (f *fakeAuthority) applyAt(at time.Time, op control.Op, v any) (any, error) {
	cmd, err := control.NewCommand(op, at, v)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writeErr != nil {
		return nil, fmt.Errorf("replicate %s: %w", op, f.writeErr)
	}
	f.index++
	res := f.fsm.Apply(&raft.Log{Index: f.index, Term: 1, Type: raft.LogCommand, Data: cmd})
	if err, ok := res.(error); ok {
		return nil, err
	}
	return res, nil
}

// mustApply commits one command of a test's setup.
func (f *fakeAuthority) mustApply(t testing.TB, op control.Op, v any) {
	t.Helper()
	if _, err := f.apply(context.Background(), op, v); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

// signer is agent's signer: the CA with its key, from the replicated state.
func (f *fakeAuthority) signer() (*ca.CA, error) {
	var certPEM, keyPEM string
	f.fsm.Read(func(s *control.State) { certPEM, keyPEM = s.CACertPEM, s.CAKeyPEM })
	if keyPEM == "" {
		return nil, errors.New("the CA key is not in the replicated state yet")
	}
	return ca.Load([]byte(certPEM), []byte(keyPEM))
}

func (f *fakeAuthority) Ticket(slot byte) (ca.Ticket, bool) {
	var t ca.Ticket
	var ok bool
	f.fsm.Read(func(s *control.State) {
		if p, found := s.TicketBySlot(slot); found {
			t, ok = *p, true
		}
	})
	return t, ok
}

func (f *fakeAuthority) CheckRate(now time.Time) error {
	var err error
	f.fsm.Read(func(s *control.State) { err = s.PairFailures.Allow(now) })
	return err
}

func (f *fakeAuthority) Fail(ctx context.Context, ticketID string) (control.PairFailResult, error) {
	res, err := f.apply(ctx, control.OpPairFail, control.PairFail{Ticket: ticketID})
	if err != nil {
		return control.PairFailResult{}, err
	}
	r, _ := res.(control.PairFailResult)
	return r, nil
}

func (f *fakeAuthority) Park(ctx context.Context, p control.Pending) error {
	_, err := f.apply(ctx, control.OpPairPending, control.PairPending{Pending: p})
	return err
}

func (f *fakeAuthority) Decision(ctx context.Context, name string) (bool, error) {
	for {
		changed := f.fsm.Changed()
		var decision string
		var present bool
		f.fsm.Read(func(s *control.State) {
			if p, ok := s.Pending[name]; ok {
				decision, present = p.Decision, true
			}
		})
		switch {
		case !present || decision == "rejected":
			return false, nil
		case decision == "approved":
			return true, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

func (f *fakeAuthority) Abandon(ctx context.Context, name string) error {
	_, err := f.apply(ctx, control.OpPairAbandon, control.PairAbandon{Name: name})
	return err
}

func (f *fakeAuthority) Complete(ctx context.Context, ticketID string, n control.Node) error {
	_, err := f.apply(ctx, control.OpPairComplete, control.PairComplete{Ticket: ticketID, Node: n})
	return err
}

func (f *fakeAuthority) NameTaken(name, peerID string) bool {
	taken := false
	f.fsm.Read(func(s *control.State) {
		if n, ok := s.Nodes[name]; ok && n.PeerID != peerID {
			taken = true
		}
		if p, ok := s.Pending[name]; ok && p.PeerID != peerID && p.Decision != "rejected" {
			taken = true
		}
	})
	return taken
}

func (f *fakeAuthority) Issue(pub ed25519.PublicKey, name string, roles []string) (*ca.Certificate, error) {
	signer, err := f.signer()
	if err != nil {
		return nil, err
	}
	return signer.Issue(f.now(), pub, name, roles, time.Hour, nil)
}

func (f *fakeAuthority) Bundle() (string, string, []string) {
	return f.ca.MeshID, string(f.ca.CertPEM()), slices.Clone(f.peers)
}

// decide is control.OpPairDecide: an operator's approval or rejection.
func (f *fakeAuthority) decide(name string, approve bool) error {
	_, err := f.apply(context.Background(), control.OpPairDecide, control.PairDecide{Name: name, Approve: approve})
	return err
}

// addTicket creates (control.OpTicketCreate) an active ticket with the
// given PIN, after mod (which may be nil) has adjusted it, and returns its
// ID. The FSM refuses it while an open ticket holds the PIN's first digit.
func (f *fakeAuthority) addTicket(t testing.TB, pin string, mod func(*ca.Ticket)) string {
	t.Helper()
	tk, err := ca.NewTicket(f.now(), 0, []string{"node", "gpu"}, false, "tester", "coordinator", nil)
	if err != nil {
		t.Fatalf("new ticket: %v", err)
	}
	tk.PIN = pin
	if mod != nil {
		mod(tk)
	}
	f.mustApply(t, control.OpTicketCreate, tk)
	return tk.ID
}

// spareTicket creates a ticket in a slot that no unexpired ticket holds
// (so that it never shadows a test's own), for a setup that needs one.
func (f *fakeAuthority) spareTicket(t testing.TB, requireApproval bool) string {
	t.Helper()
	var slot byte
	var ok bool
	f.fsm.Read(func(s *control.State) { slot, ok = s.PickSlot(f.now(), func(int) int { return 0 }) })
	if !ok {
		t.Fatal("no free PIN slot")
	}
	return f.addTicket(t, string(slot)+"00000", func(tk *ca.Ticket) { tk.RequireApproval = requireApproval })
}

// failAt records (control.OpPairFail) a wrong PIN against ticketID (which
// may be "") at a time of the test's choosing.
func (f *fakeAuthority) failAt(t testing.TB, ticketID string, at time.Time) {
	t.Helper()
	if _, err := f.applyAt(at.UTC(), control.OpPairFail, control.PairFail{Ticket: ticketID}); err != nil {
		t.Fatalf("%s: %v", control.OpPairFail, err)
	}
}

// addNode registers a member as if it had joined earlier, with a spare
// ticket (control.OpPairComplete).
func (f *fakeAuthority) addNode(t testing.TB, name string, id peer.ID) {
	t.Helper()
	ticket := f.spareTicket(t, false)
	f.mustApply(t, control.OpPairComplete, control.PairComplete{Ticket: ticket, Node: control.Node{Name: name, PeerID: id.String(), Ticket: ticket}})
}

// addPending parks a join as if another joiner waited
// (control.OpPairPending), with a spare ticket unless p names one.
func (f *fakeAuthority) addPending(t testing.TB, p control.Pending) {
	t.Helper()
	if p.Ticket == "" {
		p.Ticket = f.spareTicket(t, true)
	}
	f.mustApply(t, control.OpPairPending, control.PairPending{Pending: p})
}

func (f *fakeAuthority) ticket(t testing.TB, id string) ca.Ticket {
	t.Helper()
	var tk ca.Ticket
	var ok bool
	f.fsm.Read(func(s *control.State) {
		if p, found := s.Tickets[id]; found {
			tk, ok = *p, true
			tk.Roles = slices.Clone(p.Roles)
		}
	})
	if !ok {
		t.Fatalf("ticket %s is gone", id)
	}
	return tk
}

// authorityState is a deep copy of a fakeAuthority's state, comparable with
// reflect.DeepEqual. Nodes leaves out the founder.
type authorityState struct {
	Tickets  map[string]ca.Ticket
	Nodes    map[string]control.Node
	Pending  map[string]control.Pending
	Failures []time.Time
}

func (f *fakeAuthority) state() authorityState {
	s := authorityState{
		Tickets: make(map[string]ca.Ticket),
		Nodes:   make(map[string]control.Node),
		Pending: make(map[string]control.Pending),
	}
	f.fsm.Read(func(st *control.State) {
		s.Failures = slices.Clone(st.PairFailures.Failures)
		for id, t := range st.Tickets {
			c := *t
			c.Roles = slices.Clone(t.Roles)
			s.Tickets[id] = c
		}
		for name, n := range st.Nodes {
			if name == founderName {
				continue
			}
			c := *n
			c.Roles = slices.Clone(n.Roles)
			s.Nodes[name] = c
		}
		for name, p := range st.Pending {
			s.Pending[name] = *p
		}
	})
	return s
}

// coordinator is a pairing server over a fake authority, with a fixed clock
// and a captured log.
type coordinator struct {
	auth *fakeAuthority
	srv  *Server
	now  time.Time
	log  *bytes.Buffer
}

func newCoordinator(t testing.TB) *coordinator {
	t.Helper()
	// Truncated so the certificate times survive their X.509 encoding.
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { return now }
	log := new(bytes.Buffer)
	auth := newFakeAuthority(t, clock)
	return &coordinator{
		auth: auth,
		now:  now,
		log:  log,
		srv: &Server{
			Authority: auth,
			Now:       clock,
			Logger:    slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		},
	}
}

// joinerID is a joining node's identity.
type joinerID struct {
	key ed25519.PrivateKey
	pub ed25519.PublicKey
	id  peer.ID
}

func newJoiner(t testing.TB) joinerID {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	id, err := mesh.PeerIDFromKey(pub)
	if err != nil {
		t.Fatalf("peer id: %v", err)
	}
	return joinerID{key: key, pub: pub, id: id}
}

func (j joinerID) config(name, pin string) JoinConfig {
	return JoinConfig{Key: j.key, Name: name, PIN: pin, Logger: slog.New(slog.DiscardHandler)}
}

// outcome is how both ends of one exchange ended.
type outcome struct {
	bundle   *Bundle
	joinErr  error
	serveErr error
}

// pair runs one exchange: the joiner (cfg) on one end of a pipe, the
// coordinator's Serve on the other, told the joiner connected as connected.
// The joiner runs on the calling goroutine, so cfg.OnPending may use t.
func pair(t testing.TB, srv *Server, cfg JoinConfig, connected peer.ID, relayedBy string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jc, sc := net.Pipe()
	served := make(chan error, 1)
	go func() {
		defer sc.Close()
		served <- srv.Serve(ctx, sc, connected, relayedBy)
	}()
	b, err := exchange(ctx, cfg, jc)
	jc.Close()
	return outcome{bundle: b, joinErr: err, serveErr: <-served}
}

// wantCode fails unless err is a *Error with code.
func wantCode(t testing.TB, err error, code string) *Error {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *pairing.Error, want code %s", err, err, code)
	}
	if pe.Code != code {
		t.Fatalf("error code %q (%v), want %q", pe.Code, pe, code)
	}
	return pe
}

// wantRefused fails unless both ends of o ended with code and the joiner
// got no bundle; it returns the joiner's error.
func wantRefused(t testing.TB, o outcome, code string) *Error {
	t.Helper()
	if o.bundle != nil {
		t.Fatalf("joiner got a bundle, want refusal %s", code)
	}
	wantCode(t, o.serveErr, code)
	return wantCode(t, o.joinErr, code)
}

// checkBundle verifies b as a joiner must trust it: issued by the
// coordinator's CA, for the joiner's key, in the coordinator's mesh.
func checkBundle(t testing.TB, c *coordinator, b *Bundle, j joinerID, name string, roles []string) {
	t.Helper()
	if b == nil {
		t.Fatal("no bundle")
	}
	if b.MeshID != testMeshID || b.Name != name {
		t.Fatalf("bundle is for %q in mesh %q, want %q in %q", b.Name, b.MeshID, name, testMeshID)
	}
	authority, err := ca.Load([]byte(b.CACertPEM), nil)
	if err != nil {
		t.Fatalf("bundle CA: %v", err)
	}
	if authority.Fingerprint() != c.auth.ca.Fingerprint() {
		t.Fatalf("bundle CA %s is not the coordinator's %s", authority.Fingerprint(), c.auth.ca.Fingerprint())
	}
	cert, err := ca.ParseCertificatePEM([]byte(b.CertPEM))
	if err != nil {
		t.Fatalf("bundle certificate: %v", err)
	}
	if err := c.auth.ca.Verify(time.Now(), cert, j.pub); err != nil {
		t.Fatalf("bundle certificate does not verify for the joiner's key: %v", err)
	}
	if !cert.PublicKey.Equal(j.pub) || cert.Name != name || cert.MeshID != testMeshID {
		t.Fatalf("certificate is %q in %q", cert.Name, cert.MeshID)
	}
	if !slices.Equal(cert.Roles, roles) || !slices.Equal(b.Roles, roles) {
		t.Fatalf("roles: certificate %v, bundle %v, want %v", cert.Roles, b.Roles, roles)
	}
	if !slices.Equal(b.Peers, c.auth.peers) {
		t.Fatalf("peers %v, want %v", b.Peers, c.auth.peers)
	}
}

// noSecretLogged fails if the coordinator's log holds pin.
func noSecretLogged(t testing.TB, c *coordinator, pin string) {
	t.Helper()
	if strings.Contains(c.log.String(), pin) {
		t.Fatalf("the PIN appears in the coordinator's log:\n%s", c.log)
	}
}
