package ca_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/palyra-mesh/palyra/ca"
)

func TestRenewAt(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	authority, err := ca.New("home", now, 24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	for _, life := range []time.Duration{12 * time.Second, time.Hour, 9 * time.Hour} {
		c, err := authority.Issue(now, pub, "n", nil, life, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Lifetime() != life {
			t.Errorf("Lifetime() = %v, want %v", c.Lifetime(), life)
		}
		if want := now.Add(life - life/3); !c.RenewAt().Equal(want) {
			t.Errorf("lifetime %v: RenewAt() = %v, want %v", life, c.RenewAt(), want)
		}
	}
}
