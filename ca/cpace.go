package ca

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cloudflare/circl/group"
)

const (
	// cpaceDST is the hash-to-group domain separation tag of the generator.
	cpaceDST = "palyra-cpace-v1"
	// cpaceScalarDST separates the reduction of random bytes to scalars.
	cpaceScalarDST = "palyra-cpace-v1-scalar"
	// shareLen is the length of an encoded ristretto255 element.
	shareLen = 32
	// iskLen is the length of the intermediate session key.
	iskLen = 32
)

// Initiator is the first party of a CPace exchange (the joining node). It
// holds the secret scalar between NewInitiator and Finish. It is not safe
// for concurrent use.
type Initiator struct {
	ya  group.Scalar // nil once Finish has run
	yaB []byte       // Ya, encoded
	sid []byte
}

// NewInitiator starts a CPace exchange for the password prs (the PIN), the
// channel identifier ci (the identities the key is bound to, e.g. the mesh
// ID and the joining node's peer ID) and the session ID sid (fresh random
// bytes, 16 are enough). It returns the share Ya to send to the responder.
// rand nil means crypto/rand.
func NewInitiator(prs, ci, sid []byte, rand io.Reader) (*Initiator, []byte, error) {
	if len(prs) == 0 {
		return nil, nil, fmt.Errorf("cpace: %w: empty password", ErrInvalidPIN)
	}
	g := cpaceGenerator(prs, ci, sid)
	ya, err := randomScalar(randOrDefault(rand))
	if err != nil {
		return nil, nil, fmt.Errorf("cpace: %w", err)
	}
	yaB, err := group.Ristretto255.NewElement().Mul(g, ya).MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("cpace: encode share: %w", err)
	}
	return &Initiator{ya: ya, yaB: yaB, sid: append([]byte(nil), sid...)}, yaB, nil
}

// Finish takes the responder's share Yb and returns the intermediate session
// key (ISK, 32 bytes). It refuses a share that is not a valid non-identity
// element (ErrInvalidShare). Finish consumes the initiator: the secret
// scalar is dropped and a second call gets ErrSessionDone.
func (i *Initiator) Finish(yb []byte) (isk []byte, err error) {
	if i.ya == nil {
		return nil, fmt.Errorf("cpace: %w", ErrSessionDone)
	}
	ya := i.ya
	defer func() {
		ya.SetUint64(0)
		i.ya = nil
	}()
	ybE, err := decodeShare(yb)
	if err != nil {
		return nil, fmt.Errorf("cpace: responder share: %w", err)
	}
	ybB, err := ybE.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("cpace: encode share: %w", err)
	}
	k := group.Ristretto255.NewElement().Mul(ybE, ya)
	return deriveISK(i.sid, k, i.yaB, ybB)
}

// Respond is the responder's whole side of a CPace exchange (the
// coordinator): given the initiator's share Ya, it returns its own share Yb
// to send back and the ISK. prs, ci and sid must be the initiator's for the
// two ISKs to agree. It refuses an invalid or identity Ya (ErrInvalidShare).
// rand nil means crypto/rand.
func Respond(prs, ci, sid, ya []byte, rand io.Reader) (yb, isk []byte, err error) {
	if len(prs) == 0 {
		return nil, nil, fmt.Errorf("cpace: %w: empty password", ErrInvalidPIN)
	}
	yaE, err := decodeShare(ya)
	if err != nil {
		return nil, nil, fmt.Errorf("cpace: initiator share: %w", err)
	}
	g := cpaceGenerator(prs, ci, sid)
	ybS, err := randomScalar(randOrDefault(rand))
	if err != nil {
		return nil, nil, fmt.Errorf("cpace: %w", err)
	}
	defer ybS.SetUint64(0)
	yb, err = group.Ristretto255.NewElement().Mul(g, ybS).MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("cpace: encode share: %w", err)
	}
	yaB, err := yaE.MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("cpace: encode share: %w", err)
	}
	k := group.Ristretto255.NewElement().Mul(yaE, ybS)
	isk, err = deriveISK(sid, k, yaB, yb)
	if err != nil {
		return nil, nil, err
	}
	return yb, isk, nil
}

