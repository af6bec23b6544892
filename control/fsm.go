package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/palyra-mesh/palyra/ca"
)

// Op names a command.
type Op string

// The commands. Each payload is documented on its struct.
const (
	OpInit         Op = "mesh.init"
	OpTicketCreate Op = "ticket.create"
	OpPairFail     Op = "pair.fail"
	OpPairPending  Op = "pair.pending"
	OpPairDecide   Op = "pair.decide"
	OpPairAbandon  Op = "pair.abandon"
	OpNodeRevoke   Op = "node.revoke"
	OpCertRenew    Op = "cert.renew"
	OpPairComplete Op = "pair.complete"
)

// Command is one entry of the raft log.
type Command struct {
	Op Op              `json:"op"`
	At time.Time       `json:"at"`
	V  json.RawMessage `json:"v"`
}

// Init creates the mesh: CA and the founding node.
type Init struct {
	MeshID    string `json:"mesh_id"`
	CACertPEM string `json:"ca_cert_pem"`
	CAKeyPEM  string `json:"ca_key_pem"`
	Node      Node   `json:"node"`
}

// PairFail records a wrong PIN: against the ticket when one was selected,
// and always in the mesh-wide failure window.
type PairFail struct {
	Ticket string `json:"ticket,omitempty"`
}

// PairFailResult tells the pairing side what the failure did.
type PairFailResult struct {
	Burned       bool `json:"burned"`
	AttemptsLeft int  `json:"attempts_left"`
}

// PairPending parks a join until an operator decides.
type PairPending struct {
	Pending Pending `json:"pending"`
}

// PairDecide approves or rejects a pending join by node name.
type PairDecide struct {
	Name    string `json:"name"`
	Approve bool   `json:"approve"`
}

// PairAbandon frees a parked join whose joiner left: the pending record
// goes and its ticket is active again (until it expires).
type PairAbandon struct {
	Name string `json:"name"`
}

// NodeRevoke revokes a node's identity (its peer ID) for good.
type NodeRevoke struct {
	Name string `json:"name"`
}

