package ca

import "errors"

// Sentinel errors. Functions wrap them with the facts of the case (names,
// mesh IDs, times; never key material or PINs), so callers test with
// errors.Is and show Error() to people.
var (
	// ErrMalformed reports input that does not decode: bad PEM, DER, ASN.1 or
	// an out-of-range field.
	ErrMalformed = errors.New("malformed")

	// ErrInvalidName reports a node name, role or mesh ID outside the allowed
	// alphabet or length (see ValidName).
	ErrInvalidName = errors.New("invalid name")

	// ErrUnsupportedKey reports a key that is not Ed25519.
	ErrUnsupportedKey = errors.New("key is not ed25519")

	// ErrNoKey reports an operation that needs the CA private key on a CA
	// loaded from its certificate only.
	ErrNoKey = errors.New("ca private key not held")

	// ErrWrongKey reports a private key that does not belong to the
	// certificate it was loaded with.
	ErrWrongKey = errors.New("private key does not match the certificate")

	// ErrOtherMesh reports a certificate whose mesh ID or issuing key is not
	// this mesh CA's.
	ErrOtherMesh = errors.New("certificate is from another mesh's CA")

	// ErrBadSignature reports a certificate or CSR whose signature does not
	// verify: it was tampered with after signing.
	ErrBadSignature = errors.New("signature does not verify")

	// ErrExpired reports a certificate used after its NotAfter.
	ErrExpired = errors.New("certificate expired")

	// ErrNotYetValid reports a certificate used before its NotBefore.
	ErrNotYetValid = errors.New("certificate not yet valid")

	// ErrKeyMismatch reports a certificate presented by a peer whose
	// transport key is not the certificate's subject key.
	ErrKeyMismatch = errors.New("certificate key is not the peer's key")

	// ErrNotNodeCert reports a certificate that cannot identify a node: a CA
	// certificate, or one whose subject key is not Ed25519.
	ErrNotNodeCert = errors.New("not a node certificate")

	// ErrInvalidShare reports a CPace share that is not the encoding of a
	// non-identity ristretto255 element.
	ErrInvalidShare = errors.New("invalid key exchange share")

	// ErrSessionDone reports a second Finish on the same CPace initiator.
	ErrSessionDone = errors.New("key exchange already finished")

	// ErrInvalidPIN reports a PIN that is not PINLength decimal digits.
	ErrInvalidPIN = errors.New("invalid PIN")

	// ErrTicketExpired reports a pairing ticket past its ExpiresAt.
	ErrTicketExpired = errors.New("PIN expired")

	// ErrTicketUsed reports a pairing ticket that already admitted a node.
	ErrTicketUsed = errors.New("PIN already used")

	// ErrTicketBurned reports a pairing ticket destroyed by too many wrong
	// attempts.
	ErrTicketBurned = errors.New("PIN burned")

	// ErrTicketRejected reports a pairing ticket whose join an operator
	// refused.
	ErrTicketRejected = errors.New("PIN rejected by an operator")

	// ErrTicketPending reports a pairing ticket whose join waits for an
	// operator's approval.
	ErrTicketPending = errors.New("PIN is waiting for operator approval")

	// ErrTicketState reports a ticket transition that its current state does
	// not allow, or a state this package does not know.
	ErrTicketState = errors.New("invalid ticket state")

	// ErrTooManyAttempts reports the mesh-wide limit on failed PIN attempts.
	ErrTooManyAttempts = errors.New("too many failed PIN attempts in the mesh")
)
