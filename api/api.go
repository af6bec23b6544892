// Package api holds the JSON documents of palyra's HTTP control-plane API
// (/api/v1), shared by the agent that serves them and the client that reads
// them. CLI.md is the user-facing contract these types keep.
package api

import "time"

// Status is the answer of GET /api/v1/status.
type Status struct {
	MeshID      string       `json:"mesh_id"`
	Self        NodeRef      `json:"self"`
	Coordinator *NodeRef     `json:"coordinator"`
	Term        uint64       `json:"term"`
	Quorum      bool         `json:"quorum"`
	Members     []MemberView `json:"members"`
	Warnings    []string     `json:"warnings,omitempty"`
}

// NodeRef names a node.
type NodeRef struct {
	Name   string `json:"name"`
	PeerID string `json:"peer_id"`
}

// MemberView is one member in Status, as gossip shows it.
type MemberView struct {
	Name         string   `json:"name"`
	PeerID       string   `json:"peer_id"`
	State        string   `json:"state"`
	Coordinator  bool     `json:"coordinator"`
	Voter        bool     `json:"voter"`
	Addrs        []string `json:"addrs"`
	Capabilities []string `json:"capabilities"`
	Version      string   `json:"version"`
	// Revoked: this member's identity is revoked; it is cut off.
	Revoked bool `json:"revoked"`
}

// Node is one node of the registry (GET /api/v1/nodes[/NAME]).
type Node struct {
	Name          string    `json:"name"`
	PeerID        string    `json:"peer_id"`
	State         string    `json:"state"`
	Roles         []string  `json:"roles"`
	Revoked       bool      `json:"revoked"`
	CertExpiresAt time.Time `json:"cert_expires_at,omitzero"`
	JoinedAt      time.Time `json:"joined_at,omitzero"`
	RelayedBy     string    `json:"relayed_by,omitempty"`
	Ticket        string    `json:"ticket,omitempty"`
	Addrs         []string  `json:"addrs"`
	Version       string    `json:"version,omitempty"`
	// CertPEM is set by GET /api/v1/nodes/NAME only.
	CertPEM string `json:"certificate_pem,omitempty"`
	// Warnings say why the answer may be stale (no coordinator reachable).
	Warnings []string `json:"warnings,omitempty"`
}

// NodeList is the answer of GET /api/v1/nodes.
type NodeList struct {
	Nodes []Node `json:"nodes"`
	// Warnings say why the answer may be stale (no coordinator reachable).
	Warnings []string `json:"warnings,omitempty"`
}

// Decision is the answer of approving or rejecting a pending join.
type Decision struct {
	Name     string `json:"name"`
	Decision string `json:"decision"`
}

// TicketRequest is the body of POST /api/v1/pairing/tickets.
type TicketRequest struct {
	TTL             string   `json:"ttl,omitempty"`
	Roles           []string `json:"roles,omitempty"`
	RequireApproval bool     `json:"require_approval,omitempty"`
}

// Ticket answers it; the PIN appears here and nowhere else.
type Ticket struct {
	PIN       string    `json:"pin"`
	ExpiresAt time.Time `json:"expires_at"`
	JoinCode  string    `json:"join_code"`
	Roles     []string  `json:"roles"`
	// Peers are addresses of the member that took the request.
	Peers []string `json:"peers"`
}

// TicketRecord is a pairing ticket as listings show it: who created it,
// where, who relayed and used it. Never the PIN.
type TicketRecord struct {
	ID              string    `json:"id"`
	State           string    `json:"state"`
	Roles           []string  `json:"roles"`
	RequireApproval bool      `json:"require_approval"`
	CreatedAt       time.Time `json:"created_at"`
	ExpiresAt       time.Time `json:"expires_at"`
	CreatedBy       string    `json:"created_by"`
	CreatedOn       string    `json:"created_on"`
	Failures        int       `json:"failures"`
	UsedAt          time.Time `json:"used_at,omitzero"`
	UsedBy          string    `json:"used_by,omitempty"`
	RelayedBy       string    `json:"relayed_by,omitempty"`
}

// TicketList is the answer of GET /api/v1/pairing/tickets.
type TicketList struct {
	Tickets []TicketRecord `json:"tickets"`
	// Warnings say why the answer may be stale (no coordinator reachable).
	Warnings []string `json:"warnings,omitempty"`
}

// Error is the body of every error answer: {"error": {...}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// ErrorBody wraps Error on the wire.
type ErrorBody struct {
	Error *Error `json:"error"`
}
