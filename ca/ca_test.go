package ca_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palyra-mesh/palyra/ca"
)

// t0 is the fixed "now" of the tests; certificates truncate to seconds.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	caLifetime   = 365 * 24 * time.Hour
	nodeLifetime = 7 * 24 * time.Hour
)

// testRand returns a deterministic random source.
func testRand(seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return mrand.NewChaCha8(s)
}

func newCA(t testing.TB, meshID string, seed uint64) *ca.CA {
	t.Helper()
	c, err := ca.New(meshID, t0, caLifetime, testRand(seed))
	if err != nil {
		t.Fatalf("new ca: %v", err)
	}
	return c
}

func nodeKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

func issue(t testing.TB, c *ca.CA, pub ed25519.PublicKey, name string, roles ...string) *ca.Certificate {
	t.Helper()
	cert, err := c.Issue(t0, pub, name, roles, nodeLifetime, testRand(99))
	if err != nil {
		t.Fatalf("issue %s: %v", name, err)
	}
	return cert
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func TestNewCA(t *testing.T) {
	c := newCA(t, "home-lab", 1)
	x := c.Cert
	if !x.IsCA || !x.BasicConstraintsValid || x.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("not a CA: IsCA=%v KeyUsage=%v", x.IsCA, x.KeyUsage)
	}
	if len(x.SubjectKeyId) == 0 {
		t.Error("no SubjectKeyId")
	}
	if got, want := x.Subject.CommonName, "palyra mesh CA home-lab"; got != want {
		t.Errorf("CN = %q, want %q", got, want)
	}
	if x.PublicKeyAlgorithm != x509.Ed25519 || c.Key == nil {
		t.Errorf("key algorithm %v, key held %v", x.PublicKeyAlgorithm, c.Key != nil)
	}
	if !x.NotBefore.Equal(t0.Add(-time.Minute)) || !x.NotAfter.Equal(t0.Add(caLifetime)) {
		t.Errorf("validity %v..%v", x.NotBefore, x.NotAfter)
	}
	if len(c.Fingerprint()) != 64 {
		t.Errorf("fingerprint %q", c.Fingerprint())
	}

	for _, tc := range []struct {
		name     string
		meshID   string
		lifetime time.Duration
		want     error // nil: any error
	}{
		{"empty mesh ID", "", caLifetime, ca.ErrInvalidName},
		{"mesh ID with space", "my mesh", caLifetime, ca.ErrInvalidName},
		{"zero lifetime", "ok", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.New(tc.meshID, t0, tc.lifetime, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil {
				wantErr(t, err, tc.want)
			}
		})
	}
}

func TestIssueVerify(t *testing.T) {
	c := newCA(t, "home-lab", 1)
	pub, _ := nodeKey(1)
	cert := issue(t, c, pub, "gpu-box.1", "node", "gpu", "node")

	if err := c.Verify(t0, cert, pub); err != nil {
		t.Fatalf("verify with peer key: %v", err)
	}
	if err := c.Verify(t0.Add(nodeLifetime), cert, nil); err != nil {
		t.Fatalf("verify at NotAfter without peer key: %v", err)
	}
	if cert.Name != "gpu-box.1" || cert.MeshID != "home-lab" {
		t.Errorf("name %q mesh %q", cert.Name, cert.MeshID)
	}
	if want := []string{"gpu", "node"}; !slices.Equal(cert.Roles, want) {
		t.Errorf("roles %q, want %q (sorted, deduplicated)", cert.Roles, want)
	}
	if !cert.HasRole("gpu") || cert.HasRole("admin") {
		t.Errorf("HasRole wrong for %q", cert.Roles)
	}
	if !bytes.Equal(cert.PublicKey, pub) {
		t.Error("public key is not the node's")
	}
	if len(cert.Serial) != 32 {
		t.Errorf("serial %q is not 128-bit hex", cert.Serial)
	}
	if !cert.NotBefore.Equal(t0.Add(-time.Minute)) || !cert.NotAfter.Equal(t0.Add(nodeLifetime)) {
		t.Errorf("validity %v..%v", cert.NotBefore, cert.NotAfter)
	}
	x := cert.X509
	if !bytes.Equal(x.AuthorityKeyId, c.Cert.SubjectKeyId) {
		t.Error("AuthorityKeyId is not the CA's SubjectKeyId")
	}
	if x.IsCA || !slices.Equal(x.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}) {
		t.Errorf("IsCA %v, ExtKeyUsage %v", x.IsCA, x.ExtKeyUsage)
	}
	var ext bool
	for _, e := range x.Extensions {
		if e.Id.String() == "1.3.6.1.4.1.59999.1.1" {
			ext = !e.Critical
		}
	}
	if !ext {
		t.Error("no non-critical palyra extension 1.3.6.1.4.1.59999.1.1")
	}

	// Two certificates for the same node differ in serial.
	other, err := c.Issue(t0, pub, "gpu-box.1", nil, nodeLifetime, nil)
	if err != nil {
		t.Fatal(err)
	}
	if other.Serial == cert.Serial {
		t.Error("serials repeat")
	}
	if len(other.Roles) != 0 {
		t.Errorf("roles %q, want none", other.Roles)
	}
}

