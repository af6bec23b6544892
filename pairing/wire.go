package pairing

import (
	"encoding/json"
	"fmt"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// Protocol is what a joiner opens on any member.
const Protocol = protocol.ID("/palyra/pair/1.0.0")

// RelayProtocol is what a member opens on the coordinator to relay a joiner.
const RelayProtocol = protocol.ID("/palyra/pair-relay/1.0.0")

// Version is the version of the messages below.
const Version = 1

// maxMsg bounds every pairing message; a bundle with its certificates and
// peer list fits easily.
const maxMsg = 64 << 10

// cpaceCI is CPace's channel identifier: it binds the exchange to palyra's
// pairing protocol and version.
var cpaceCI = []byte("palyra-pair-v1")

// Hello opens the exchange.
type Hello struct {
	V     int    `json:"v"`
	Slot  string `json:"slot"`
	SID   []byte `json:"sid"`
	Share []byte `json:"share"`
}

// Challenge is the coordinator's CPace share.
type Challenge struct {
	Share []byte `json:"share"`
	Error *Error `json:"error,omitempty"`
}

// Confirm carries the joiner's CSR, authenticated with the exchanged key.
type Confirm struct {
	CSR []byte `json:"csr"`
	Tag []byte `json:"tag"`
}

// Result ends the exchange (or says it is pending approval).
type Result struct {
	Pending bool   `json:"pending,omitempty"`
	Error   *Error `json:"error,omitempty"`
	// Bundle is the JSON encoding of a Bundle; kept as bytes so the tag
	// covers exactly what was sent.
	Bundle []byte `json:"bundle,omitempty"`
	Tag    []byte `json:"tag,omitempty"`
}

// RelayHeader is the first message a member sends on RelayProtocol.
type RelayHeader struct {
	V      int    `json:"v"`
	Joiner string `json:"joiner"`
}

// Bundle is what a joiner receives: everything it needs to run as a member.
type Bundle struct {
	MeshID    string   `json:"mesh_id"`
	Name      string   `json:"name"`
	CACertPEM string   `json:"ca_cert_pem"`
	CertPEM   string   `json:"cert_pem"`
	Roles     []string `json:"roles"`
	// Peers are members' multiaddrs ending in /p2p/PEER_ID.
	Peers []string `json:"peers"`
}

// Error codes a pairing can end with.
const (
	CodeWrongPIN    = "wrong_pin"
	CodeExpired     = "expired"
	CodeUsed        = "used"
	CodeBurned      = "burned"
	CodeRejected    = "rejected"
	CodeRateLimited = "rate_limited"
	CodeNameTaken   = "name_taken"
	CodeRevoked     = "revoked"
	CodeBadRequest  = "bad_request"
	CodeUnavailable = "unavailable"
)

// Error is a pairing refusal. It is final: trying another member with the
// same PIN will not help.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return "pairing failed: " + e.Message }

// Is lets errors.Is match on the code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// decodeBundle parses a bundle, refusing one that lacks a required field.
func decodeBundle(b []byte) (*Bundle, error) {
	var bu Bundle
	if err := json.Unmarshal(b, &bu); err != nil {
		return nil, fmt.Errorf("decode bundle: %w", err)
	}
	if bu.MeshID == "" || bu.CACertPEM == "" || bu.CertPEM == "" || bu.Name == "" {
		return nil, fmt.Errorf("decode bundle: missing fields")
	}
	return &bu, nil
}
