package ca

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"slices"
	"time"
)

// clockSkew is how far NotBefore is backdated, so that a certificate issued
// on a host whose clock runs a little ahead is valid on its peers at once.
const clockSkew = time.Minute

// maxRandomTries bounds every rejection-sampling loop of the package, so that
// a broken random source fails instead of hanging.
const maxRandomTries = 64

// CA is a mesh certificate authority: a self-signed Ed25519 X.509 CA whose
// certificate carries the mesh ID. Every member holds the certificate, to
// verify peers; the coordinator also holds the key, to issue.
type CA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// Key is the CA private key; nil when only the certificate is held.
	Key ed25519.PrivateKey
	// MeshID names the mesh; node certificates must carry the same.
	MeshID string
}

// New creates the CA of a new mesh, valid from now (backdated by a minute)
// for lifetime. rand supplies the key and serial; nil means crypto/rand.
func New(meshID string, now time.Time, lifetime time.Duration, rand io.Reader) (*CA, error) {
	if err := ValidMeshID(meshID); err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("new ca: lifetime %s is not positive", lifetime)
	}
	rand = randOrDefault(rand)
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("new ca: generate key: %w", err)
	}
	serial, err := randomSerial(rand)
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	ext, err := marshalMeshExtension(meshID, nil)
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "palyra mesh CA " + meshID},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // node certificates only: no intermediate CAs
		SubjectKeyId:          keyID(pub),
		ExtraExtensions:       []pkix.Extension{ext},
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	return &CA{Cert: cert, Key: priv, MeshID: meshID}, nil
}

// Load reads a CA from its PEM certificate and, when keyPEM is not nil, its
// PKCS#8 PEM private key. It checks that the certificate is a self-signed
// Ed25519 CA carrying a mesh ID, and that the key belongs to it
// (ErrWrongKey).
func Load(certPEM, keyPEM []byte) (*CA, error) {
	der, err := decodePEM(certPEM, "CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w: %w", ErrMalformed, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("load ca: %w: %q is not a CA certificate", ErrMalformed, cert.Subject.CommonName)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("load ca: %w (%s)", ErrUnsupportedKey, cert.PublicKeyAlgorithm)
	}
	if len(cert.SubjectKeyId) == 0 {
		return nil, fmt.Errorf("load ca: %w: certificate has no subject key ID", ErrMalformed)
	}
	var meshID string
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidMeshExtension) {
			if meshID, _, err = parseMeshExtension(ext.Value); err != nil {
				return nil, fmt.Errorf("load ca: %w", err)
			}
		}
	}
	if meshID == "" {
		return nil, fmt.Errorf("load ca: %w: certificate carries no mesh ID", ErrMalformed)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("load ca: %w: %w", ErrBadSignature, err)
	}
	c := &CA{Cert: cert, MeshID: meshID}
	if keyPEM == nil {
		return c, nil
	}
	keyDER, err := decodePEM(keyPEM, "PRIVATE KEY")
	if err != nil {
		return nil, fmt.Errorf("load ca key: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("load ca key: %w: %w", ErrMalformed, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load ca key: %w (%T)", ErrUnsupportedKey, key)
	}
	if !pub.Equal(priv.Public()) {
		return nil, fmt.Errorf("load ca key: %w", ErrWrongKey)
	}
	c.Key = priv
	return c, nil
}

