// Package ca is the trust root of a palyra mesh: the mesh certificate
// authority, node certificates bound to libp2p keys, the PIN-authenticated
// key exchange that admits a new node, and the pairing tickets behind the
// PIN.
//
// The package is pure: it imports the standard library and
// github.com/cloudflare/circl only, opens no sockets, starts no goroutines
// and never reads a clock. Time is always a parameter (Verify(now, …)), and
// randomness is an io.Reader parameter (nil means crypto/rand.Reader), so
// expiry and every refusal are tested without sleeping.
//
// # Certificates
//
// The mesh CA is a self-signed Ed25519 X.509 CA (CN "palyra mesh CA
// <mesh-id>", path length 0, key usage CertSign, subject key ID = first 20
// bytes of SHA-256 of its key). A node certificate is an X.509 certificate
// whose subject key is the node's Ed25519 libp2p identity key, so that
// "certificate pinned to peer ID" is a check anyone can do: the caller
// derives the peer ID from Certificate.PublicKey and compares it with the
// authenticated remote peer (this package never imports libp2p; CA.Verify
// compares raw keys when given the remote key). A node certificate carries:
//
//   - subject CN: the node name (ValidName: 1–63 of [a-zA-Z0-9._-], starting
//     with a letter or digit);
//   - a random 128-bit serial number;
//   - NotBefore = issue time − 1 minute (clock skew), NotAfter = issue time +
//     lifetime, never beyond the CA's NotAfter;
//   - AuthorityKeyId = the CA's SubjectKeyId, key usage DigitalSignature,
//     extended key usage client and server auth;
//   - the palyra extension, below, with the mesh ID and the node's roles, so
//     any member can authorise a caller without asking the coordinator.
//
// The palyra extension has OID 1.3.6.1.4.1.59999.1.1, is not critical, and
// its value is the DER encoding of
//
//	PalyraMesh ::= SEQUENCE {
//	    version  INTEGER,               -- 1
//	    meshID   UTF8String,            -- ValidMeshID
//	    roles    SEQUENCE OF UTF8String -- ValidRole each, sorted, unique, ≤ 64
//	}
//
// The CA certificate carries it too, with no roles. CA.Verify refuses, each
// with its own sentinel error: a CA certificate or a non-Ed25519 key
// (ErrNotNodeCert), a certificate of another mesh or another CA key
// (ErrOtherMesh), a signature that does not verify, i.e. any change after
// signing (ErrBadSignature), a certificate outside its validity period
// (ErrNotYetValid, ErrExpired), and one whose key is not the peer's
// (ErrKeyMismatch). A joining node proves it holds its key with a PKCS#10
// request (NewCSR, ParseCSR).
//
// # PIN key exchange (CPace)
//
// A new node knows only a short PIN; a member relays its join to the
// coordinator. The two run CPace (after draft-irtf-cfrg-cpace), a balanced
// PAKE, on ristretto255 with circl's hash-to-group:
//
//	g   = HashToElement(lv("CPaceRistretto255") || lv(PRS) || lv(CI) || lv(sid),
//	                    DST "palyra-cpace-v1")
//	Ya  = ya·g  (initiator, the new node)     Yb = yb·g  (responder, the coordinator)
//	K   = ya·Yb = yb·Ya
//	ISK = SHA-512(lv("palyra-cpace-isk") || lv(sid) || lv(K) || lv(Ya) || lv(Yb))[:32]
//
// where lv(x) = uvarint(len(x)) || x, PRS is the PIN, CI binds the
// identities of the run (e.g. mesh ID and the new node's peer ID) and sid is
// a fresh session ID. Shares that are not canonical, non-identity elements
// are refused (ErrInvalidShare). The ISK then authenticates the CSR and the
// returned bundle with Tag (HMAC-SHA-256, one label per message).
//
// Why it resists offline guessing and a fake member: Ya and Yb are uniformly
// random group elements whatever the PIN, since ya and yb are; a relay that
// records them, and even the tags made with the ISK, cannot test a PIN guess
// without computing K for the guessed generator, which is the
// Diffie-Hellman problem. The only way to test a guess is to run the
// exchange against the coordinator (one guess per run), and those runs are
// counted: MaxPINFailures per ticket, then it is burned, plus a mesh-wide
// FailureWindow. A fake member that impersonates the coordinator gets one
// guess per attempt of the new node and, without the ISK, cannot tag a
// bundle, so it can neither learn the PIN nor hand the new node a fake CA.
//
// # Pairing tickets
//
// A Ticket (NewTicket) holds a random ID, a 6-digit PIN (NewPIN: uniform,
// by rejection sampling), the roles granted, a TTL (default 10 minutes,
// clamped to [30s, 24h]) and who created it where. Its states:
//
//   - active: the PIN may be tried until ExpiresAt (ErrTicketExpired after);
//   - pending: a node completed the exchange and waits for an operator
//     (RequireApproval; ErrTicketPending);
//   - used: a node joined (ErrTicketUsed);
//   - burned: MaxPINFailures wrong PINs were tried (ErrTicketBurned);
//   - rejected: an operator refused the join (ErrTicketRejected).
//
// Tickets and the FailureWindow are plain JSON data: the caller keeps them in
// replicated state so that counts survive a coordinator failover, and shows
// tickets through Public, which drops the PIN.
package ca
