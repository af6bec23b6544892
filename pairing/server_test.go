package pairing

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/mesh"
)

func TestPairRightPIN(t *testing.T) {
	tests := []struct {
		name      string
		relayedBy string
		// fingerprint sets the joiner's CAFingerprint (from a join code);
		// "ca" means the coordinator's own, upper-cased.
		fingerprint string
	}{
		{name: "direct"},
		{name: "relayed", relayedBy: "12D3KooWRelayMember"},
		{name: "join code fingerprint", fingerprint: "ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinator(t)
			id := c.auth.addTicket(t, "314159", nil)
			j := newJoiner(t)
			cfg := j.config("joiner-1", "314159")
			if tt.fingerprint == "ca" {
				cfg.CAFingerprint = strings.ToUpper(c.auth.ca.Fingerprint())
			}
			o := pair(t, c.srv, cfg, j.id, tt.relayedBy)
			if o.joinErr != nil || o.serveErr != nil {
				t.Fatalf("join: %v; serve: %v", o.joinErr, o.serveErr)
			}
			checkBundle(t, c, o.bundle, j, "joiner-1", []string{"gpu", "node"})

			tk := c.auth.ticket(t, id)
			if tk.State != ca.TicketUsed || tk.UsedBy != "joiner-1" || tk.UsedByPeer != j.id.String() || tk.RelayedBy != tt.relayedBy {
				t.Fatalf("ticket after pairing: state %s, used by %q (%s), relayed by %q", tk.State, tk.UsedBy, tk.UsedByPeer, tk.RelayedBy)
			}
			st := c.auth.state()
			n, ok := st.Nodes["joiner-1"]
			if !ok {
				t.Fatal("node not registered")
			}
			if n.PeerID != j.id.String() || n.RelayedBy != tt.relayedBy || n.Ticket != id || n.CertPEM != o.bundle.CertPEM {
				t.Fatalf("registered node %+v", n)
			}
			if len(st.Failures) != 0 {
				t.Fatalf("a right PIN recorded %d failures", len(st.Failures))
			}
			noSecretLogged(t, c, "314159")

			// The ticket is single-use: the same PIN again is refused.
			j2 := newJoiner(t)
			again := pair(t, c.srv, j2.config("joiner-2", "314159"), j2.id, "")
			wantRefused(t, again, CodeUsed)
		})
	}
}

func TestPairCAFingerprintMismatch(t *testing.T) {
	c := newCoordinator(t)
	c.auth.addTicket(t, "314159", nil)
	j := newJoiner(t)
	cfg := j.config("joiner-1", "314159")
	cfg.CAFingerprint = strings.Repeat("ab", 32)
	o := pair(t, c.srv, cfg, j.id, "")
	if o.bundle != nil || o.joinErr == nil || !strings.Contains(o.joinErr.Error(), "fingerprint") {
		t.Fatalf("joiner accepted a CA other than the join code's: bundle %v, err %v", o.bundle != nil, o.joinErr)
	}
}

func TestPairWrongPIN(t *testing.T) {
	c := newCoordinator(t)
	id := c.auth.addTicket(t, "123456", nil)
	// Same first digit: every attempt lands on the ticket.
	wrong := []string{"123457", "100000", "199999", "123465", "111111"}
	for i, pin := range wrong {
		attempt := i + 1
		t.Run(fmt.Sprintf("attempt %d", attempt), func(t *testing.T) {
			j := newJoiner(t)
			o := pair(t, c.srv, j.config("joiner-1", pin), j.id, "")
			e := wantRefused(t, o, CodeWrongPIN)
			tk := c.auth.ticket(t, id)
			if tk.Failures != attempt {
				t.Fatalf("ticket failures %d, want %d", tk.Failures, attempt)
			}
			if attempt < ca.MaxPINFailures {
				want := fmt.Sprintf("%d attempts left", ca.MaxPINFailures-attempt)
				if !strings.Contains(e.Message, want) || tk.State != ca.TicketActive {
					t.Fatalf("message %q (ticket %s), want %q", e.Message, tk.State, want)
				}
				return
			}
			if !strings.Contains(e.Message, "burned") || tk.State != ca.TicketBurned {
				t.Fatalf("message %q (ticket %s), want the PIN burned", e.Message, tk.State)
			}
		})
	}
	t.Run("right PIN after burning", func(t *testing.T) {
		j := newJoiner(t)
		o := pair(t, c.srv, j.config("joiner-1", "123456"), j.id, "")
		wantRefused(t, o, CodeBurned)
	})
	st := c.auth.state()
	if len(st.Failures) != ca.MaxPINFailures || len(st.Nodes) != 0 {
		t.Fatalf("mesh window holds %d failures, %d nodes joined; want %d and 0", len(st.Failures), len(st.Nodes), ca.MaxPINFailures)
	}
	noSecretLogged(t, c, "123456")
}