// Tag authenticates parts under label with the ISK:
// HMAC-SHA-256(isk, lv(label) || lv(part)...). Both sides use it for key
// confirmation and to authenticate the messages that follow the exchange
// (the CSR one way, the certificate bundle the other), each with its own
// label.
func Tag(isk []byte, label string, parts ...[]byte) []byte {
	mac := hmac.New(sha256.New, isk)
	mac.Write(appendLV(nil, []byte(label)))
	for _, p := range parts {
		mac.Write(appendLV(nil, p))
	}
	return mac.Sum(nil)
}

// CheckTag reports, in constant time, whether tag is Tag(isk, label,
// parts...).
func CheckTag(isk []byte, tag []byte, label string, parts ...[]byte) bool {
	return hmac.Equal(tag, Tag(isk, label, parts...))
}

// cpaceGenerator derives the password-dependent generator
// g = HashToElement(lv("CPaceRistretto255") || lv(prs) || lv(ci) || lv(sid))
// with DST cpaceDST. Nobody knows the discrete log of g to any other
// generator, which is what makes a share reveal nothing about prs.
func cpaceGenerator(prs, ci, sid []byte) group.Element {
	msg := appendLV(nil, []byte("CPaceRistretto255"))
	msg = appendLV(msg, prs)
	msg = appendLV(msg, ci)
	msg = appendLV(msg, sid)
	g := group.Ristretto255.HashToElement(msg, []byte(cpaceDST))
	clear(msg)
	return g
}

// deriveISK returns
// SHA-512(lv("palyra-cpace-isk") || lv(sid) || lv(K) || lv(Ya) || lv(Yb))
// truncated to iskLen bytes.
func deriveISK(sid []byte, k group.Element, ya, yb []byte) ([]byte, error) {
	if k.IsIdentity() {
		// Unreachable with non-zero scalars and non-identity shares in a
		// prime-order group; refuse rather than derive a public key.
		return nil, fmt.Errorf("cpace: %w: shared secret is the identity", ErrInvalidShare)
	}
	kB, err := k.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("cpace: encode secret: %w", err)
	}
	msg := appendLV(nil, []byte("palyra-cpace-isk"))
	msg = appendLV(msg, sid)
	msg = appendLV(msg, kB)
	msg = appendLV(msg, ya)
	msg = appendLV(msg, yb)
	sum := sha512.Sum512(msg)
	clear(kB)
	clear(msg)
	isk := append([]byte(nil), sum[:iskLen]...)
	clear(sum[:])
	return isk, nil
}

// decodeShare decodes a peer's share, refusing anything but the canonical
// encoding of a non-identity ristretto255 element.
func decodeShare(b []byte) (group.Element, error) {
	if len(b) != shareLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidShare, len(b), shareLen)
	}
	e := group.Ristretto255.NewElement()
	if err := e.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: not a ristretto255 element", ErrInvalidShare)
	}
	if e.IsIdentity() {
		return nil, fmt.Errorf("%w: identity element", ErrInvalidShare)
	}
	return e, nil
}

// randomScalar draws a uniform non-zero scalar from rand. circl's
// RandomScalar ignores its reader, so 64 bytes are read here and reduced
// (via hash-to-scalar, which is uniform for uniform input); tests can then
// pass a deterministic reader.
func randomScalar(rand io.Reader) (group.Scalar, error) {
	var buf [64]byte
	defer clear(buf[:])
	for range maxRandomTries {
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return nil, fmt.Errorf("random scalar: %w", err)
		}
		s := group.Ristretto255.HashToScalar(buf[:], []byte(cpaceScalarDST))
		if !s.IsZero() {
			return s, nil
		}
	}
	return nil, fmt.Errorf("random scalar: random source keeps returning zero scalars")
}

// appendLV appends b to dst prefixed with its length as a uvarint (the
// CPace draft's prepend_len), so that concatenations are unambiguous.
func appendLV(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}
