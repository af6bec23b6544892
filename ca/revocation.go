package ca

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
)

// RevocationList is the mesh's signed, versioned set of revoked node
// identities. A revoked identity is a libp2p peer ID (certificates are pinned
// to it, so every certificate ever issued for that key is revoked with it,
// renewed ones included). The list only grows; each change bumps Version and
// is signed by the CA key, so any member can check a list it receives by
// gossip and keep the newest.
type RevocationList struct {
	MeshID  string   `json:"mesh_id"`
	Version uint64   `json:"version"`
	Peers   []string `json:"peers"`
	// Sig is the CA's Ed25519 signature over the list without Sig.
	Sig []byte `json:"sig,omitempty"`
}

// signedBytes is the canonical encoding the signature covers.
func (l *RevocationList) signedBytes() []byte {
	b, _ := json.Marshal(RevocationList{MeshID: l.MeshID, Version: l.Version, Peers: l.Peers})
	return append([]byte("palyra-revocations-v1\n"), b...)
}

// Revoke returns a copy of l with peer added, the version bumped and the
// signature made with the CA's key. Revoking a listed peer again still bumps
// the version (harmless).
func (c *CA) Revoke(l RevocationList, peer string) (RevocationList, error) {
	if c.Key == nil {
		return RevocationList{}, fmt.Errorf("revoke: %w", ErrNoKey)
	}
	out := RevocationList{MeshID: c.MeshID, Version: l.Version + 1, Peers: slices.Clone(l.Peers)}
	if !slices.Contains(out.Peers, peer) {
		out.Peers = append(out.Peers, peer)
		slices.Sort(out.Peers)
	}
	out.Sig = ed25519.Sign(c.Key, out.signedBytes())
	return out, nil
}

// VerifyRevocations checks that l belongs to this mesh and was signed by its
// CA. The empty list (version 0) needs no signature.
func (c *CA) VerifyRevocations(l RevocationList) error {
	if l.Version == 0 && len(l.Peers) == 0 {
		return nil
	}
	if l.MeshID != c.MeshID {
		return fmt.Errorf("revocation list: %w (its mesh %q, this mesh %q)", ErrOtherMesh, l.MeshID, c.MeshID)
	}
	pub, ok := c.Cert.PublicKey.(ed25519.PublicKey)
	if !ok || !ed25519.Verify(pub, l.signedBytes(), l.Sig) {
		return fmt.Errorf("revocation list version %d: %w", l.Version, ErrBadSignature)
	}
	if !slices.IsSorted(l.Peers) {
		return fmt.Errorf("revocation list version %d: %w: peers not sorted", l.Version, ErrMalformed)
	}
	return nil
}

// Revoked reports whether peer is on the list.
func (l *RevocationList) Revoked(peer string) bool {
	_, found := slices.BinarySearch(l.Peers, peer)
	return found
}

// ParseRevocations decodes a list (it still has to be verified).
func ParseRevocations(b []byte) (RevocationList, error) {
	var l RevocationList
	if err := json.Unmarshal(b, &l); err != nil {
		return RevocationList{}, fmt.Errorf("revocation list: %w: %w", ErrMalformed, err)
	}
	return l, nil
}
