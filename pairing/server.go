package pairing

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/mesh"
)

// Authority is what the coordinator side needs from the coordinator: read
// tickets, write through raft, sign. Implementations must be safe for
// concurrent use; the write methods block until the change is committed.
type Authority interface {
	// Ticket returns a copy of the newest ticket whose PIN starts with slot.
	Ticket(slot byte) (ca.Ticket, bool)
	// CheckRate fails when the mesh-wide failure window is full.
	CheckRate(now time.Time) error
	// Fail records a wrong PIN (ticketID may be "").
	Fail(ctx context.Context, ticketID string) (control.PairFailResult, error)
	// Park records a join waiting for approval; Decision blocks until an
	// operator decides (true = approved) or ctx ends.
	Park(ctx context.Context, p control.Pending) error
	Decision(ctx context.Context, name string) (bool, error)
	// Abandon frees a parked join whose joiner left or timed out: the
	// pending record goes and the ticket is usable again until it expires.
	Abandon(ctx context.Context, name string) error
	// Complete registers the node and uses up the ticket.
	Complete(ctx context.Context, ticketID string, n control.Node) error
	// NameTaken reports whether another peer already has this name.
	NameTaken(name, peerID string) bool
	// Issue signs a node certificate.
	Issue(pub ed25519.PublicKey, name string, roles []string) (*ca.Certificate, error)
	// Bundle returns the mesh ID, CA certificate and member addresses.
	Bundle() (meshID, caCertPEM string, peers []string)
}

// Server is the coordinator's side of the exchange.
type Server struct {
	Authority Authority
	Now       func() time.Time
	Logger    *slog.Logger
	// ApprovalTimeout bounds the wait for an operator (default 10 min).
	ApprovalTimeout time.Duration
}

// Serve runs one exchange with the joiner on rw. joiner is the peer ID the
// joiner connected with (the certificate is pinned to it); relayedBy names
// the member that took the joiner's connection.
func (s *Server) Serve(ctx context.Context, rw io.ReadWriter, joiner peer.ID, relayedBy string) error {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	log := s.Logger.With("component", "pairing", "peer", joiner, "relay", relayedBy)
	var hello Hello
	if err := mesh.ReadMsg(rw, maxMsg, &hello); err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	fail := func(e *Error) error {
		_ = mesh.WriteMsg(rw, Challenge{Error: e})
		return e
	}
	if hello.V != Version || len(hello.Slot) != 1 || hello.Slot[0] < '0' || hello.Slot[0] > '9' || len(hello.SID) < 16 || len(hello.SID) > 64 {
		return fail(&Error{Code: CodeBadRequest, Message: "malformed pairing hello (version or fields)"})
	}
	if err := s.Authority.CheckRate(s.Now()); err != nil {
		return fail(&Error{Code: CodeRateLimited, Message: err.Error()})
	}
	t, found := s.Authority.Ticket(hello.Slot[0])
	prs := []byte(t.PIN)
	if !found {
		// A decoy secret: the exchange runs as usual and ends in a wrong PIN.
		prs = make([]byte, 32)
		_, _ = rand.Read(prs)
	}
	yb, isk, err := ca.Respond(prs, cpaceCI, hello.SID, hello.Share, nil)
	if err != nil {
		return fail(&Error{Code: CodeBadRequest, Message: "invalid key share"})
	}
	if err := mesh.WriteMsg(rw, Challenge{Share: yb}); err != nil {
		return err
	}
	var conf Confirm
	if err := mesh.ReadMsg(rw, maxMsg, &conf); err != nil {
		return fmt.Errorf("read confirm: %w", err)
	}
	result := func(e *Error) error {
		_ = mesh.WriteMsg(rw, Result{Error: e})
		return e
	}
	if !ca.CheckTag(isk, conf.Tag, "palyra-pair-confirm", hello.SID, hello.Share, yb, conf.CSR) {
		id := ""
		if found {
			id = t.ID
		}
		res, err := s.Authority.Fail(ctx, id)
		if err != nil {
			// The same answer as a right PIN whose completion cannot be
			// committed: an unrecorded guess must not learn whether it was right.
			log.Warn("could not record a wrong PIN", "err", err)
			return result(errNoCommit)
		}
		log.Info("wrong PIN", "burned", res.Burned)
		msg := "wrong PIN"
		switch {
		case res.Burned:
			msg = fmt.Sprintf("wrong PIN; the PIN is now burned after %d wrong attempts", ca.MaxPINFailures)
		case found && t.Usable(s.Now()) == nil:
			msg = fmt.Sprintf("wrong PIN (%d attempts left)", res.AttemptsLeft)
		}
		return result(&Error{Code: CodeWrongPIN, Message: msg})
	}
	// The joiner knows the PIN: it may learn the ticket's state.
	if err := t.Usable(s.Now()); err != nil {
		return result(ticketError(err))
	}
	pub, name, err := ca.ParseCSR(conf.CSR)
	if err != nil {
		return result(&Error{Code: CodeBadRequest, Message: "invalid certificate request: " + err.Error()})
	}
	if pid, err := mesh.PeerIDFromKey(pub); err != nil || pid != joiner {
		return result(&Error{Code: CodeBadRequest, Message: "certificate request key is not the connecting peer's key"})
	}
	if s.Authority.NameTaken(name, joiner.String()) {
		return result(&Error{Code: CodeNameTaken, Message: fmt.Sprintf("node name %q is already taken in this mesh; pick another with --name", name)})
	}
	if t.RequireApproval {
		p := control.Pending{Name: name, PeerID: joiner.String(), Ticket: t.ID, RelayedBy: relayedBy}
		if err := s.Authority.Park(ctx, p); err != nil {
			return result(applyError(err))
		}
		if err := mesh.WriteMsg(rw, Result{Pending: true}); err != nil {
			return err
		}
		log.Info("join waits for approval", "node", name)
		ok, err := s.awaitDecision(ctx, rw, name)
		if err != nil {
			if aerr := s.Authority.Abandon(ctx, name); aerr != nil {
				log.Warn("abandon parked join", "node", name, "err", aerr)
			}
			return result(&Error{Code: CodeUnavailable, Message: "no decision on the join: " + err.Error()})
		}
		if !ok {
			return result(&Error{Code: CodeRejected, Message: "the join was rejected by an operator"})
		}
	}
	cert, err := s.Authority.Issue(pub, name, t.Roles)
	if err != nil {
		log.Warn("could not sign", "node", name, "err", err)
		return result(errNoCommit)
	}
	node := control.Node{
		Name: name, PeerID: joiner.String(), Roles: cert.Roles, CertPEM: string(cert.PEM()),
		Serial: cert.Serial, CertExpiresAt: cert.NotAfter, Ticket: t.ID, RelayedBy: relayedBy,
	}
	if err := s.Authority.Complete(ctx, t.ID, node); err != nil {
		return result(applyError(err))
	}
	meshID, caPEM, peers := s.Authority.Bundle()
	b, err := json.Marshal(Bundle{MeshID: meshID, Name: name, CACertPEM: caPEM, CertPEM: string(cert.PEM()), Roles: cert.Roles, Peers: peers})
	if err != nil {
		return err
	}
	tag := ca.Tag(isk, "palyra-pair-bundle", hello.SID, hello.Share, yb, b)
	log.Info("node paired", "node", name)
	return mesh.WriteMsg(rw, Result{Bundle: b, Tag: tag})
}