func TestPairDecoySlot(t *testing.T) {
	c := newCoordinator(t)
	c.auth.addTicket(t, "123456", nil)
	before := c.auth.state()
	j := newJoiner(t)
	// Slot 9 holds no ticket: the exchange runs against a random secret.
	o := pair(t, c.srv, j.config("joiner-1", "923456"), j.id, "")
	e := wantRefused(t, o, CodeWrongPIN)
	if e.Message != "wrong PIN" {
		t.Fatalf("message %q, want plain %q", e.Message, "wrong PIN")
	}
	after := c.auth.state()
	if len(after.Failures) != 1 {
		t.Fatalf("mesh window holds %d failures, want 1", len(after.Failures))
	}
	after.Failures = before.Failures
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("a decoy attempt changed more than the failure window:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestPairTicketNotUsable(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*ca.Ticket)
		code string
	}{
		{"expired", func(tk *ca.Ticket) { tk.ExpiresAt = tk.CreatedAt.Add(-time.Second) }, CodeExpired},
		{"used", func(tk *ca.Ticket) { tk.State, tk.UsedBy = ca.TicketUsed, "earlier" }, CodeUsed},
		{"rejected", func(tk *ca.Ticket) { tk.State = ca.TicketRejected }, CodeRejected},
		{"pending", func(tk *ca.Ticket) { tk.State = ca.TicketPending }, CodeUsed},
		{"burned", func(tk *ca.Ticket) { tk.State, tk.Failures = ca.TicketBurned, ca.MaxPINFailures }, CodeBurned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinator(t)
			c.auth.addTicket(t, "555000", tt.mod)
			before := c.auth.state()
			j := newJoiner(t)
			o := pair(t, c.srv, j.config("joiner-1", "555000"), j.id, "")
			wantRefused(t, o, tt.code)
			if after := c.auth.state(); !reflect.DeepEqual(before, after) {
				t.Fatalf("a refused right PIN changed the state:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestPairRateLimited(t *testing.T) {
	c := newCoordinator(t)
	c.auth.addTicket(t, "777777", nil)
	// A full mesh-wide failure window, a second ago.
	for range ca.DefaultFailureLimit {
		c.auth.failAt(t, "", c.now.Add(-time.Second))
	}
	before := c.auth.state()

	t.Run("joiner", func(t *testing.T) {
		j := newJoiner(t)
		o := pair(t, c.srv, j.config("joiner-1", "777777"), j.id, "")
		wantRefused(t, o, CodeRateLimited)
	})
	t.Run("no key share sent", func(t *testing.T) {
		ch, err := sendHello(t, c.srv, mustJSON(t, validHello(t, "7")))
		wantCode(t, err, CodeRateLimited)
		if ch.Error == nil || ch.Error.Code != CodeRateLimited || len(ch.Share) != 0 {
			t.Fatalf("challenge %+v, want a rate-limit refusal without a share", ch)
		}
	})
	if after := c.auth.state(); !reflect.DeepEqual(before, after) {
		t.Fatalf("a rate-limited attempt changed the state:\nbefore %+v\nafter  %+v", before, after)
	}
	// Once the failures leave the window, the right PIN works again.
	c.srv.Now = func() time.Time { return c.now.Add(ca.DefaultFailureWindow) }
	c.auth.now = c.srv.Now
	j := newJoiner(t)
	if o := pair(t, c.srv, j.config("joiner-1", "777777"), j.id, ""); o.joinErr != nil || o.serveErr != nil {
		t.Fatalf("after the window: join %v, serve %v", o.joinErr, o.serveErr)
	}
}

func TestPairCSRKeyNotConnectingPeer(t *testing.T) {
	c := newCoordinator(t)
	id := c.auth.addTicket(t, "246810", nil)
	j, other := newJoiner(t), newJoiner(t)
	o := pair(t, c.srv, j.config("joiner-1", "246810"), other.id, "")
	wantRefused(t, o, CodeBadRequest)
	if tk := c.auth.ticket(t, id); tk.State != ca.TicketActive || tk.Failures != 0 {
		t.Fatalf("ticket %s with %d failures, want it untouched", tk.State, tk.Failures)
	}
	if st := c.auth.state(); len(st.Nodes) != 0 {
		t.Fatalf("nodes %v registered", st.Nodes)
	}
}

func TestPairNameTaken(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, c *coordinator, j joinerID)
		wantErr string // "" for success
	}{
		{
			name:    "another node has the name",
			setup:   func(t *testing.T, c *coordinator, _ joinerID) { c.auth.addNode(t, "joiner-1", newJoiner(t).id) },
			wantErr: CodeNameTaken,
		},
		{
			name: "another join waits with the name",
			setup: func(t *testing.T, c *coordinator, _ joinerID) {
				c.auth.addPending(t, control.Pending{Name: "joiner-1", PeerID: newJoiner(t).id.String()})
			},
			wantErr: CodeNameTaken,
		},
		{
			name:  "same peer pairs again",
			setup: func(t *testing.T, c *coordinator, j joinerID) { c.auth.addNode(t, "joiner-1", j.id) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinator(t)
			id := c.auth.addTicket(t, "864200", nil)
			j := newJoiner(t)
			tt.setup(t, c, j)
			o := pair(t, c.srv, j.config("joiner-1", "864200"), j.id, "")
			if tt.wantErr == "" {
				if o.joinErr != nil || o.serveErr != nil {
					t.Fatalf("join %v, serve %v", o.joinErr, o.serveErr)
				}
				checkBundle(t, c, o.bundle, j, "joiner-1", []string{"gpu", "node"})
				return
			}
			e := wantRefused(t, o, tt.wantErr)
			if !strings.Contains(e.Message, "joiner-1") {
				t.Fatalf("message %q does not name the taken name", e.Message)
			}
			if tk := c.auth.ticket(t, id); tk.State != ca.TicketActive {
				t.Fatalf("ticket %s, want it still active for another name", tk.State)
			}
		})
	}
}

func TestPairRequireApproval(t *testing.T) {
	tests := []struct {
		name    string
		approve bool
		code    string
		state   ca.TicketState
	}{
		{"approved", true, "", ca.TicketUsed},
		{"rejected", false, CodeRejected, ca.TicketRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinator(t)
			id := c.auth.addTicket(t, "902468", func(tk *ca.Ticket) { tk.RequireApproval = true })
			j := newJoiner(t)
			cfg := j.config("joiner-1", "902468")
			pendingCalls := 0
			cfg.OnPending = func() {
				pendingCalls++
				st := c.auth.state()
				p, ok := st.Pending["joiner-1"]
				if !ok || p.PeerID != j.id.String() || p.Ticket != id || p.RelayedBy != "member-a" {
					t.Errorf("pending join %+v (present %v)", p, ok)
				}
				if tk := st.Tickets[id]; tk.State != ca.TicketPending {
					t.Errorf("ticket %s while the join waits, want pending", tk.State)
				}
				if err := c.auth.decide("joiner-1", tt.approve); err != nil {
					t.Errorf("decide: %v", err)
				}
			}
			o := pair(t, c.srv, cfg, j.id, "member-a")
			if pendingCalls != 1 {
				t.Fatalf("OnPending called %d times, want 1", pendingCalls)
			}
			if tt.code == "" {
				if o.joinErr != nil || o.serveErr != nil {
					t.Fatalf("join %v, serve %v", o.joinErr, o.serveErr)
				}
				checkBundle(t, c, o.bundle, j, "joiner-1", []string{"gpu", "node"})
			} else {
				wantRefused(t, o, tt.code)
			}
			st := c.auth.state()
			if tk := st.Tickets[id]; tk.State != tt.state {
				t.Fatalf("ticket %s, want %s", tk.State, tt.state)
			}
			// A rejected join stays on record as rejected.
			if p, ok := st.Pending["joiner-1"]; ok && p.Decision != "rejected" {
				t.Fatalf("the join still waits after the decision: %+v", p)
			}
			if _, ok := st.Nodes["joiner-1"]; ok != tt.approve {
				t.Fatalf("node registered: %v, want %v", ok, tt.approve)
			}
		})
	}
}

func TestPairApprovalTimeout(t *testing.T) {
	c := newCoordinator(t)
	c.auth.addTicket(t, "902468", func(tk *ca.Ticket) { tk.RequireApproval = true })
	c.srv.ApprovalTimeout = time.Millisecond
	j := newJoiner(t)
	cfg := j.config("joiner-1", "902468")
	called := false
	cfg.OnPending = func() { called = true }
	o := pair(t, c.srv, cfg, j.id, "")
	wantRefused(t, o, CodeUnavailable)
	if !called {
		t.Fatal("OnPending not called")
	}
}

func TestPairWriteFails(t *testing.T) {
	tests := []struct {
		name string
		pin  string
	}{
		// A wrong PIN that cannot be recorded must not be answered as one.
		{"failure not recorded", "100001"},
		{"completion not recorded", "100000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinator(t)
			id := c.auth.addTicket(t, "100000", nil)
			c.auth.writeErr = errors.New("no quorum")
			j := newJoiner(t)
			o := pair(t, c.srv, j.config("joiner-1", tt.pin), j.id, "")
			wantRefused(t, o, CodeUnavailable)
			if tk := c.auth.ticket(t, id); tk.State != ca.TicketActive || tk.Failures != 0 {
				t.Fatalf("ticket %s with %d failures, want untouched", tk.State, tk.Failures)
			}
		})
	}
}

