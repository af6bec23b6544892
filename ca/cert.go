package ca

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"slices"
	"time"
)

// oidMeshExtension identifies the palyra extension carried by every
// certificate of a mesh (CA and nodes): 1.3.6.1.4.1.59999.1.1. Its value is
// the DER encoding of meshExtension; doc.go gives the ASN.1 module.
var oidMeshExtension = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 59999, 1, 1}

// meshExtensionVersion is the only version of the extension this package
// writes and accepts.
const meshExtensionVersion = 1

// maxRoles bounds the roles of one certificate, so that a certificate stays
// small enough for every handshake that carries it.
const maxRoles = 64

// maxLabelLen is the longest node name, role or mesh ID (a DNS label).
const maxLabelLen = 63

// Certificate is a parsed node certificate of a mesh: an X.509 certificate
// whose subject key is the node's Ed25519 libp2p key. A Certificate is only
// trustworthy after CA.Verify has accepted it.
type Certificate struct {
	// Raw is the DER encoding; it is what travels and what is signed.
	Raw []byte
	// X509 is the parsed form of Raw.
	X509 *x509.Certificate
	// Name is the node name (the subject CN).
	Name string
	// MeshID is the mesh the certificate belongs to (from the palyra
	// extension; empty when the extension is absent).
	MeshID string
	// Roles are the node's roles (from the palyra extension), in the order
	// encoded; Issue writes them sorted and without duplicates.
	Roles []string
	// PublicKey is the subject key: the node's libp2p identity key, from
	// which the caller derives the peer ID.
	PublicKey ed25519.PublicKey
	// Serial is the serial number in lower-case hex (at least 32 digits).
	Serial string
	// NotBefore and NotAfter bound the validity period.
	NotBefore, NotAfter time.Time
}

// meshExtension is the value of the palyra extension:
//
//	PalyraMesh ::= SEQUENCE {
//	    version  INTEGER,               -- 1
//	    meshID   UTF8String,
//	    roles    SEQUENCE OF UTF8String -- sorted, no duplicates; empty on a CA
//	}
type meshExtension struct {
	Version int
	MeshID  string `asn1:"utf8"`
	Roles   []string
}

// marshalMeshExtension encodes the palyra extension. Every string is written
// as a UTF8String (encoding/asn1 would pick PrintableString for some roles).
func marshalMeshExtension(meshID string, roles []string) (pkix.Extension, error) {
	type encoded struct {
		Version int
		MeshID  string `asn1:"utf8"`
		Roles   []asn1.RawValue
	}
	e := encoded{Version: meshExtensionVersion, MeshID: meshID, Roles: []asn1.RawValue{}}
	for _, r := range roles {
		e.Roles = append(e.Roles, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte(r)})
	}
	val, err := asn1.Marshal(e)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("encode mesh extension: %w", err)
	}
	return pkix.Extension{Id: oidMeshExtension, Critical: false, Value: val}, nil
}

// parseMeshExtension decodes and checks the palyra extension value.
func parseMeshExtension(val []byte) (meshID string, roles []string, err error) {
	var e meshExtension
	rest, err := asn1.Unmarshal(val, &e)
	if err != nil {
		return "", nil, fmt.Errorf("mesh extension: %w: %w", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return "", nil, fmt.Errorf("mesh extension: %w: %d trailing bytes", ErrMalformed, len(rest))
	}
	if e.Version != meshExtensionVersion {
		return "", nil, fmt.Errorf("mesh extension: %w: unsupported version %d", ErrMalformed, e.Version)
	}
	if err := ValidMeshID(e.MeshID); err != nil {
		return "", nil, fmt.Errorf("mesh extension: %w: %w", ErrMalformed, err)
	}
	if len(e.Roles) > maxRoles {
		return "", nil, fmt.Errorf("mesh extension: %w: %d roles, at most %d allowed", ErrMalformed, len(e.Roles), maxRoles)
	}
	for _, r := range e.Roles {
		if err := ValidRole(r); err != nil {
			return "", nil, fmt.Errorf("mesh extension: %w: %w", ErrMalformed, err)
		}
	}
	return e.MeshID, e.Roles, nil
}

// ParseCertificate parses a DER certificate. It accepts any well-formed
// X.509 certificate with an Ed25519 subject key, including a CA certificate
// (which CA.Verify then refuses); it checks no signature and no time. Input
// that does not decode gets ErrMalformed; a key that is not Ed25519 gets
// ErrNotNodeCert (and ErrUnsupportedKey). It never panics.
func ParseCertificate(der []byte) (*Certificate, error) {
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w: %w", ErrMalformed, err)
	}
	pub, ok := x.PublicKey.(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("parse certificate: %w: %w (%s)", ErrNotNodeCert, ErrUnsupportedKey, x.PublicKeyAlgorithm)
	}
	c := &Certificate{
		Raw:       x.Raw,
		X509:      x,
		Name:      x.Subject.CommonName,
		PublicKey: pub,
		Serial:    fmt.Sprintf("%032x", x.SerialNumber),
		NotBefore: x.NotBefore,
		NotAfter:  x.NotAfter,
	}
	for _, ext := range x.Extensions {
		if !ext.Id.Equal(oidMeshExtension) {
			continue
		}
		c.MeshID, c.Roles, err = parseMeshExtension(ext.Value)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
	}
	return c, nil
}

