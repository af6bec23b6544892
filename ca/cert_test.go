package ca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/palyra-mesh/palyra/ca"
)

// oidMesh is the palyra extension's OID, spelled out as the wire format.
var oidMesh = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 59999, 1, 1}

func TestCertificateRoundTrip(t *testing.T) {
	c := newCA(t, "home-lab", 1)
	pub, _ := nodeKey(1)
	cert := issue(t, c, pub, "alpha", "node", "palyrad")

	fromPEM, err := ca.ParseCertificatePEM(cert.PEM())
	if err != nil {
		t.Fatal(err)
	}
	fromDER, err := ca.ParseCertificate(cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*ca.Certificate{"pem": fromPEM, "der": fromDER} {
		if !bytes.Equal(got.Raw, cert.Raw) || got.Fingerprint() != cert.Fingerprint() {
			t.Errorf("%s: encoding changed", name)
		}
		if got.Name != "alpha" || got.MeshID != "home-lab" || !slices.Equal(got.Roles, []string{"node", "palyrad"}) {
			t.Errorf("%s: name %q mesh %q roles %q", name, got.Name, got.MeshID, got.Roles)
		}
		if got.Serial != cert.Serial || !got.NotAfter.Equal(cert.NotAfter) || !bytes.Equal(got.PublicKey, pub) {
			t.Errorf("%s: serial, validity or key changed", name)
		}
		if err := c.Verify(t0, got, pub); err != nil {
			t.Errorf("%s: verify: %v", name, err)
		}
	}
	if !strings.HasPrefix(string(cert.PEM()), "-----BEGIN CERTIFICATE-----") {
		t.Errorf("PEM %q", cert.PEM())
	}
}

func TestParseCertificateRefusals(t *testing.T) {
	c := newCA(t, "home-lab", 1)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), testRand(5))
	if err != nil {
		t.Fatal(err)
	}
	// signed builds a certificate signed by the mesh CA with arbitrary
	// contents, as a buggy or foreign issuer would.
	signed := func(t *testing.T, pub any, exts ...pkix.Extension) []byte {
		t.Helper()
		tmpl := &x509.Certificate{
			SerialNumber:    big.NewInt(7),
			Subject:         pkix.Name{CommonName: "odd"},
			NotBefore:       t0,
			NotAfter:        t0.Add(nodeLifetime),
			ExtraExtensions: exts,
		}
		der, err := x509.CreateCertificate(testRand(6), tmpl, c.Cert, pub, c.Key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	ext := func(t *testing.T, v any) pkix.Extension {
		t.Helper()
		val, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return pkix.Extension{Id: oidMesh, Value: val}
	}
	type meshExt struct {
		Version int
		MeshID  string `asn1:"utf8"`
		Roles   []string
	}
	pub, _ := nodeKey(1)

	for _, tc := range []struct {
		name string
		der  func(t *testing.T) []byte
		want []error
	}{
		{"empty", func(*testing.T) []byte { return nil }, []error{ca.ErrMalformed}},
		{"garbage", func(*testing.T) []byte { return []byte{0x30, 0x03, 0x02, 0x01} }, []error{ca.ErrMalformed}},
		{"truncated", func(t *testing.T) []byte { return issue(t, c, pub, "alpha").Raw[:100] }, []error{ca.ErrMalformed}},
		{"trailing data", func(t *testing.T) []byte { return append(bytes.Clone(issue(t, c, pub, "alpha").Raw), 0) }, []error{ca.ErrMalformed}},
		{"ECDSA key", func(t *testing.T) []byte {
			return signed(t, &ecKey.PublicKey, ext(t, meshExt{1, "home-lab", []string{"node"}}))
		}, []error{ca.ErrNotNodeCert, ca.ErrUnsupportedKey}},
		{"extension not ASN.1", func(t *testing.T) []byte {
			return signed(t, pub, pkix.Extension{Id: oidMesh, Value: []byte("{json}")})
		}, []error{ca.ErrMalformed}},
		{"extension version 2", func(t *testing.T) []byte {
			return signed(t, pub, ext(t, meshExt{2, "home-lab", nil}))
		}, []error{ca.ErrMalformed}},
		{"extension bad role", func(t *testing.T) []byte {
			return signed(t, pub, ext(t, meshExt{1, "home-lab", []string{"a b"}}))
		}, []error{ca.ErrMalformed, ca.ErrInvalidName}},
		{"extension empty mesh ID", func(t *testing.T) []byte {
			return signed(t, pub, ext(t, meshExt{1, "", nil}))
		}, []error{ca.ErrMalformed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := ca.ParseCertificate(tc.der(t))
			if cert != nil {
				t.Fatal("returned a certificate with an error")
			}
			for _, want := range tc.want {
				wantErr(t, err, want)
			}
		})
	}

	t.Run("ECDSA key refused by Verify too", func(t *testing.T) {
		der := signed(t, &ecKey.PublicKey, ext(t, meshExt{1, "home-lab", nil}))
		wantErr(t, c.Verify(t0, &ca.Certificate{Raw: der}, nil), ca.ErrNotNodeCert)
	})
	t.Run("no extension parses, then is from no mesh", func(t *testing.T) {
		cert, err := ca.ParseCertificate(signed(t, pub))
		if err != nil {
			t.Fatal(err)
		}
		if cert.MeshID != "" || len(cert.Roles) != 0 {
			t.Fatalf("mesh %q roles %q", cert.MeshID, cert.Roles)
		}
		wantErr(t, c.Verify(t0, cert, pub), ca.ErrOtherMesh)
	})
	t.Run("PEM of another type", func(t *testing.T) {
		keyPEM, err := c.KeyPEM()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ca.ParseCertificatePEM(keyPEM)
		wantErr(t, err, ca.ErrMalformed)
		_, err = ca.ParseCertificatePEM([]byte("no pem here"))
		wantErr(t, err, ca.ErrMalformed)
	})
}

func TestCSR(t *testing.T) {
	pub, priv := nodeKey(1)
	csr, err := ca.NewCSR(priv, "alpha", nil)
	if err != nil {
		t.Fatal(err)
	}
	gotPub, gotName, err := ca.ParseCSR(csr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotPub, pub) || gotName != "alpha" {
		t.Fatalf("got name %q and another key", gotName)
	}

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), testRand(5))
	if err != nil {
		t.Fatal(err)
	}
	ecCSR, err := x509.CreateCertificateRequest(testRand(6), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alpha"}}, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	badNameCSR, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "al pha"}}, priv)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(csr)
	tampered[len(tampered)-2] ^= 0x01
	renamed := bytes.Replace(csr, []byte("alpha"), []byte("admin"), 1)

	for _, tc := range []struct {
		name string
		der  []byte
		want error
	}{
		{"signature tampered", tampered, ca.ErrBadSignature},
		{"name changed after signing", renamed, ca.ErrBadSignature},
		{"ECDSA key", ecCSR, ca.ErrUnsupportedKey},
		{"invalid name", badNameCSR, ca.ErrInvalidName},
		{"garbage", []byte("csr"), ca.ErrMalformed},
		{"empty", nil, ca.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, name, err := ca.ParseCSR(tc.der)
			wantErr(t, err, tc.want)
			if pub != nil || name != "" {
				t.Error("returned a key or name with an error")
			}
		})
	}

	t.Run("NewCSR refuses bad names", func(t *testing.T) {
		for _, name := range []string{"", "a b", ".hidden", strings.Repeat("a", 64), "ünï"} {
			_, err := ca.NewCSR(priv, name, nil)
			wantErr(t, err, ca.ErrInvalidName)
		}
	})
	t.Run("NewCSR refuses a short key", func(t *testing.T) {
		_, err := ca.NewCSR(priv[:32], "alpha", nil)
		wantErr(t, err, ca.ErrUnsupportedKey)
	})
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"gpu-box.1", true},
		{"Node_7", true},
		{"0abc", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"-a", false},
		{".a", false},
		{"_a", false},
		{"a b", false},
		{"a/b", false},
		{"a:b", false},
		{"é", false},
		{"a\x00", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for check, f := range map[string]func(string) error{"name": ca.ValidName, "role": ca.ValidRole, "mesh": ca.ValidMeshID} {
				err := f(tc.name)
				if tc.ok {
					wantErr(t, err, nil)
				} else if !errors.Is(err, ca.ErrInvalidName) {
					t.Errorf("%s %q: error = %v, want ErrInvalidName", check, tc.name, err)
				}
			}
		})
	}
}
