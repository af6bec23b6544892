package ca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"

	"github.com/palyra-mesh/palyra/ca"
)

// isOneOf reports whether err wraps one of the sentinels.
func isOneOf(err error, sentinels ...error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzParseCertificate feeds arbitrary DER to ParseCertificate and, when it
// parses, to Verify: neither may panic, errors must be the documented
// sentinels, and only the genuine certificate may verify.
func FuzzParseCertificate(f *testing.F) {
	c := newCA(f, "home-lab", 1)
	pub, _ := nodeKey(1)
	valid := issue(f, c, pub, "alpha", "node", "gpu")
	f.Add(valid.Raw)
	f.Add(c.Cert.Raw)
	f.Add(valid.Raw[:len(valid.Raw)/2])
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := ca.ParseCertificate(der)
		if err != nil {
			if cert != nil {
				t.Fatal("certificate returned with an error")
			}
			if !isOneOf(err, ca.ErrMalformed, ca.ErrNotNodeCert) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(cert.PublicKey) != 32 || !bytes.Equal(cert.Raw, der) {
			t.Fatal("parsed certificate lacks its key or encoding")
		}
		if back, err := ca.ParseCertificatePEM(cert.PEM()); err != nil || !bytes.Equal(back.Raw, der) {
			t.Fatalf("PEM round trip: %v", err)
		}
		err = c.Verify(t0, cert, pub)
		if err == nil {
			if !bytes.Equal(der, valid.Raw) {
				t.Fatal("a certificate the CA never issued verifies")
			}
			return
		}
		if !isOneOf(err, ca.ErrMalformed, ca.ErrNotNodeCert, ca.ErrOtherMesh, ca.ErrBadSignature,
			ca.ErrExpired, ca.ErrNotYetValid, ca.ErrKeyMismatch) {
			t.Fatalf("unexpected verify error kind: %v", err)
		}
	})
}

// FuzzParseCSR feeds arbitrary DER to ParseCSR: no panic, documented
// errors, and an accepted request always yields an Ed25519 key and a valid
// name.
func FuzzParseCSR(f *testing.F) {
	_, priv := nodeKey(1)
	valid, err := ca.NewCSR(priv, "alpha", nil)
	if err != nil {
		f.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), testRand(5))
	if err != nil {
		f.Fatal(err)
	}
	ecCSR, err := x509.CreateCertificateRequest(testRand(6), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alpha"}}, ecKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(ecCSR)
	f.Add(valid[:len(valid)-1])
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----"))
	f.Fuzz(func(t *testing.T, der []byte) {
		pub, name, err := ca.ParseCSR(der)
		if err != nil {
			if pub != nil || name != "" {
				t.Fatal("key or name returned with an error")
			}
			if !isOneOf(err, ca.ErrMalformed, ca.ErrUnsupportedKey, ca.ErrBadSignature, ca.ErrInvalidName) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(pub) != 32 {
			t.Fatalf("key of %d bytes", len(pub))
		}
		if err := ca.ValidName(name); err != nil {
			t.Fatalf("accepted invalid name: %v", err)
		}
	})
}

// FuzzCPaceShare feeds arbitrary bytes as the peer's share to both sides:
// no panic, ErrInvalidShare or a 32-byte key.
func FuzzCPaceShare(f *testing.F) {
	pin, ci, sid := []byte("123456"), []byte("home-lab"), []byte("sid")
	_, ya, err := ca.NewInitiator(pin, ci, sid, testRand(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ya)
	f.Add(make([]byte, 32))
	f.Add(bytes.Repeat([]byte{0xff}, 32))
	f.Add(ya[:31])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, share []byte) {
		yb, isk, err := ca.Respond(pin, ci, sid, share, testRand(2))
		switch {
		case err != nil && !errors.Is(err, ca.ErrInvalidShare):
			t.Fatalf("respond: unexpected error kind: %v", err)
		case err != nil && (yb != nil || isk != nil):
			t.Fatal("respond: share or key returned with an error")
		case err == nil && (len(yb) != 32 || len(isk) != 32):
			t.Fatalf("respond: share %d bytes, key %d bytes", len(yb), len(isk))
		}

		init, _, err := ca.NewInitiator(pin, ci, sid, testRand(3))
		if err != nil {
			t.Fatal(err)
		}
		isk, err = init.Finish(share)
		switch {
		case err != nil && !errors.Is(err, ca.ErrInvalidShare):
			t.Fatalf("finish: unexpected error kind: %v", err)
		case err != nil && isk != nil:
			t.Fatal("finish: key returned with an error")
		case err == nil && len(isk) != 32:
			t.Fatalf("finish: key %d bytes", len(isk))
		}
	})
}
