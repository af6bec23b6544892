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

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/mesh"
)

// testMeshID is the mesh every test coordinator runs.
const testMeshID = "test-mesh"

// fakeAuthority is an in-memory Authority. Its writes apply the rules of
// control's FSM (pair.fail, pair.pending, pair.decide, pair.complete) and
// its reads those of agent's authority (TicketBySlot, NameTaken, Decision),
// without raft. It is safe for concurrent use.
type fakeAuthority struct {
	ca    *ca.CA
	now   func() time.Time
	peers []string

	mu      sync.Mutex
	tickets map[string]*ca.Ticket
	nodes   map[string]*control.Node
	pending map[string]*control.Pending
	window  ca.FailureWindow
	// changed is closed at every write, as FSM.Changed.
	changed chan struct{}
	// writeErr, when set, fails every replicated write (a lost quorum).
	writeErr error
}

var _ Authority = (*fakeAuthority)(nil)

func newFakeAuthority(t testing.TB, now func() time.Time) *fakeAuthority {
	t.Helper()
	authority, err := ca.New(testMeshID, now(), 24*time.Hour, nil)
	if err != nil {
		t.Fatalf("new ca: %v", err)
	}
	return &fakeAuthority{
		ca:      authority,
		now:     now,
		peers:   []string{"/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWBdmLJjhpgJ9sEBAw7fUnyeHsCFGySVZhP6MXUnpkhcWD"},
		tickets: make(map[string]*ca.Ticket),
		nodes:   make(map[string]*control.Node),
		pending: make(map[string]*control.Pending),
		changed: make(chan struct{}),
	}
}