// validHello returns a well-formed hello for slot with a genuine share.
func validHello(t testing.TB, slot string) Hello {
	t.Helper()
	sid := make([]byte, 16)
	_, ya, err := ca.NewInitiator([]byte(slot+"00000"), cpaceCI, sid, nil)
	if err != nil {
		t.Fatalf("new initiator: %v", err)
	}
	return Hello{V: Version, Slot: slot, SID: sid, Share: ya}
}

// writeFrame writes body as one message: a 4-byte big-endian length, then
// body as is (mesh.WriteMsg would refuse a body that is not JSON).
func writeFrame(w io.Writer, body []byte) error {
	buf := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	_, err := w.Write(append(buf, body...))
	return err
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// sendHello writes body as the first message to Serve, reads the answer if
// any and hangs up. It returns the challenge and Serve's error.
func sendHello(t testing.TB, srv *Server, body []byte) (Challenge, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jc, sc := net.Pipe()
	served := make(chan error, 1)
	go func() {
		defer sc.Close()
		served <- srv.Serve(ctx, sc, newJoiner(t).id, "")
	}()
	_ = jc.SetDeadline(time.Now().Add(30 * time.Second))
	var ch Challenge
	// The write fails when Serve refuses the frame before reading it all.
	_ = writeFrame(jc, body)
	readErr := mesh.ReadMsg(jc, maxMsg, &ch)
	jc.Close()
	err := <-served
	if readErr != nil && err == nil {
		t.Fatalf("read challenge: %v, yet Serve succeeded", readErr)
	}
	return ch, err
}

func TestServeMalformedHello(t *testing.T) {
	good := validHello(t, "4")
	with := func(mod func(*Hello)) Hello {
		h := good
		mod(&h)
		return h
	}
	identity := make([]byte, 32)
	nonCanonical := []byte(strings.Repeat("\xff", 32))
	tests := []struct {
		name  string
		hello Hello
	}{
		{"version 0", with(func(h *Hello) { h.V = 0 })},
		{"version 2", with(func(h *Hello) { h.V = 2 })},
		{"empty slot", with(func(h *Hello) { h.Slot = "" })},
		{"letter slot", with(func(h *Hello) { h.Slot = "a" })},
		{"slot below 0", with(func(h *Hello) { h.Slot = "/" })},
		{"slot above 9", with(func(h *Hello) { h.Slot = ":" })},
		{"two-digit slot", with(func(h *Hello) { h.Slot = "12" })},
		{"multibyte slot", with(func(h *Hello) { h.Slot = "٤" })},
		{"no sid", with(func(h *Hello) { h.SID = nil })},
		{"short sid", with(func(h *Hello) { h.SID = make([]byte, 15) })},
		{"long sid", with(func(h *Hello) { h.SID = make([]byte, 65) })},
		{"no share", with(func(h *Hello) { h.Share = nil })},
		{"short share", with(func(h *Hello) { h.Share = good.Share[:31] })},
		{"long share", with(func(h *Hello) { h.Share = append(append([]byte(nil), good.Share...), 0) })},
		{"identity share", with(func(h *Hello) { h.Share = identity })},
		{"non-canonical share", with(func(h *Hello) { h.Share = nonCanonical })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinator(t)
			c.auth.addTicket(t, "400000", nil)
			before := c.auth.state()
			ch, err := sendHello(t, c.srv, mustJSON(t, tt.hello))
			wantCode(t, err, CodeBadRequest)
			if ch.Error == nil || ch.Error.Code != CodeBadRequest || len(ch.Share) != 0 {
				t.Fatalf("challenge %+v, want a bad-request refusal without a share", ch)
			}
			if after := c.auth.state(); !reflect.DeepEqual(before, after) {
				t.Fatal("a malformed hello changed the state")
			}
		})
	}
	// These never decode to a usable hello: Serve refuses them, with or
	// without a challenge, and sends no key share.
	undecodable := []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"not JSON", "hello?"},
		{"truncated", `{"v":1,"slot":"4"`},
		{"wrong types", `{"v":"1","slot":4,"sid":"!!","share":[]}`},
		{"bad base64", `{"v":1,"slot":"4","sid":"***","share":"***"}`},
		{"null", "null"},
		{"empty object", "{}"},
		{"array", "[1,2,3]"},
	}
	for _, tt := range undecodable {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinator(t)
			ch, err := sendHello(t, c.srv, []byte(tt.body))
			if err == nil {
				t.Fatal("Serve accepted an undecodable hello")
			}
			var pe *Error
			if errors.As(err, &pe) && pe.Code != CodeBadRequest {
				t.Fatalf("refusal %v, want bad request", pe)
			}
			if len(ch.Share) != 0 {
				t.Fatal("a key share was sent for an undecodable hello")
			}
		})
	}
	t.Run("oversized", func(t *testing.T) {
		c := newCoordinator(t)
		h := good
		h.Slot = strings.Repeat("4", maxMsg)
		if _, err := sendHello(t, c.srv, mustJSON(t, h)); err == nil || !errors.Is(err, mesh.ErrMessageTooLarge) {
			t.Fatalf("Serve: %v, want a too-large refusal", err)
		}
	})
}

