package ca

import (
	"errors"
	"testing"
	"time"
)

func TestCoordinatorClaim(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	authority, err := New("home", now, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := New("office", now, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := authority.SignCoordinator("peer-a", 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := authority.VerifyCoordinator("peer-a", 7, sig); err != nil {
		t.Fatalf("verify: %v", err)
	}
	foreign, _ := other.SignCoordinator("peer-a", 7)
	tests := []struct {
		name string
		peer string
		term uint64
		sig  []byte
	}{
		{"another peer", "peer-b", 7, sig},
		{"another term", "peer-a", 8, sig},
		{"another mesh's CA", "peer-a", 7, foreign},
		{"no signature", "peer-a", 7, nil},
		{"truncated", "peer-a", 7, sig[:len(sig)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := authority.VerifyCoordinator(tt.peer, tt.term, tt.sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("got %v, want %v", err, ErrBadSignature)
			}
		})
	}
	if _, err := (&CA{MeshID: "home", Cert: authority.Cert}).SignCoordinator("peer-a", 1); !errors.Is(err, ErrNoKey) {
		t.Fatalf("sign without key: %v", err)
	}
}