// CertRenew records a node's renewed certificate.
type CertRenew struct {
	Name      string    `json:"name"`
	PeerID    string    `json:"peer_id"`
	CertPEM   string    `json:"certificate_pem"`
	Serial    string    `json:"serial"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PairComplete registers a paired node and uses up its ticket.
type PairComplete struct {
	Ticket string `json:"ticket"`
	Node   Node   `json:"node"`
}

// Errors returned by Apply.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")
	ErrBadCmd    = errors.New("bad command")
	ErrNoTickets = errors.New("too many open pairing tickets")
	// ErrNameTaken and ErrRevoked are the conflicts a joiner must be told
	// apart (both match ErrConflict too).
	ErrNameTaken = fmt.Errorf("%w: name taken", ErrConflict)
	ErrRevoked   = fmt.Errorf("%w: revoked", ErrConflict)
)

// NewCommand encodes a command for raft.Apply.
func NewCommand(op Op, at time.Time, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(Command{Op: op, At: at, V: b})
}

// FSM applies commands to State. Apply, Snapshot and Restore are called by
// raft (one at a time); Read and Changed are safe from any goroutine.
type FSM struct {
	mu      sync.RWMutex
	st      *State
	changed chan struct{}
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM holding an empty state.
func NewFSM() *FSM {
	return &FSM{st: newState(), changed: make(chan struct{})}
}

// Reset empties the state, before raft starts afresh on this node (the
// leader then sends a snapshot or the whole log).
func (f *FSM) Reset() {
	f.mu.Lock()
	f.st = newState()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Read calls f with the current state under a read lock; f must not keep
// references into it or modify it.
func (f *FSM) Read(fn func(*State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.st)
}

// Changed returns a channel closed at the next applied change.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// Apply applies one raft log entry. It returns the command's result or an
// error value (raft hands either back through ApplyFuture.Response).
func (f *FSM) Apply(l *raft.Log) any {
	var c Command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCmd, err)
	}
	f.mu.Lock()
	defer func() {
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
	}()
	res, err := f.apply(c)
	if err != nil {
		return err
	}
	return res
}

func decode[T any](c Command) (T, error) {
	var v T
	if err := json.Unmarshal(c.V, &v); err != nil {
		return v, fmt.Errorf("%w: %s: %w", ErrBadCmd, c.Op, err)
	}
	return v, nil
}

func (f *FSM) apply(c Command) (any, error) {
	st := f.st
	switch c.Op {
	case OpInit:
		v, err := decode[Init](c)
		if err != nil {
			return nil, err
		}
		if st.MeshID != "" {
			return nil, fmt.Errorf("%w: mesh already initialised", ErrConflict)
		}
		st.MeshID, st.CACertPEM, st.CAKeyPEM = v.MeshID, v.CACertPEM, v.CAKeyPEM
		n := v.Node
		st.Nodes[n.Name] = &n
		return nil, nil

	case OpTicketCreate:
		t, err := decode[ca.Ticket](c)
		if err != nil {
			return nil, err
		}
		if len(t.PIN) == 0 || st.OpenSlots(c.At)[t.PIN[0]] {
			return nil, fmt.Errorf("%w: PIN slot taken", ErrConflict)
		}
		st.Tickets[t.ID] = &t
		f.prune(c.At)
		return nil, nil

	case OpPairFail:
		v, err := decode[PairFail](c)
		if err != nil {
			return nil, err
		}
		st.PairFailures.Record(c.At)
		var res PairFailResult
		if t, ok := st.Tickets[v.Ticket]; ok {
			res.Burned = t.RecordFailure()
			res.AttemptsLeft = t.AttemptsLeft()
		}
		return res, nil

	case OpPairPending:
		v, err := decode[PairPending](c)
		if err != nil {
			return nil, err
		}
		t, ok := st.Tickets[v.Pending.Ticket]
		if !ok {
			return nil, fmt.Errorf("%w: ticket", ErrNotFound)
		}
		if n, taken := st.Nodes[v.Pending.Name]; taken && n.PeerID != v.Pending.PeerID {
			return nil, fmt.Errorf("%w: node name %q is taken", ErrNameTaken, v.Pending.Name)
		}
		if st.Revocations.Revoked(v.Pending.PeerID) {
			return nil, fmt.Errorf("%w: peer %s is revoked", ErrRevoked, v.Pending.PeerID)
		}
		if !t.RequireApproval {
			return nil, fmt.Errorf("%w: ticket %s does not need approval", ErrConflict, t.ID)
		}
		if err := t.Redeem(c.At, v.Pending.Name, v.Pending.PeerID, v.Pending.RelayedBy); err != nil {
			return nil, err
		}
		p := v.Pending
		p.Since = c.At
		st.Pending[p.Name] = &p
		return nil, nil

	case OpPairDecide:
		v, err := decode[PairDecide](c)
		if err != nil {
			return nil, err
		}
		p, ok := st.Pending[v.Name]
		if !ok || p.Decision != "" {
			return nil, fmt.Errorf("%w: no join of %q waits for approval", ErrNotFound, v.Name)
		}
		if v.Approve {
			p.Decision = "approved"
		} else {
			p.Decision = "rejected"
			if t, ok := st.Tickets[p.Ticket]; ok {
				if err := t.Reject(); err != nil {
					return nil, err
				}
			}
		}
		return nil, nil

	case OpPairAbandon:
		v, err := decode[PairAbandon](c)
		if err != nil {
			return nil, err
		}
		p, ok := st.Pending[v.Name]
		if !ok {
			return nil, nil
		}
		delete(st.Pending, v.Name)
		if t, ok := st.Tickets[p.Ticket]; ok && t.State == ca.TicketPending {
			t.State = ca.TicketActive
			t.UsedAt, t.UsedBy, t.UsedByPeer, t.RelayedBy = time.Time{}, "", "", ""
		}
		return nil, nil

	case OpNodeRevoke:
		v, err := decode[NodeRevoke](c)
		if err != nil {
			return nil, err
		}
		n, ok := st.Nodes[v.Name]
		if !ok {
			return nil, fmt.Errorf("%w: no node named %q", ErrNotFound, v.Name)
		}
		if n.Revoked {
			return nil, nil
		}
		authority, err := ca.Load([]byte(st.CACertPEM), []byte(st.CAKeyPEM))
		if err != nil {
			return nil, fmt.Errorf("revoke %q: %w", v.Name, err)
		}
		l, err := authority.Revoke(st.Revocations, n.PeerID)
		if err != nil {
			return nil, fmt.Errorf("revoke %q: %w", v.Name, err)
		}
		st.Revocations = l
		n.Revoked = true
		return nil, nil

	case OpCertRenew:
		v, err := decode[CertRenew](c)
		if err != nil {
			return nil, err
		}
		n, ok := st.Nodes[v.Name]
		if !ok || n.PeerID != v.PeerID {
			return nil, fmt.Errorf("%w: no node %q with that peer", ErrNotFound, v.Name)
		}
		if n.Revoked {
			return nil, fmt.Errorf("%w: %q is revoked", ErrRevoked, v.Name)
		}
		n.CertPEM, n.Serial, n.CertExpiresAt = v.CertPEM, v.Serial, v.ExpiresAt
		return nil, nil

	case OpPairComplete:
		v, err := decode[PairComplete](c)
		if err != nil {
			return nil, err
		}
		t, ok := st.Tickets[v.Ticket]
		if !ok {
			return nil, fmt.Errorf("%w: ticket", ErrNotFound)
		}
		if old, taken := st.Nodes[v.Node.Name]; taken && old.PeerID != v.Node.PeerID {
			return nil, fmt.Errorf("%w: node name %q is taken", ErrNameTaken, v.Node.Name)
		}
		if st.Revocations.Revoked(v.Node.PeerID) {
			return nil, fmt.Errorf("%w: peer %s is revoked", ErrRevoked, v.Node.PeerID)
		}
		if p, ok := st.Pending[v.Node.Name]; ok && p.Ticket == t.ID {
			if p.Decision != "approved" {
				return nil, fmt.Errorf("%w: join of %q is not approved", ErrConflict, v.Node.Name)
			}
			if err := t.Approve(); err != nil {
				return nil, err
			}
			delete(st.Pending, v.Node.Name)
		} else if t.RequireApproval {
			return nil, fmt.Errorf("%w: ticket %s needs an operator's approval", ErrConflict, t.ID)
		} else if err := t.Redeem(c.At, v.Node.Name, v.Node.PeerID, v.Node.RelayedBy); err != nil {
			return nil, err
		}
		n := v.Node
		n.JoinedAt = c.At
		st.Nodes[n.Name] = &n
		return nil, nil
	}
	return nil, fmt.Errorf("%w: unknown op %q", ErrBadCmd, c.Op)
}

// prune forgets tickets that ended more than a day ago and rejected joins
// as old, so the state does not grow without bound; the record of who used
// a ticket stays on the node.
func (f *FSM) prune(now time.Time) {
	for id, t := range f.st.Tickets {
		if now.Sub(t.ExpiresAt) > 24*time.Hour {
			delete(f.st.Tickets, id)
		}
	}
	for name, p := range f.st.Pending {
		if p.Decision == "rejected" && now.Sub(p.Since) > 24*time.Hour {
			delete(f.st.Pending, name)
		}
	}
}

// Snapshot returns a point-in-time copy for raft to persist.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.st)
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

// Restore replaces the state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st := newState()
	if err := json.NewDecoder(rc).Decode(st); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	// A snapshot is trusted input, but a null entry would crash a later
	// Apply: drop them.
	maps.DeleteFunc(st.Nodes, func(_ string, n *Node) bool { return n == nil })
	maps.DeleteFunc(st.Tickets, func(_ string, t *ca.Ticket) bool { return t == nil })
	maps.DeleteFunc(st.Pending, func(_ string, p *Pending) bool { return p == nil })
	if st.Nodes == nil {
		st.Nodes = make(map[string]*Node)
	}
	if st.Tickets == nil {
		st.Tickets = make(map[string]*ca.Ticket)
	}
	if st.Pending == nil {
		st.Pending = make(map[string]*Pending)
	}
	f.mu.Lock()
	f.st = st
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}
