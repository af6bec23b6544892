package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRenewal: with certificates living 8 s, a mesh keeps working over
// several lifetimes because every node renews in time; a node that was
// offline beyond expiry plus grace is told to pair again.
func TestRenewal(t *testing.T) {
	flags := []string{"--cert-lifetime", "8s", "--cert-grace", "4s"}
	nodes := []*node{newNode(t, "alpha"), newNode(t, "bravo"), newNode(t, "charlie")}
	formMesh(t, nodes, flags...)

	var first struct {
		CertExpiresAt time.Time `json:"cert_expires_at"`
	}
	nodes[0].cliJSON(&first, "nodes", "show", "charlie")
	// Three lifetimes later everyone is still alive and holds a newer
	// certificate.
	deadline := first.CertExpiresAt.Add(16 * time.Second)
	waitFor(t, 60*time.Second, "three certificate lifetimes to pass", func() error {
		if time.Now().Before(deadline) {
			return fmt.Errorf("%v left", time.Until(deadline).Round(time.Second))
		}
		return nil
	})
	waitAllAlive(t, nodes)
	var later struct {
		CertExpiresAt time.Time `json:"cert_expires_at"`
		CertPEM       string    `json:"certificate_pem"`
	}
	nodes[1].cliJSON(&later, "nodes", "show", "charlie")
	if !later.CertExpiresAt.After(deadline.Add(-8*time.Second)) || !strings.Contains(later.CertPEM, "CERTIFICATE") {
		t.Fatalf("charlie's certificate was not renewed: expires %v (first %v)", later.CertExpiresAt, first.CertExpiresAt)
	}
	if w := nodes[0].status().Warnings; len(w) > 0 {
		t.Fatalf("warnings on a healthy renewing mesh: %v", w)
	}

	// charlie goes away for longer than expiry + grace: it must pair again.
	c := nodes[2]
	c.stop()
	var last struct {
		CertExpiresAt time.Time `json:"cert_expires_at"`
	}
	nodes[0].cliJSON(&last, "nodes", "show", "charlie")
	gone := last.CertExpiresAt.Add(4 * time.Second)
	waitFor(t, 60*time.Second, "charlie's certificate past grace", func() error {
		if time.Now().Before(gone) {
			return fmt.Errorf("%v left", time.Until(gone).Round(time.Second))
		}
		return nil
	})
	c.start(flags...)
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("charlie started with a certificate past grace")
	}
	if !strings.Contains(c.log.String(), "must pair again") {
		t.Fatalf("charlie's exit did not say it must pair again:\n%s", c.log.String())
	}
}