// scriptedJoin runs a joiner that knows pin but sends the confirm body
// built by confirm (from the session's key and transcript). It returns the
// result the coordinator answered, if any, and Serve's error.
func scriptedJoin(t testing.TB, srv *Server, pin string, connected peer.ID, confirm func(isk, sid, ya, yb []byte) []byte) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jc, sc := net.Pipe()
	served := make(chan error, 1)
	go func() {
		defer sc.Close()
		served <- srv.Serve(ctx, sc, connected, "")
	}()
	finished := false
	defer func() {
		if !finished { // a Fatal below: hang up so Serve returns
			jc.Close()
			<-served
		}
	}()
	_ = jc.SetDeadline(time.Now().Add(30 * time.Second))
	sid := bytes.Repeat([]byte{1}, 16)
	ini, ya, err := ca.NewInitiator([]byte(pin), cpaceCI, sid, nil)
	if err != nil {
		t.Fatalf("new initiator: %v", err)
	}
	if err := mesh.WriteMsg(jc, Hello{V: Version, Slot: pin[:1], SID: sid, Share: ya}); err != nil {
		t.Fatalf("write hello: %v", err)
	}
	var ch Challenge
	if err := mesh.ReadMsg(jc, maxMsg, &ch); err != nil || ch.Error != nil {
		t.Fatalf("read challenge: %v %v", err, ch.Error)
	}
	isk, err := ini.Finish(ch.Share)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	var res Result
	_ = writeFrame(jc, confirm(isk, sid, ya, ch.Share))
	_ = mesh.ReadMsg(jc, maxMsg, &res)
	jc.Close()
	finished = true
	return res, <-served
}

