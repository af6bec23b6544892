package control

import (
	"time"

	"github.com/palyra-mesh/palyra/ca"
)

// Node is one member in the registry.
type Node struct {
	Name          string    `json:"name"`
	PeerID        string    `json:"peer_id"`
	Roles         []string  `json:"roles"`
	CertPEM       string    `json:"certificate_pem"`
	Serial        string    `json:"serial"`
	CertExpiresAt time.Time `json:"cert_expires_at"`
	JoinedAt      time.Time `json:"joined_at"`
	// Ticket is the pairing ticket the node joined with ("" for the founder).
	Ticket string `json:"ticket,omitempty"`
	// RelayedBy is the member that relayed the node's pairing exchange.
	RelayedBy string `json:"relayed_by,omitempty"`
	Revoked   bool   `json:"revoked"`
}

// Pending is a join waiting for an operator's approval.
type Pending struct {
	Name      string    `json:"name"`
	PeerID    string    `json:"peer_id"`
	Ticket    string    `json:"ticket"`
	RelayedBy string    `json:"relayed_by"`
	Since     time.Time `json:"since"`
	// Decision is "", "approved" or "rejected".
	Decision string `json:"decision,omitempty"`
}

// State is the whole replicated state. It is owned by FSM; readers get
// copies through FSM.Read.
type State struct {
	MeshID    string `json:"mesh_id"`
	CACertPEM string `json:"ca_cert_pem"`
	// CAKeyPEM is the CA's private key, replicated so any voter that becomes
	// coordinator can sign. It is never served by any API.
	CAKeyPEM     string                `json:"ca_key_pem"`
	Nodes        map[string]*Node      `json:"nodes"`
	Tickets      map[string]*ca.Ticket `json:"tickets"`
	Pending      map[string]*Pending   `json:"pending"`
	PairFailures ca.FailureWindow      `json:"pair_failures"`
	// Revocations is the signed list of revoked peer IDs, re-signed by
	// every voter identically (Ed25519 is deterministic) as it applies a
	// revocation.
	Revocations ca.RevocationList `json:"revocations"`
}

func newState() *State {
	return &State{
		Nodes:   make(map[string]*Node),
		Tickets: make(map[string]*ca.Ticket),
		Pending: make(map[string]*Pending),
	}
}

// NodeByPeer finds a node by peer ID.
func (s *State) NodeByPeer(id string) (*Node, bool) {
	for _, n := range s.Nodes {
		if n.PeerID == id {
			return n, true
		}
	}
	return nil, false
}

// TicketBySlot returns the newest ticket whose PIN starts with digit slot.
// The first PIN digit selects the ticket for the key exchange: see
// pairing's package doc for why this costs no security.
func (s *State) TicketBySlot(slot byte) (*ca.Ticket, bool) {
	var best *ca.Ticket
	for _, t := range s.Tickets {
		if len(t.PIN) > 0 && t.PIN[0] == slot && (best == nil || t.CreatedAt.After(best.CreatedAt)) {
			best = t
		}
	}
	return best, best != nil
}

// OpenSlots reports which first digits are taken by active tickets.
func (s *State) OpenSlots(now time.Time) map[byte]bool {
	taken := make(map[byte]bool)
	for _, t := range s.Tickets {
		if len(t.PIN) > 0 && (t.Usable(now) == nil || t.State == ca.TicketPending) {
			taken[t.PIN[0]] = true
		}
	}
	return taken
}

// PickSlot chooses the first PIN digit of a new ticket: never one an open
// ticket holds, and preferably one no unexpired ticket holds, so a used or
// burned PIN typed again still meets its own ticket and gets told so. rnd
// returns a uniform integer in [0, n). ok is false when all ten are open.
func (s *State) PickSlot(now time.Time, rnd func(n int) int) (slot byte, ok bool) {
	open := s.OpenSlots(now)
	ended := make(map[byte]bool)
	for _, t := range s.Tickets {
		if len(t.PIN) > 0 && now.Before(t.ExpiresAt) {
			ended[t.PIN[0]] = true
		}
	}
	var free, reusable []byte
	for d := byte('0'); d <= '9'; d++ {
		switch {
		case open[d]:
		case ended[d]:
			reusable = append(reusable, d)
		default:
			free = append(free, d)
		}
	}
	if len(free) == 0 {
		free = reusable
	}
	if len(free) == 0 {
		return 0, false
	}
	return free[rnd(len(free))], true
}
