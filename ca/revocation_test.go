package ca

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestRevocationList(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	authority, err := New("home", now, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := New("office", now, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	var empty RevocationList
	if err := authority.VerifyRevocations(empty); err != nil {
		t.Fatalf("empty list: %v", err)
	}
	l1, err := authority.Revoke(empty, "peer-b")
	if err != nil {
		t.Fatal(err)
	}
	l2, err := authority.Revoke(l1, "peer-a")
	if err != nil {
		t.Fatal(err)
	}
	if l2.Version != 2 || !l2.Revoked("peer-a") || !l2.Revoked("peer-b") || l2.Revoked("peer-c") || l1.Revoked("peer-a") {
		t.Fatalf("lists: %+v %+v", l1, l2)
	}
	if err := authority.VerifyRevocations(l2); err != nil {
		t.Fatalf("verify: %v", err)
	}

	tampered := l2
	tampered.Peers = []string{"peer-a"}
	forged, _ := other.Revoke(RevocationList{}, "peer-a")
	forged.MeshID = "home"
	forged.Sig = ed25519.Sign(other.Key, forged.signedBytes())
	tests := []struct {
		name string
		l    RevocationList
		want error
	}{
		{"tampered", tampered, ErrBadSignature},
		{"other mesh", func() RevocationList { l, _ := other.Revoke(RevocationList{}, "x"); return l }(), ErrOtherMesh},
		{"signed by another CA", forged, ErrBadSignature},
		{"unsigned", RevocationList{MeshID: "home", Version: 3, Peers: []string{"x"}}, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := authority.VerifyRevocations(tt.l); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := (&CA{MeshID: "home", Cert: authority.Cert}).Revoke(l2, "x"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("revoke without key: %v", err)
	}
}

func FuzzParseRevocations(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	authority, err := New("home", now, time.Hour, nil)
	if err != nil {
		f.Fatal(err)
	}
	l, _ := authority.Revoke(RevocationList{}, "peer")
	b, _ := json.Marshal(l)
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`nul`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseRevocations(b)
		if err != nil {
			return
		}
		if authority.VerifyRevocations(l) == nil && l.Version > 1 {
			t.Fatalf("accepted a list the CA never signed: %+v", l)
		}
	})
}