// CertPEM returns the CA certificate as a PEM block of type CERTIFICATE.
func (c *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// KeyPEM returns the CA private key as a PKCS#8 PEM block of type PRIVATE
// KEY, or ErrNoKey when the key is not held.
func (c *CA) KeyPEM() ([]byte, error) {
	if c.Key == nil {
		return nil, fmt.Errorf("ca key pem: %w", ErrNoKey)
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, fmt.Errorf("ca key pem: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Fingerprint returns the lower-case hex SHA-256 of the CA certificate's DER
// encoding: what an operator compares to trust a mesh.
func (c *CA) Fingerprint() string {
	return fingerprint(c.Cert.Raw)
}

// Issue signs a node certificate for pub, the node's Ed25519 libp2p key,
// with the given name and roles (sorted, duplicates dropped), valid from now
// (backdated by a minute) for lifetime, but never beyond the CA's own
// NotAfter. rand supplies the serial; nil means crypto/rand. It needs the
// CA key (ErrNoKey).
func (c *CA) Issue(now time.Time, pub ed25519.PublicKey, name string, roles []string, lifetime time.Duration, rand io.Reader) (*Certificate, error) {
	if c.Key == nil {
		return nil, fmt.Errorf("issue %q: %w", name, ErrNoKey)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("issue %q: %w: public key is %d bytes", name, ErrUnsupportedKey, len(pub))
	}
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	roles = slices.Compact(slices.Sorted(slices.Values(roles)))
	if len(roles) > maxRoles {
		return nil, fmt.Errorf("issue %q: %d roles, at most %d allowed", name, len(roles), maxRoles)
	}
	for _, r := range roles {
		if err := ValidRole(r); err != nil {
			return nil, fmt.Errorf("issue %q: %w", name, err)
		}
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("issue %q: lifetime %s is not positive", name, lifetime)
	}
	if !now.Before(c.Cert.NotAfter) {
		return nil, fmt.Errorf("issue %q: mesh CA: %w at %s", name, ErrExpired, c.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(c.Cert.NotAfter) {
		notAfter = c.Cert.NotAfter
	}
	rand = randOrDefault(rand)
	serial, err := randomSerial(rand)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", name, err)
	}
	ext, err := marshalMeshExtension(c.MeshID, roles)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        c.Cert.SubjectKeyId,
		ExtraExtensions:       []pkix.Extension{ext},
	}
	der, err := x509.CreateCertificate(rand, tmpl, c.Cert, pub, c.Key)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", name, err)
	}
	cert, err := ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", name, err)
	}
	return cert, nil
}

// Verify checks that cert is a node certificate of this mesh, signed by this
// CA, valid at now, and, unless remote is nil, that its key is remote (the
// peer's transport key). Each refusal wraps its own sentinel: ErrNotNodeCert,
// ErrOtherMesh, ErrBadSignature, ErrNotYetValid, ErrExpired, ErrKeyMismatch
// (ErrMalformed when cert does not decode). Verify decides from cert.Raw
// alone and refuses a Certificate whose fields differ from it.
func (c *CA) Verify(now time.Time, cert *Certificate, remote ed25519.PublicKey) error {
	if cert == nil {
		return fmt.Errorf("verify certificate: %w: no certificate", ErrMalformed)
	}
	p, err := ParseCertificate(cert.Raw)
	if err != nil {
		return fmt.Errorf("verify certificate: %w", err)
	}
	x := p.X509
	if x.IsCA || x.KeyUsage&x509.KeyUsageCertSign != 0 {
		return fmt.Errorf("certificate %q: %w (it is a CA certificate)", p.Name, ErrNotNodeCert)
	}
	if !bytes.Equal(x.AuthorityKeyId, c.Cert.SubjectKeyId) {
		if p.MeshID == c.MeshID {
			return fmt.Errorf("node %q: %w (mesh %q, but issued by a different CA key)", p.Name, ErrOtherMesh, p.MeshID)
		}
		return fmt.Errorf("node %q: %w (its mesh %q, this mesh %q)", p.Name, ErrOtherMesh, p.MeshID, c.MeshID)
	}
	if err := x.CheckSignatureFrom(c.Cert); err != nil {
		return fmt.Errorf("node %q: certificate %w (tampered with after signing)", p.Name, ErrBadSignature)
	}
	if !sameFields(cert, p) {
		return fmt.Errorf("node %q: certificate %w (its fields were changed after parsing)", p.Name, ErrBadSignature)
	}
	if p.MeshID != c.MeshID {
		return fmt.Errorf("node %q: %w (its mesh %q, this mesh %q)", p.Name, ErrOtherMesh, p.MeshID, c.MeshID)
	}
	if now.Before(p.NotBefore) {
		return fmt.Errorf("node %q: %w (valid from %s)", p.Name, ErrNotYetValid, p.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(p.NotAfter) {
		return fmt.Errorf("node %q: %w at %s", p.Name, ErrExpired, p.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.After(c.Cert.NotAfter) {
		return fmt.Errorf("node %q: mesh CA %w at %s", p.Name, ErrExpired, c.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if remote != nil && !bytes.Equal(remote, p.PublicKey) {
		return fmt.Errorf("node %q: %w", p.Name, ErrKeyMismatch)
	}
	return nil
}

// sameFields reports whether the fields a caller authorises with are the
// ones encoded in the signed bytes.
func sameFields(c, p *Certificate) bool {
	return c.Name == p.Name && c.MeshID == p.MeshID && slices.Equal(c.Roles, p.Roles) &&
		bytes.Equal(c.PublicKey, p.PublicKey) && c.Serial == p.Serial &&
		c.NotBefore.Equal(p.NotBefore) && c.NotAfter.Equal(p.NotAfter) &&
		(c.X509 == nil || bytes.Equal(c.X509.Raw, p.Raw))
}

// keyID is the subject key identifier of a CA key: the first 20 bytes of the
// SHA-256 of the raw public key (RFC 7093, method 1).
func keyID(pub ed25519.PublicKey) []byte {
	sum := sha256.Sum256(pub)
	return sum[:20]
}

// randomSerial returns a random, positive 128-bit serial number.
func randomSerial(rand io.Reader) (*big.Int, error) {
	var b [16]byte
	for range maxRandomTries {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return nil, fmt.Errorf("serial: %w", err)
		}
		if s := new(big.Int).SetBytes(b[:]); s.Sign() > 0 {
			return s, nil
		}
	}
	return nil, fmt.Errorf("serial: random source keeps returning zeros")
}
