package pairing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/mesh"
)

// runJoiner runs the joiner's side against respond, which plays the member
// on the other end of a pipe. It returns the joiner's result and respond's
// error.
func runJoiner(t testing.TB, cfg JoinConfig, respond func(rw io.ReadWriter) error) (*Bundle, error, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jc, mc := net.Pipe()
	responded := make(chan error, 1)
	go func() {
		defer mc.Close()
		responded <- respond(mc)
	}()
	b, err := exchange(ctx, cfg, jc)
	jc.Close()
	return b, err, <-responded
}

// fakeMember answers a joiner in the coordinator's place without knowing
// the PIN: it runs CPace with pin, then hands out a bundle from its own CA
// (same mesh ID, certificate for the joiner's key), tagged under its own
// session key. tamper, if set, changes the result before it is sent.
type fakeMember struct {
	pin    string
	tamper func(*Result)
	// bundle is the forged bundle it sent.
	bundle []byte
}

func (m *fakeMember) respond(rw io.ReadWriter) error {
	var hello Hello
	if err := mesh.ReadMsg(rw, maxMsg, &hello); err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	yb, isk, err := ca.Respond([]byte(m.pin), cpaceCI, hello.SID, hello.Share, nil)
	if err != nil {
		return err
	}
	if err := mesh.WriteMsg(rw, Challenge{Share: yb}); err != nil {
		return err
	}
	var conf Confirm
	if err := mesh.ReadMsg(rw, maxMsg, &conf); err != nil {
		return fmt.Errorf("read confirm: %w", err)
	}
	pub, name, err := ca.ParseCSR(conf.CSR)
	if err != nil {
		return err
	}
	evil, err := ca.New(testMeshID, time.Now(), time.Hour, nil)
	if err != nil {
		return err
	}
	cert, err := evil.Issue(time.Now(), pub, name, []string{"admin"}, time.Hour, nil)
	if err != nil {
		return err
	}
	m.bundle, err = json.Marshal(Bundle{
		MeshID: testMeshID, Name: name, CACertPEM: string(evil.CertPEM()), CertPEM: string(cert.PEM()),
		Roles: cert.Roles, Peers: []string{"/ip4/6.6.6.6/tcp/1/p2p/12D3KooWEvil"},
	})
	if err != nil {
		return err
	}
	res := Result{Bundle: m.bundle, Tag: ca.Tag(isk, "palyra-pair-bundle", hello.SID, hello.Share, yb, m.bundle)}
	if m.tamper != nil {
		m.tamper(&res)
	}
	return mesh.WriteMsg(rw, res)
}

func TestJoinRefusesFakeMember(t *testing.T) {
	tests := []struct {
		name   string
		pin    string
		tamper func(*Result)
	}{
		{name: "other PIN", pin: "999999"},
		{name: "right first digit", pin: "300000"},
		{name: "PIN with a trailing space", pin: "314159 "},
		{name: "no tag", pin: "999999", tamper: func(r *Result) { r.Tag = nil }},
		{name: "zero tag", pin: "999999", tamper: func(r *Result) { r.Tag = make([]byte, 32) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJoiner(t)
			cfg := j.config("joiner-1", "314159")
			m := &fakeMember{pin: tt.pin, tamper: tt.tamper}
			b, err, respErr := runJoiner(t, cfg, m.respond)
			if respErr != nil {
				t.Fatalf("fake member: %v", respErr)
			}
			if b != nil {
				t.Fatal("the joiner accepted a fake member's CA")
			}
			var pe *Error
			if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "not authenticated") {
				t.Fatalf("joiner error %v, want the bundle refused as not authenticated", err)
			}
			// Only the tag stands between the joiner and the forged CA:
			// the bundle itself is coherent for the joiner's key.
			forged, derr := decodeBundle(m.bundle)
			if derr != nil {
				t.Fatalf("forged bundle: %v", derr)
			}
			if err := verifyBundle(forged, cfg); err != nil {
				t.Fatalf("forged bundle should be coherent, so the tag is what refuses it: %v", err)
			}
		})
	}
}