// replaceOnce replaces the single occurrence of old in der, keeping the
// length, as an attacker editing a signed certificate would.
func replaceOnce(t *testing.T, der []byte, old, new string) []byte {
	t.Helper()
	if len(old) != len(new) {
		t.Fatal("replacement must keep the length")
	}
	if n := bytes.Count(der, []byte(old)); n != 1 {
		t.Fatalf("%q occurs %d times", old, n)
	}
	return bytes.Replace(der, []byte(old), []byte(new), 1)
}

func TestVerifyRefusals(t *testing.T) {
	c := newCA(t, "home-lab", 1)
	otherMesh := newCA(t, "office", 2)
	sameIDOtherKey := newCA(t, "home-lab", 3)
	pub, _ := nodeKey(1)
	strangerPub, _ := nodeKey(2)
	cert := issue(t, c, pub, "alpha", "gpu")

	parse := func(t *testing.T, der []byte) *ca.Certificate {
		t.Helper()
		p, err := ca.ParseCertificate(der)
		if err != nil {
			t.Fatalf("tampered certificate no longer parses: %v", err)
		}
		return p
	}

	for _, tc := range []struct {
		name   string
		cert   func(t *testing.T) *ca.Certificate
		now    time.Time
		remote ed25519.PublicKey
		want   error
		facts  []string // substrings the message must carry
	}{
		{
			name: "valid",
			cert: func(*testing.T) *ca.Certificate { return cert },
			now:  t0, remote: pub,
		},
		{
			name: "another mesh's CA",
			cert: func(t *testing.T) *ca.Certificate { return issue(t, otherMesh, pub, "alpha") },
			now:  t0, remote: pub, want: ca.ErrOtherMesh,
			facts: []string{`"office"`, `"home-lab"`, "another mesh's CA"},
		},
		{
			name: "same mesh ID, another CA key",
			cert: func(t *testing.T) *ca.Certificate { return issue(t, sameIDOtherKey, pub, "alpha") },
			now:  t0, remote: pub, want: ca.ErrOtherMesh,
			facts: []string{"different CA key"},
		},
		{
			name: "expired",
			cert: func(*testing.T) *ca.Certificate { return cert },
			now:  t0.Add(nodeLifetime + time.Second), remote: pub, want: ca.ErrExpired,
			facts: []string{"2026-03-08T12:00:00Z"},
		},
		{
			name: "not yet valid",
			cert: func(*testing.T) *ca.Certificate { return cert },
			now:  t0.Add(-2 * time.Minute), remote: pub, want: ca.ErrNotYetValid,
			facts: []string{"2026-03-01T11:59:00Z"},
		},
		{
			name: "key is not the peer's",
			cert: func(*testing.T) *ca.Certificate { return cert },
			now:  t0, remote: strangerPub, want: ca.ErrKeyMismatch,
			facts: []string{`"alpha"`, "not the peer's key"},
		},
		{
			name: "name changed after signing",
			cert: func(t *testing.T) *ca.Certificate { return parse(t, replaceOnce(t, cert.Raw, "alpha", "admin")) },
			now:  t0, remote: pub, want: ca.ErrBadSignature,
		},
		{
			name: "role changed after signing",
			cert: func(t *testing.T) *ca.Certificate { return parse(t, replaceOnce(t, cert.Raw, "gpu", "ops")) },
			now:  t0, remote: pub, want: ca.ErrBadSignature,
		},
		{
			name: "expiry extended after signing",
			cert: func(t *testing.T) *ca.Certificate {
				return parse(t, replaceOnce(t, cert.Raw, "260308120000Z", "360308120000Z"))
			},
			now: t0.Add(30 * 24 * time.Hour), remote: pub, want: ca.ErrBadSignature,
		},
		{
			name: "signature byte flipped",
			cert: func(t *testing.T) *ca.Certificate {
				der := bytes.Clone(cert.Raw)
				der[len(der)-5] ^= 0x01 // the signature is the DER's last field
				return parse(t, der)
			},
			now: t0, remote: pub, want: ca.ErrBadSignature,
		},
		{
			name: "fields changed after parsing",
			cert: func(*testing.T) *ca.Certificate {
				forged := *cert
				forged.Roles = []string{"admin"}
				return &forged
			},
			now: t0, remote: pub, want: ca.ErrBadSignature,
		},
		{
			name: "CA certificate presented as node certificate",
			cert: func(t *testing.T) *ca.Certificate { return parse(t, c.Cert.Raw) },
			now:  t0, want: ca.ErrNotNodeCert,
		},
		{
			name: "garbage",
			cert: func(*testing.T) *ca.Certificate { return &ca.Certificate{Raw: []byte("nope")} },
			now:  t0, want: ca.ErrMalformed,
		},
		{
			name: "nil certificate",
			cert: func(*testing.T) *ca.Certificate { return nil },
			now:  t0, want: ca.ErrMalformed,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Verify(tc.now, tc.cert(t), tc.remote)
			wantErr(t, err, tc.want)
			if err == nil {
				return
			}
			msg := err.Error()
			for _, f := range tc.facts {
				if !strings.Contains(msg, f) {
					t.Errorf("message %q lacks %q", msg, f)
				}
			}
			for _, key := range [][]byte{pub, strangerPub, c.Cert.SubjectKeyId} {
				if strings.Contains(msg, hex.EncodeToString(key)) {
					t.Errorf("message %q carries key material", msg)
				}
			}
		})
	}
}

