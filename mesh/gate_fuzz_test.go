package mesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/ca"
)

// authBench is a member and a stranger host connected to it: the stranger
// sends hellos, the member's gate judges them.
type authBench struct {
	authority *ca.CA
	member    host.Host
	gate      *Gate
	stranger  host.Host
	// conn is the member's connection from the stranger, what accept sees.
	conn network.Conn
	// strangerCert is a valid certificate for the stranger's key.
	strangerCert *ca.Certificate
}

func authBenchKey(tb testing.TB) (crypto.PrivKey, ed25519.PublicKey) {
	tb.Helper()
	key, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := pub.Raw()
	if err != nil {
		tb.Fatal(err)
	}
	return key, raw
}

func newAuthBench(tb testing.TB) *authBench {
	tb.Helper()
	now := time.Now()
	authority, err := ca.New("home", now, 24*time.Hour, nil)
	if err != nil {
		tb.Fatal(err)
	}
	mkey, mpub := authBenchKey(tb)
	mcert, err := authority.Issue(now, mpub, "member", nil, time.Hour, nil)
	if err != nil {
		tb.Fatal(err)
	}
	b := &authBench{authority: authority, gate: NewGate(GateConfig{CA: authority, Cert: mcert})}
	if b.member, err = NewHost(mkey, []string{"/ip4/127.0.0.1/tcp/0"}, b.gate); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.member.Close() })

	skey, spub := authBenchKey(tb)
	if b.strangerCert, err = authority.Issue(now, spub, "stranger", nil, time.Hour, nil); err != nil {
		tb.Fatal(err)
	}
	if b.stranger, err = NewHost(skey, []string{"/ip4/127.0.0.1/tcp/0"}, NewGate(GateConfig{})); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.stranger.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.stranger.Connect(ctx, peer.AddrInfo{ID: b.member.ID(), Addrs: b.member.Addrs()}); err != nil {
		tb.Fatal(err)
	}
	conns := b.member.Network().ConnsToPeer(b.stranger.ID())
	if len(conns) == 0 {
		tb.Fatal("member has no connection from the stranger")
	}
	b.conn = conns[0]
	return b
}

// framed is hello as the handshake sends it.
func framed(tb testing.TB, hello any) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := WriteMsg(&buf, hello); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// TestGateHandleRefusesBadHello writes crafted hellos on a real auth stream
// to a member and checks its answer: a refusal in words, or a reset, and the
// stranger never admitted; only the stranger's own valid certificate admits
// it.
func TestGateHandleRefusesBadHello(t *testing.T) {
	b := newAuthBench(t)
	_, otherPub := authBenchKey(t)
	otherKeyCert, err := b.authority.Issue(time.Now(), otherPub, "stranger", nil, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(b.strangerCert.Raw)
	tampered[len(tampered)-1] ^= 0x80

	tests := []struct {
		name      string
		hello     []byte
		wantReply string // substring of the refusal; "" means a reset or EOF
		admitted  bool
	}{
		{name: "nothing", hello: nil},
		{name: "garbage", hello: []byte("\xde\xad\xbe\xef garbage")},
		{name: "header over the limit", hello: binary.BigEndian.AppendUint32(nil, 64<<10+1)},
		{name: "truncated", hello: framed(t, authHello{Cert: b.strangerCert.Raw})[:100]},
		{name: "not JSON", hello: append(binary.BigEndian.AppendUint32(nil, 3), "abc"...)},
		{name: "no certificate", hello: framed(t, authHello{}), wantReply: "malformed"},
		{name: "error only", hello: framed(t, authHello{Error: "go away"}), wantReply: "malformed"},
		{name: "certificate is garbage", hello: framed(t, authHello{Cert: []byte("not DER")}), wantReply: "malformed"},
		{name: "CA certificate", hello: framed(t, authHello{Cert: b.authority.Cert.Raw}), wantReply: "not a node certificate"},
		{name: "certificate of another key", hello: framed(t, authHello{Cert: otherKeyCert.Raw}), wantReply: "not the peer's key"},
		{name: "tampered certificate", hello: framed(t, authHello{Cert: tampered}), wantReply: "signature does not verify"},
		{name: "own certificate", hello: framed(t, authHello{Cert: b.strangerCert.Raw}), admitted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.gate.forget(b.stranger.ID())
			reply, err := sendHello(t, b, tt.hello)
			_, admitted := b.gate.Peer(b.stranger.ID())
			if admitted != tt.admitted {
				t.Fatalf("admitted = %v, want %v (reply %+v, %v)", admitted, tt.admitted, reply, err)
			}
			switch {
			case tt.admitted:
				if err != nil || reply.Error != "" || !bytes.Equal(reply.Cert, b.gate.cert.Raw) {
					t.Errorf("reply = %+v, %v; want the member's certificate", reply, err)
				}
			case tt.wantReply == "":
				if err == nil && (reply.Error == "" || len(reply.Cert) != 0) {
					t.Errorf("reply = %+v; want a reset, EOF or a refusal", reply)
				}
			default:
				if err != nil || !strings.Contains(reply.Error, tt.wantReply) || len(reply.Cert) != 0 {
					t.Errorf("reply = %+v, %v; want a refusal saying %q and no certificate", reply, err, tt.wantReply)
				}
			}
		})
	}
}

