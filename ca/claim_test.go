package ca_test

import (
	"testing"

	"github.com/palyra-mesh/palyra/ca"
)

func TestCoordinatorClaim(t *testing.T) {
	authority, other := newCA(t, "home", 1), newCA(t, "office", 2)
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
			wantErr(t, authority.VerifyCoordinator(tt.peer, tt.term, tt.sig), ca.ErrBadSignature)
		})
	}
	_, err = (&ca.CA{MeshID: "home", Cert: authority.Cert}).SignCoordinator("peer-a", 1)
	wantErr(t, err, ca.ErrNoKey)
}