// mitm runs an exchange through a man in the middle who may rewrite the
// coordinator's final result.
func mitm(t testing.TB, srv *Server, cfg JoinConfig, connected peer.ID, tamper func(*Result)) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jc, pj := net.Pipe() // joiner ↔ proxy
	ps, sc := net.Pipe() // proxy ↔ coordinator
	served := make(chan error, 1)
	go func() {
		defer sc.Close()
		served <- srv.Serve(ctx, sc, connected, "")
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(ps, pj)
		ps.Close()
	}()
	go func() {
		defer wg.Done()
		defer pj.Close()
		for {
			var raw json.RawMessage
			if err := mesh.ReadMsg(ps, maxMsg, &raw); err != nil {
				return
			}
			var r Result
			if err := json.Unmarshal(raw, &r); err == nil && len(r.Bundle) > 0 && tamper != nil {
				tamper(&r)
				raw, _ = json.Marshal(r)
			}
			if err := writeFrame(pj, raw); err != nil {
				return
			}
		}
	}()
	b, err := exchange(ctx, cfg, jc)
	jc.Close()
	o := outcome{bundle: b, joinErr: err, serveErr: <-served}
	wg.Wait()
	return o
}

func TestJoinRefusesTamperedBundle(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(*Result)
		ok     bool
	}{
		{name: "untouched", ok: true},
		{name: "name byte flipped", tamper: func(r *Result) {
			// Still a coherent bundle: only the tag can tell.
			r.Bundle = bytes.Replace(r.Bundle, []byte(`"name":"joiner-1"`), []byte(`"name":"joiner-2"`), 1)
		}},
		{name: "peer byte flipped", tamper: func(r *Result) {
			r.Bundle = bytes.Replace(r.Bundle, []byte("127.0.0.1"), []byte("127.0.0.2"), 1)
		}},
		{name: "last byte flipped", tamper: func(r *Result) { r.Bundle[len(r.Bundle)-2] ^= 1 }},
		{name: "tag byte flipped", tamper: func(r *Result) { r.Tag[0] ^= 0x80 }},
		{name: "tag truncated", tamper: func(r *Result) { r.Tag = r.Tag[:16] }},
		{name: "tag dropped", tamper: func(r *Result) { r.Tag = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinator(t)
			c.auth.addTicket(t, "314159", nil)
			j := newJoiner(t)
			var changed bool
			tamper := func(r *Result) {
				before := bytes.Clone(r.Bundle)
				beforeTag := bytes.Clone(r.Tag)
				if tt.tamper != nil {
					tt.tamper(r)
				}
				changed = !bytes.Equal(before, r.Bundle) || !bytes.Equal(beforeTag, r.Tag)
			}
			o := mitm(t, c.srv, j.config("joiner-1", "314159"), j.id, tamper)
			if o.serveErr != nil {
				t.Fatalf("serve: %v", o.serveErr)
			}
			if tt.ok {
				if o.joinErr != nil {
					t.Fatalf("join through an honest relay: %v", o.joinErr)
				}
				checkBundle(t, c, o.bundle, j, "joiner-1", []string{"gpu", "node"})
				return
			}
			if !changed {
				t.Fatal("the tamper changed nothing: the test is broken")
			}
			if o.bundle != nil {
				t.Fatal("the joiner accepted a bundle altered in transit")
			}
			if o.joinErr == nil || !strings.Contains(o.joinErr.Error(), "not authenticated") {
				t.Fatalf("joiner error %v, want the bundle refused as not authenticated", o.joinErr)
			}
		})
	}
}

func TestJoinRefusesBadChallenge(t *testing.T) {
	tests := []struct {
		name      string
		challenge string
		code      string // a *Error code the joiner must return, or ""
	}{
		{name: "refusal passed on", challenge: `{"error":{"code":"unavailable","message":"no coordinator"}}`, code: CodeUnavailable},
		{name: "no share", challenge: `{}`},
		{name: "short share", challenge: `{"share":"AAAA"}`},
		{name: "identity share", challenge: `{"share":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`},
		{name: "not JSON", challenge: `share`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJoiner(t)
			respond := func(rw io.ReadWriter) error {
				var hello Hello
				if err := mesh.ReadMsg(rw, maxMsg, &hello); err != nil {
					return err
				}
				if hello.V != Version || hello.Slot != "3" || len(hello.SID) != 16 || len(hello.Share) != 32 {
					return fmt.Errorf("joiner sent a malformed hello %+v", hello)
				}
				return writeFrame(rw, []byte(tt.challenge))
			}
			b, err, respErr := runJoiner(t, j.config("joiner-1", "314159"), respond)
			if respErr != nil {
				t.Fatal(respErr)
			}
			if b != nil || err == nil {
				t.Fatalf("bundle %v, error %v: want a refusal", b != nil, err)
			}
			if tt.code != "" {
				wantCode(t, err, tt.code)
			}
		})
	}
}