// sendHello opens an auth stream from the stranger, writes raw and reads the
// member's answer.
func sendHello(t *testing.T, b *authBench, raw []byte) (authHello, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := b.stranger.NewStream(ctx, b.member.ID(), AuthProtocol)
	if err != nil {
		t.Fatalf("open auth stream: %v", err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := s.Write(raw); err != nil {
		return authHello{}, err
	}
	// End our side so a short hello reaches the member's ReadFull as EOF.
	if err := s.CloseWrite(); err != nil {
		return authHello{}, err
	}
	var reply authHello
	err = ReadMsg(s, 64<<10, &reply)
	if err == nil {
		// The member writes one message and closes.
		if _, extra := io.Copy(io.Discard, s); extra != nil {
			return reply, extra
		}
	}
	return reply, err
}

// FuzzAuthHello feeds arbitrary bytes to the responder's side of the
// handshake. Each input is read three ways: as the framed hello off the
// wire (ReadMsg), as the bare JSON hello, and as the certificate DER itself;
// each certificate found goes to the gate's accept with a real libp2p
// connection. accept must not panic, must wrap ErrNotAuthenticated when it
// refuses, and must admit only the exact certificate the CA signed for the
// connection's key.
func FuzzAuthHello(f *testing.F) {
	b := newAuthBench(f)
	valid := b.strangerCert.Raw
	f.Add(framed(f, authHello{Cert: valid}))
	jsonHello, err := json.Marshal(authHello{Cert: valid})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(jsonHello)
	f.Add(valid)
	f.Add(b.authority.Cert.Raw)
	f.Add(framed(f, authHello{Error: "refused"}))
	f.Add([]byte(`{"cert":null,"error":""}`))
	f.Add([]byte(`{"cert":"MAA="}`))
	f.Add(binary.BigEndian.AppendUint32(nil, 64<<10+1))

	stranger := b.stranger.ID()
	f.Fuzz(func(t *testing.T, data []byte) {
		var certs [][]byte
		var hello authHello
		if ReadMsg(bytes.NewReader(data), 64<<10, &hello) == nil {
			certs = append(certs, hello.Cert)
		}
		hello = authHello{}
		if json.Unmarshal(data, &hello) == nil {
			certs = append(certs, hello.Cert)
		}
		certs = append(certs, data)
		for _, der := range certs {
			b.gate.forget(stranger)
			err := b.gate.accept(b.conn, der)
			got, admitted := b.gate.Peer(stranger)
			if err != nil {
				if !errors.Is(err, ErrNotAuthenticated) {
					t.Fatalf("accept refused with %v, want it to wrap ErrNotAuthenticated", err)
				}
				if admitted {
					t.Fatal("accept refused the certificate but admitted the peer")
				}
				continue
			}
			if !admitted || !bytes.Equal(got.Raw, valid) || !bytes.Equal(der, valid) {
				t.Fatalf("accept admitted %x (recorded %v), want only the signed certificate", der, admitted)
			}
		}
	})
}