// ParseCertificatePEM parses the first PEM block of pemBytes, which must be
// a CERTIFICATE, with ParseCertificate.
func ParseCertificatePEM(pemBytes []byte) (*Certificate, error) {
	der, err := decodePEM(pemBytes, "CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return ParseCertificate(der)
}

// PEM returns the certificate as a PEM block of type CERTIFICATE.
func (c *Certificate) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Fingerprint returns the lower-case hex SHA-256 of the DER encoding.
func (c *Certificate) Fingerprint() string {
	return fingerprint(c.Raw)
}

// HasRole reports whether the certificate grants role r.
func (c *Certificate) HasRole(r string) bool {
	return slices.Contains(c.Roles, r)
}

// NewCSR returns a DER PKCS#10 certificate request for name signed with
// priv, by which a joining node proves it holds its key. rand may be nil
// (Ed25519 signing does not use it).
func NewCSR(priv ed25519.PrivateKey, name string, rand io.Reader) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("new csr: %w: private key is %d bytes", ErrUnsupportedKey, len(priv))
	}
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("new csr: %w", err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}
	der, err := x509.CreateCertificateRequest(randOrDefault(rand), tmpl, priv)
	if err != nil {
		return nil, fmt.Errorf("new csr: %w", err)
	}
	return der, nil
}

// ParseCSR parses a DER certificate request, checks its self-signature and
// returns the requested key and node name. It refuses a non-Ed25519 key
// (ErrUnsupportedKey), a bad signature (ErrBadSignature), an invalid name
// (ErrInvalidName) and garbage (ErrMalformed). It never panics.
func ParseCSR(der []byte) (pub ed25519.PublicKey, name string, err error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, "", fmt.Errorf("parse csr: %w: %w", ErrMalformed, err)
	}
	pub, ok := csr.PublicKey.(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, "", fmt.Errorf("parse csr: %w (%s)", ErrUnsupportedKey, csr.PublicKeyAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, "", fmt.Errorf("parse csr: %w: %w", ErrBadSignature, err)
	}
	name = csr.Subject.CommonName
	if err := ValidName(name); err != nil {
		return nil, "", fmt.Errorf("parse csr: %w", err)
	}
	return pub, name, nil
}

// ValidName checks a node name: 1 to 63 characters from [a-zA-Z0-9._-],
// starting with a letter or digit.
func ValidName(name string) error {
	return validLabel("node name", name)
}

// ValidRole checks a role name with the same rule as ValidName.
func ValidRole(role string) error {
	return validLabel("role", role)
}

// ValidMeshID checks a mesh ID with the same rule as ValidName: it appears
// in certificates, protocol prefixes and mDNS service names.
func ValidMeshID(id string) error {
	return validLabel("mesh ID", id)
}

func validLabel(kind, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidName, kind)
	}
	if len(s) > maxLabelLen {
		return fmt.Errorf("%w: %s is %d bytes long, at most %d allowed", ErrInvalidName, kind, len(s), maxLabelLen)
	}
	for i, r := range s {
		alnum := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
		switch {
		case i == 0 && !alnum:
			return fmt.Errorf("%w: %s %q must start with a letter or digit", ErrInvalidName, kind, s)
		case !alnum && r != '.' && r != '_' && r != '-':
			return fmt.Errorf("%w: %s %q: character %q not allowed (use a-z A-Z 0-9 . _ -)", ErrInvalidName, kind, s, r)
		}
	}
	return nil
}

// decodePEM returns the bytes of the first PEM block, which must be of type
// typ.
func decodePEM(data []byte, typ string) ([]byte, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrMalformed)
	}
	if block.Type != typ {
		return nil, fmt.Errorf("%w: PEM block is %q, want %q", ErrMalformed, block.Type, typ)
	}
	return block.Bytes, nil
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// Lifetime is the validity the certificate was issued with (NotBefore is
// backdated by clockSkew, which does not count).
func (c *Certificate) Lifetime() time.Duration {
	return max(c.NotAfter.Sub(c.NotBefore)-clockSkew, 0)
}

// RenewAt is when the holder should renew: once a third of the lifetime is
// left, so a coordinator outage of up to a third of it costs nothing.
func (c *Certificate) RenewAt() time.Time {
	return c.NotAfter.Add(-c.Lifetime() / 3)
}