// commit wakes Decision waiters; f.mu must be held.
func (f *fakeAuthority) commit() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// write runs fn as one replicated write, as FSM.Apply does.
func (f *fakeAuthority) write(ctx context.Context, fn func(now time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writeErr != nil {
		return f.writeErr
	}
	defer f.commit()
	return fn(f.now())
}

func (f *fakeAuthority) Ticket(slot byte) (ca.Ticket, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var best *ca.Ticket
	for _, t := range f.tickets {
		if len(t.PIN) > 0 && t.PIN[0] == slot && (best == nil || t.CreatedAt.After(best.CreatedAt)) {
			best = t
		}
	}
	if best == nil {
		return ca.Ticket{}, false
	}
	c := *best
	c.Roles = slices.Clone(best.Roles)
	return c, true
}

func (f *fakeAuthority) CheckRate(now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.window.Allow(now)
}

// Fail is control.OpPairFail.
func (f *fakeAuthority) Fail(ctx context.Context, ticketID string) (control.PairFailResult, error) {
	var res control.PairFailResult
	err := f.write(ctx, func(now time.Time) error {
		f.window.Record(now)
		if t, ok := f.tickets[ticketID]; ok {
			res.Burned = t.RecordFailure()
			res.AttemptsLeft = t.AttemptsLeft()
		}
		return nil
	})
	return res, err
}

// Park is control.OpPairPending.
func (f *fakeAuthority) Park(ctx context.Context, p control.Pending) error {
	return f.write(ctx, func(now time.Time) error {
		t, ok := f.tickets[p.Ticket]
		if !ok {
			return fmt.Errorf("%w: ticket", control.ErrNotFound)
		}
		if err := t.Usable(now); err != nil {
			return err
		}
		if _, taken := f.nodes[p.Name]; taken {
			return fmt.Errorf("%w: node name %q is taken", control.ErrConflict, p.Name)
		}
		t.State = ca.TicketPending
		p.Since = now
		f.pending[p.Name] = &p
		return nil
	})
}

// Decision is agent's authority.Decision: it waits for a decision on the
// pending join, watching every write.
func (f *fakeAuthority) Decision(ctx context.Context, name string) (bool, error) {
	for {
		f.mu.Lock()
		changed := f.changed
		p, present := f.pending[name]
		decision := ""
		if present {
			decision = p.Decision
		}
		f.mu.Unlock()
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

// decide is control.OpPairDecide: what an operator's approval or
// rejection writes.
func (f *fakeAuthority) decide(name string, approve bool) error {
	return f.write(context.Background(), func(time.Time) error {
		p, ok := f.pending[name]
		if !ok || p.Decision != "" {
			return fmt.Errorf("%w: no join of %q waits for approval", control.ErrNotFound, name)
		}
		if approve {
			p.Decision = "approved"
			return nil
		}
		p.Decision = "rejected"
		if t, ok := f.tickets[p.Ticket]; ok {
			t.State = ca.TicketRejected
		}
		delete(f.pending, name)
		return nil
	})
}

// Abandon is control.OpPairAbandon.
func (f *fakeAuthority) Abandon(ctx context.Context, name string) error {
	return f.write(ctx, func(time.Time) error {
		p, ok := f.pending[name]
		if !ok {
			return nil
		}
		delete(f.pending, name)
		if t, ok := f.tickets[p.Ticket]; ok && t.State == ca.TicketPending {
			t.State = ca.TicketActive
		}
		return nil
	})
}

// Complete is control.OpPairComplete.
func (f *fakeAuthority) Complete(ctx context.Context, ticketID string, n control.Node) error {
	return f.write(ctx, func(now time.Time) error {
		t, ok := f.tickets[ticketID]
		if !ok {
			return fmt.Errorf("%w: ticket", control.ErrNotFound)
		}
		if p, ok := f.pending[n.Name]; ok {
			if p.Ticket != t.ID || p.Decision != "approved" {
				return fmt.Errorf("%w: join of %q is not approved", control.ErrConflict, n.Name)
			}
			delete(f.pending, n.Name)
		} else if err := t.Usable(now); err != nil {
			return err
		}
		if old, taken := f.nodes[n.Name]; taken && old.PeerID != n.PeerID {
			return fmt.Errorf("%w: node name %q is taken", control.ErrConflict, n.Name)
		}
		t.State = ca.TicketUsed
		t.UsedAt, t.UsedBy, t.UsedByPeer, t.RelayedBy = now, n.Name, n.PeerID, n.RelayedBy
		n.JoinedAt = now
		f.nodes[n.Name] = &n
		return nil
	})
}

func (f *fakeAuthority) NameTaken(name, peerID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.nodes[name]; ok && n.PeerID != peerID {
		return true
	}
	if p, ok := f.pending[name]; ok && p.PeerID != peerID && p.Decision != "rejected" {
		return true
	}
	return false
}

func (f *fakeAuthority) Issue(pub ed25519.PublicKey, name string, roles []string) (*ca.Certificate, error) {
	return f.ca.Issue(f.now(), pub, name, roles, time.Hour, nil)
}

func (f *fakeAuthority) Bundle() (string, string, []string) {
	return f.ca.MeshID, string(f.ca.CertPEM()), slices.Clone(f.peers)
}

// addTicket stores an active ticket with the given PIN, after mod (which
// may be nil) has adjusted it, and returns its ID.
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
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tickets[tk.ID] = tk
	return tk.ID
}

// addNode registers a member directly (as if it had joined earlier).
func (f *fakeAuthority) addNode(name string, id peer.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[name] = &control.Node{Name: name, PeerID: id.String(), JoinedAt: f.now()}
}

func (f *fakeAuthority) ticket(t testing.TB, id string) ca.Ticket {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	tk, ok := f.tickets[id]
	if !ok {
		t.Fatalf("ticket %s is gone", id)
	}
	return *tk
}

// authorityState is a deep copy of a fakeAuthority's state, comparable with
// reflect.DeepEqual.
type authorityState struct {
	Tickets  map[string]ca.Ticket
	Nodes    map[string]control.Node
	Pending  map[string]control.Pending
	Failures []time.Time
}

func (f *fakeAuthority) state() authorityState {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := authorityState{
		Tickets:  make(map[string]ca.Ticket),
		Nodes:    make(map[string]control.Node),
		Pending:  make(map[string]control.Pending),
		Failures: slices.Clone(f.window.Failures),
	}
	for id, t := range f.tickets {
		c := *t
		c.Roles = slices.Clone(t.Roles)
		s.Tickets[id] = c
	}
	for name, n := range f.nodes {
		c := *n
		c.Roles = slices.Clone(n.Roles)
		s.Nodes[name] = c
	}
	for name, p := range f.pending {
		s.Pending[name] = *p
	}
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

// addPending parks a join directly (as if another joiner waited).
func (f *fakeAuthority) addPending(p control.Pending) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending[p.Name] = &p
}