func TestIssueRefusals(t *testing.T) {
	c := newCA(t, "home-lab", 1)
	pub, _ := nodeKey(1)
	certOnly, err := ca.Load(c.CertPEM(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		ca       *ca.CA
		now      time.Time
		pub      ed25519.PublicKey
		node     string
		roles    []string
		lifetime time.Duration
		want     error
	}{
		{"no CA key", certOnly, t0, pub, "alpha", nil, time.Hour, ca.ErrNoKey},
		{"short key", c, t0, pub[:31], "alpha", nil, time.Hour, ca.ErrUnsupportedKey},
		{"bad name", c, t0, pub, "-alpha", nil, time.Hour, ca.ErrInvalidName},
		{"bad role", c, t0, pub, "alpha", []string{"ro le"}, time.Hour, ca.ErrInvalidName},
		{"CA expired", c, t0.Add(caLifetime + time.Second), pub, "alpha", nil, time.Hour, ca.ErrExpired},
		{"zero lifetime", c, t0, pub, "alpha", nil, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.ca.Issue(tc.now, tc.pub, tc.node, tc.roles, tc.lifetime, nil)
			if err == nil {
				t.Fatal("issued")
			}
			if tc.want != nil {
				wantErr(t, err, tc.want)
			}
		})
	}

	t.Run("lifetime clamped to the CA's", func(t *testing.T) {
		cert, err := c.Issue(t0, pub, "alpha", nil, 2*caLifetime, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !cert.NotAfter.Equal(c.Cert.NotAfter) {
			t.Errorf("NotAfter %v, CA NotAfter %v", cert.NotAfter, c.Cert.NotAfter)
		}
	})
}

func TestLoad(t *testing.T) {
	c := newCA(t, "home-lab", 1)
	other := newCA(t, "home-lab", 2)
	keyPEM, err := c.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	otherKeyPEM, err := other.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := nodeKey(1)
	nodePEM := issue(t, c, pub, "alpha").PEM()

	t.Run("with key", func(t *testing.T) {
		l, err := ca.Load(c.CertPEM(), keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if !l.Key.Equal(c.Key) || l.MeshID != "home-lab" || l.Fingerprint() != c.Fingerprint() {
			t.Fatalf("loaded CA differs: mesh %q", l.MeshID)
		}
		cert, err := l.Issue(t0, pub, "alpha", []string{"node"}, time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, c.Verify(t0, cert, pub), nil)
	})
	t.Run("without key", func(t *testing.T) {
		l, err := ca.Load(c.CertPEM(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if l.Key != nil || l.MeshID != "home-lab" {
			t.Fatalf("key held %v, mesh %q", l.Key != nil, l.MeshID)
		}
		_, err = l.KeyPEM()
		wantErr(t, err, ca.ErrNoKey)
		wantErr(t, l.Verify(t0, issue(t, c, pub, "alpha"), pub), nil)
	})

	for _, tc := range []struct {
		name         string
		certPEM, key []byte
		want         error
	}{
		{"key of another CA", c.CertPEM(), otherKeyPEM, ca.ErrWrongKey},
		{"node certificate", nodePEM, nil, ca.ErrMalformed},
		{"garbage", []byte("not pem"), nil, ca.ErrMalformed},
		{"key where cert expected", keyPEM, nil, ca.ErrMalformed},
		{"cert where key expected", c.CertPEM(), c.CertPEM(), ca.ErrMalformed},
		{"corrupt CA signature", corruptLastByte(t, c.CertPEM()), nil, ca.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.Load(tc.certPEM, tc.key)
			wantErr(t, err, tc.want)
		})
	}
}

// corruptLastByte flips a bit in the signature of a PEM certificate.
func corruptLastByte(t *testing.T, pemBytes []byte) []byte {
	t.Helper()
	cert, err := ca.ParseCertificatePEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	der := bytes.Clone(cert.Raw)
	der[len(der)-3] ^= 0x80
	return (&ca.Certificate{Raw: der}).PEM()
}
