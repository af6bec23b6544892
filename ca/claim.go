package ca

import (
	"crypto/ed25519"
	"fmt"
	"strconv"
)

// A coordinator claim is the CA's signature saying that a peer leads the
// mesh's raft at a term. Only voters hold the CA key (in the replicated
// state), so members that run no raft can tell the coordinator announced in
// gossip metadata, which any member could otherwise claim to be.

// claimBytes is what a coordinator claim signs.
func (c *CA) claimBytes(peer string, term uint64) []byte {
	return []byte("palyra-coordinator-v1\n" + c.MeshID + "\n" + peer + "\n" + strconv.FormatUint(term, 10))
}

// SignCoordinator signs the claim that peer is the coordinator at term.
func (c *CA) SignCoordinator(peer string, term uint64) ([]byte, error) {
	if c.Key == nil {
		return nil, fmt.Errorf("sign coordinator claim: %w", ErrNoKey)
	}
	return ed25519.Sign(c.Key, c.claimBytes(peer, term)), nil
}

// VerifyCoordinator checks a claim made by SignCoordinator.
func (c *CA) VerifyCoordinator(peer string, term uint64, sig []byte) error {
	pub, ok := c.Cert.PublicKey.(ed25519.PublicKey)
	if !ok || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, c.claimBytes(peer, term), sig) {
		return fmt.Errorf("coordinator claim of %s at term %d: %w", peer, term, ErrBadSignature)
	}
	return nil
}
