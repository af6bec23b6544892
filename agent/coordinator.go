package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/pairing"
)

// ErrNotCoordinator is returned by a write attempted on a node that is not
// the coordinator (callers forward instead).
var ErrNotCoordinator = errors.New("this node is not the coordinator")

// apply commits one command through raft and returns its result.
func (a *Agent) apply(ctx context.Context, op control.Op, v any) (any, error) {
	r := a.raft()
	if r == nil || r.State() != raft.Leader {
		return nil, ErrNotCoordinator
	}
	cmd, err := control.NewCommand(op, time.Now().UTC(), v)
	if err != nil {
		return nil, err
	}
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	f := r.Apply(cmd, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, fmt.Errorf("%w: %w", ErrNotCoordinator, err)
		}
		return nil, fmt.Errorf("replicate %s: %w", op, err)
	}
	if err, ok := f.Response().(error); ok {
		return nil, err
	}
	return f.Response(), nil
}

// signer returns the CA with its key, from the replicated state.
func (a *Agent) signer() (*ca.CA, error) {
	var certPEM, keyPEM string
	a.fsm.Read(func(s *control.State) { certPEM, keyPEM = s.CACertPEM, s.CAKeyPEM })
	if keyPEM == "" {
		return nil, errors.New("the CA key is not in the replicated state yet")
	}
	return ca.Load([]byte(certPEM), []byte(keyPEM))
}

// authority gives the pairing server the coordinator's state and writes.
type authority struct{ a *Agent }

var _ pairing.Authority = (*authority)(nil)

func (au *authority) Ticket(slot byte) (ca.Ticket, bool) {
	var t ca.Ticket
	var ok bool
	au.a.fsm.Read(func(s *control.State) {
		if p, found := s.TicketBySlot(slot); found {
			t, ok = *p, true
		}
	})
	return t, ok
}

func (au *authority) CheckRate(now time.Time) error {
	var err error
	au.a.fsm.Read(func(s *control.State) { err = s.PairFailures.Allow(now) })
	return err
}

func (au *authority) Fail(ctx context.Context, ticketID string) (control.PairFailResult, error) {
	res, err := au.a.apply(ctx, control.OpPairFail, control.PairFail{Ticket: ticketID})
	if err != nil {
		return control.PairFailResult{}, err
	}
	r, _ := res.(control.PairFailResult)
	return r, nil
}

func (au *authority) Park(ctx context.Context, p control.Pending) error {
	_, err := au.a.apply(ctx, control.OpPairPending, control.PairPending{Pending: p})
	return err
}

func (au *authority) Decision(ctx context.Context, name string) (bool, error) {
	for {
		changed := au.a.fsm.Changed()
		var decision string
		var present bool
		au.a.fsm.Read(func(s *control.State) {
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

func (au *authority) Abandon(ctx context.Context, name string) error {
	_, err := au.a.apply(ctx, control.OpPairAbandon, control.PairAbandon{Name: name})
	return err
}

func (au *authority) Complete(ctx context.Context, ticketID string, n control.Node) error {
	_, err := au.a.apply(ctx, control.OpPairComplete, control.PairComplete{Ticket: ticketID, Node: n})
	return err
}

func (au *authority) NameTaken(name, peerID string) bool {
	taken := false
	au.a.fsm.Read(func(s *control.State) {
		if n, ok := s.Nodes[name]; ok && n.PeerID != peerID {
			taken = true
		}
		if p, ok := s.Pending[name]; ok && p.PeerID != peerID && p.Decision != "rejected" {
			taken = true
		}
	})
	return taken
}

func (au *authority) Issue(pub ed25519.PublicKey, name string, roles []string) (*ca.Certificate, error) {
	signer, err := au.a.signer()
	if err != nil {
		return nil, err
	}
	return signer.Issue(time.Now(), pub, name, roles, au.a.cfg.CertLifetime, nil)
}

func (au *authority) Bundle() (string, string, []string) {
	self := []string{}
	for _, s := range au.a.currentMeta().Addrs {
		self = append(self, s+"/p2p/"+au.a.host.ID().String())
	}
	return au.a.id.mesh.MeshID, string(au.a.id.ca.CertPEM()), append(self, au.a.memberAddrs(16)...)
}