// awaitDecision waits for an operator's decision on a parked join, giving up
// when the joiner goes away (any read on its stream ends) or on timeout.
func (s *Server) awaitDecision(ctx context.Context, rw io.ReadWriter, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.approvalTimeout())
	defer cancel()
	go func() {
		var b [1]byte
		_, _ = rw.Read(b[:]) // the joiner sends nothing more: any return means it left
		cancel()
	}()
	return s.Authority.Decision(ctx, name)
}

func (s *Server) approvalTimeout() time.Duration {
	if s.ApprovalTimeout > 0 {
		return s.ApprovalTimeout
	}
	return 10 * time.Minute
}

// ticketError maps a ticket's refusal to a pairing error.
func ticketError(err error) *Error {
	code := CodeBadRequest
	switch {
	case errors.Is(err, ca.ErrTicketExpired):
		code = CodeExpired
	case errors.Is(err, ca.ErrTicketUsed), errors.Is(err, ca.ErrTicketPending):
		code = CodeUsed
	case errors.Is(err, ca.ErrTicketBurned):
		code = CodeBurned
	case errors.Is(err, ca.ErrTicketRejected):
		code = CodeRejected
	}
	return &Error{Code: code, Message: err.Error()}
}

// errNoCommit is the one answer for every failure to commit or sign, so
// that it tells a guesser nothing about the PIN.
var errNoCommit = &Error{Code: CodeUnavailable, Message: "the mesh cannot record the pairing right now (is a coordinator with quorum reachable?); try again shortly"}

// applyError maps a failed replicated write to a pairing error.
func applyError(err error) *Error {
	switch {
	case errors.Is(err, control.ErrNameTaken):
		return &Error{Code: CodeNameTaken, Message: err.Error() + "; pick another with --name"}
	case errors.Is(err, control.ErrRevoked):
		return &Error{Code: CodeRevoked, Message: "this node's identity is revoked in the mesh"}
	case errors.Is(err, control.ErrConflict):
		return &Error{Code: CodeBadRequest, Message: err.Error()}
	}
	var te *Error
	if errors.As(err, &te) {
		return te
	}
	if e := ticketError(err); e.Code != CodeBadRequest {
		return e
	}
	return errNoCommit
}