func TestServeBadConfirm(t *testing.T) {
	j := newJoiner(t)
	goodCSR, err := ca.NewCSR(j.key, "joiner-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "joiner-1"}}, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	badNameCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "-joiner 1"}}, j.key)
	if err != nil {
		t.Fatal(err)
	}
	intruder := newJoiner(t)
	intruderCSR, err := ca.NewCSR(intruder.key, "joiner-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	// tagged returns a confirm for csr with a right tag.
	tagged := func(csr []byte) func(isk, sid, ya, yb []byte) []byte {
		return func(isk, sid, ya, yb []byte) []byte {
			return mustJSON(t, Confirm{CSR: csr, Tag: ca.Tag(isk, "palyra-pair-confirm", sid, ya, yb, csr)})
		}
	}
	tests := []struct {
		name     string
		confirm  func(isk, sid, ya, yb []byte) []byte
		code     string // "" when Serve ends with a read error, not a refusal
		failures int
	}{
		{name: "garbage CSR", confirm: tagged([]byte("csr")), code: CodeBadRequest},
		{name: "no CSR", confirm: tagged(nil), code: CodeBadRequest},
		{name: "ECDSA CSR", confirm: tagged(ecCSR), code: CodeBadRequest},
		{name: "invalid name", confirm: tagged(badNameCSR), code: CodeBadRequest},
		{
			// A relay that swaps in its own CSR breaks the tag: it counts
			// as a wrong PIN and gets no certificate.
			name: "CSR swapped in transit",
			confirm: func(isk, sid, ya, yb []byte) []byte {
				return mustJSON(t, Confirm{CSR: intruderCSR, Tag: ca.Tag(isk, "palyra-pair-confirm", sid, ya, yb, goodCSR)})
			},
			code: CodeWrongPIN, failures: 1,
		},
		{
			name: "tag under the bundle label",
			confirm: func(isk, sid, ya, yb []byte) []byte {
				return mustJSON(t, Confirm{CSR: goodCSR, Tag: ca.Tag(isk, "palyra-pair-bundle", sid, ya, yb, goodCSR)})
			},
			code: CodeWrongPIN, failures: 1,
		},
		{name: "not JSON", confirm: func(_, _, _, _ []byte) []byte { return []byte("confirm") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinator(t)
			id := c.auth.addTicket(t, "271828", nil)
			res, err := scriptedJoin(t, c.srv, "271828", j.id, tt.confirm)
			if len(res.Bundle) != 0 || len(res.Tag) != 0 {
				t.Fatal("the coordinator sent a bundle")
			}
			if tt.code == "" {
				var pe *Error
				if err == nil || errors.As(err, &pe) {
					t.Fatalf("Serve: %v, want a read error", err)
				}
			} else {
				wantCode(t, err, tt.code)
				if res.Error == nil || res.Error.Code != tt.code {
					t.Fatalf("result %+v, want refusal %s", res, tt.code)
				}
			}
			st := c.auth.state()
			if tk := st.Tickets[id]; tk.State != ca.TicketActive || tk.Failures != tt.failures || len(st.Failures) != tt.failures {
				t.Fatalf("ticket %s with %d failures, window %d; want active with %d", tk.State, tk.Failures, len(st.Failures), tt.failures)
			}
			if len(st.Nodes) != 0 {
				t.Fatal("a node was registered")
			}
		})
	}
}

// racingAuthority changes the ticket between the coordinator's read of it
// and the replicated write, as a concurrent exchange or operator would.
type racingAuthority struct {
	*fakeAuthority
	race func()
}

func (r *racingAuthority) NameTaken(name, peerID string) bool {
	r.race()
	return r.fakeAuthority.NameTaken(name, peerID)
}

func TestPairTicketChangesMidExchange(t *testing.T) {
	ctx := context.Background()
	other := newJoiner(t).id.String()
	burn := func(f *fakeAuthority, id string) error {
		for range ca.MaxPINFailures {
			if _, err := f.Fail(ctx, id); err != nil {
				return err
			}
		}
		return nil
	}
	tests := []struct {
		name     string
		approval bool
		// change writes to the ticket id, as a concurrent exchange or
		// operator would.
		change func(f *fakeAuthority, id string) error
		code   string
	}{
		{"burned by concurrent wrong PINs", false, burn, CodeBurned},
		{"used by a concurrent join", false, func(f *fakeAuthority, id string) error {
			return f.Complete(ctx, id, control.Node{Name: "other", PeerID: other})
		}, CodeUsed},
		// Only a join waiting for approval can be rejected.
		{"rejected by an operator", true, func(f *fakeAuthority, id string) error {
			if err := f.Park(ctx, control.Pending{Name: "other", PeerID: other, Ticket: id}); err != nil {
				return err
			}
			return f.decide("other", false)
		}, CodeRejected},
		{"burned before parking", true, burn, CodeBurned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinator(t)
			id := c.auth.addTicket(t, "161803", func(tk *ca.Ticket) { tk.RequireApproval = tt.approval })
			c.srv.Authority = &racingAuthority{fakeAuthority: c.auth, race: func() {
				if err := tt.change(c.auth, id); err != nil {
					t.Errorf("change the ticket: %v", err)
				}
			}}
			j := newJoiner(t)
			cfg := j.config("joiner-1", "161803")
			cfg.OnPending = func() { t.Error("the join was parked on a dead ticket") }
			o := pair(t, c.srv, cfg, j.id, "")
			wantRefused(t, o, tt.code)
			st := c.auth.state()
			n, joined := st.Nodes["joiner-1"]
			p, waits := st.Pending["joiner-1"]
			if joined || waits {
				t.Fatalf("node %+v (%v), pending %+v (%v) after a refused join", n, joined, p, waits)
			}
		})
	}
}

// TestPairRevokedPeer: a peer whose identity was revoked cannot pair again
// with a fresh ticket, and is told so (not "name taken").
func TestPairRevokedPeer(t *testing.T) {
	c := newCoordinator(t)
	j := newJoiner(t)
	c.auth.addNode(t, "joiner-1", j.id)
	if _, err := c.auth.apply(context.Background(), control.OpNodeRevoke, control.NodeRevoke{Name: "joiner-1"}); err != nil {
		t.Fatal(err)
	}
	id := c.auth.addTicket(t, "864200", nil)
	o := pair(t, c.srv, j.config("joiner-2", "864200"), j.id, "")
	wantRefused(t, o, CodeRevoked)
	if tk := c.auth.ticket(t, id); tk.State != ca.TicketActive {
		t.Fatalf("ticket %s, want it still active", tk.State)
	}
}
