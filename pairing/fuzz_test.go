package pairing

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/mesh"
)

// wellFormed reports whether Serve must accept h and answer with a share.
func wellFormed(h Hello) bool {
	if h.V != Version || len(h.Slot) != 1 || h.Slot[0] < '0' || h.Slot[0] > '9' || len(h.SID) < 16 || len(h.SID) > 64 {
		return false
	}
	_, _, err := ca.Respond([]byte("any"), cpaceCI, h.SID, h.Share, nil)
	return err == nil
}

// FuzzServeHello sends arbitrary bytes as the first message to Serve: it
// must not panic, must never succeed (no confirm follows), must answer a
// well-formed hello with a share and anything else with a bad-request
// refusal or silence, and must record nothing.
func FuzzServeHello(f *testing.F) {
	c := newCoordinator(f)
	c.auth.addTicket(f, "400000", nil)
	f.Add(mustJSON(f, validHello(f, "4")))
	f.Add(mustJSON(f, validHello(f, "5"))) // decoy slot
	bad := validHello(f, "4")
	bad.Share = make([]byte, 32)
	f.Add(mustJSON(f, bad))
	f.Add([]byte(`{"v":1,"slot":"4","sid":"AAAAAAAAAAAAAAAAAAAAAA==","share":"AAAA"}`))
	f.Add([]byte("{}"))
	f.Add([]byte("null"))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, body []byte) {
		ch, err := sendHello(t, c.srv, body)
		if err == nil {
			t.Fatal("Serve succeeded on a hello alone")
		}
		var h Hello
		decodeErr := json.Unmarshal(body, &h)
		switch {
		case len(body) > maxMsg || decodeErr != nil:
			if ch.Error != nil || len(ch.Share) != 0 {
				t.Fatalf("Serve answered an undecodable hello: %+v", ch)
			}
		case wellFormed(h):
			if ch.Error != nil || len(ch.Share) != 32 {
				t.Fatalf("Serve refused a well-formed hello: %+v", ch)
			}
		default:
			if ch.Error == nil || ch.Error.Code != CodeBadRequest || len(ch.Share) != 0 {
				t.Fatalf("malformed hello answered with %+v", ch)
			}
			wantCode(t, err, CodeBadRequest)
		}
		if st := c.auth.state(); len(st.Failures) != 0 || len(st.Nodes) != 0 || len(st.Pending) != 0 {
			t.Fatalf("a hello changed the state: %+v", st)
		}
	})
}

// FuzzJoinerResult feeds the joiner arbitrary Challenge and Result
// messages. An empty challenge stands for a genuine one from a responder
// who knows the PIN; the result is then fuzzed alone. The joiner must not
// panic and must never return a bundle: no fuzzed result carries the tag of
// a fresh session key.
func FuzzJoinerResult(f *testing.F) {
	const pin = "314159"
	j := newJoiner(f)
	authority, err := ca.New(testMeshID, time.Now(), 24*time.Hour, nil)
	if err != nil {
		f.Fatal(err)
	}
	cert, err := authority.Issue(time.Now(), j.pub, "joiner-1", []string{"node"}, time.Hour, nil)
	if err != nil {
		f.Fatal(err)
	}
	bundle := mustJSON(f, Bundle{
		MeshID: testMeshID, Name: "joiner-1", CACertPEM: string(authority.CertPEM()), CertPEM: string(cert.PEM()),
		Roles: cert.Roles, Peers: []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + j.id.String()},
	})
	result := mustJSON(f, Result{Bundle: bundle, Tag: bytes.Repeat([]byte{7}, 32)})
	_, share, err := ca.NewInitiator([]byte(pin), cpaceCI, make([]byte, 16), nil)
	if err != nil {
		f.Fatal(err)
	}
	challenge := mustJSON(f, Challenge{Share: share})
	f.Add([]byte(nil), result)
	f.Add([]byte(nil), []byte(`{"pending":true}`))
	f.Add([]byte(nil), []byte(`{"error":{"code":"wrong_pin","message":"wrong PIN"}}`))
	f.Add([]byte(nil), []byte(`{"bundle":"e30=","tag":""}`))
	f.Add([]byte(nil), []byte("null"))
	f.Add(challenge, result)
	f.Add([]byte(`{"error":{"code":"rate_limited","message":"slow down"}}`), []byte(nil))
	f.Add([]byte(`{"share":"AAAA"}`), result)
	f.Fuzz(func(t *testing.T, challenge, result []byte) {
		cfg := j.config("joiner-1", pin)
		cfg.OnPending = func() {}
		respond := func(rw io.ReadWriter) error {
			var hello Hello
			if err := mesh.ReadMsg(rw, maxMsg, &hello); err != nil {
				return err
			}
			if len(challenge) == 0 {
				yb, _, err := ca.Respond([]byte(pin), cpaceCI, hello.SID, hello.Share, nil)
				if err != nil {
					return err
				}
				if err := mesh.WriteMsg(rw, Challenge{Share: yb}); err != nil {
					return err
				}
			} else if writeFrame(rw, challenge) != nil {
				return nil // the joiner hung up
			}
			var conf Confirm
			if mesh.ReadMsg(rw, maxMsg, &conf) != nil {
				return nil
			}
			// Twice: a pending result is followed by the final one.
			for range 2 {
				if writeFrame(rw, result) != nil {
					return nil
				}
			}
			return nil
		}
		b, err, respErr := runJoiner(t, cfg, respond)
		if respErr != nil {
			t.Fatalf("responder: %v", respErr)
		}
		if b != nil {
			t.Fatalf("the joiner accepted an unauthenticated bundle: %+v", b)
		}
		if err == nil {
			t.Fatal("no bundle and no error")
		}
	})
}

// FuzzDecodeBundle: decodeBundle never panics, returns a bundle exactly
// when it returns no error, and a bundle it returns has every required
// field and survives a round trip.
func FuzzDecodeBundle(f *testing.F) {
	f.Add(validBundleJSON(f))
	f.Add([]byte(`{"mesh_id":"m","name":"n","ca_cert_pem":"c"}`))
	f.Add([]byte(`{"mesh_id":"m","name":"n","ca_cert_pem":"c","cert_pem":"","roles":null}`))
	f.Add([]byte("{}"))
	f.Add([]byte("null"))
	f.Add([]byte(`"bundle"`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := decodeBundle(in)
		if (b == nil) == (err == nil) {
			t.Fatalf("bundle %v with error %v", b, err)
		}
		if err != nil {
			return
		}
		if b.MeshID == "" || b.Name == "" || b.CACertPEM == "" || b.CertPEM == "" {
			t.Fatalf("bundle missing a field: %+v", b)
		}
		back, err := decodeBundle(mustJSON(t, b))
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if back.MeshID != b.MeshID || back.Name != b.Name || back.CACertPEM != b.CACertPEM ||
			back.CertPEM != b.CertPEM || !slices.Equal(back.Roles, b.Roles) || !slices.Equal(back.Peers, b.Peers) {
			t.Fatalf("round trip changed the bundle: %+v, then %+v", b, back)
		}
	})
}

// FuzzRelayHeader feeds arbitrary stream bytes to ReadRelayHeader: it must
// not panic, and it accepts only a version-1 header naming a valid peer.
func FuzzRelayHeader(f *testing.F) {
	j := newJoiner(f)
	f.Add(frame(mustJSON(f, RelayHeader{V: Version, Joiner: j.id.String()})))
	f.Add(frame(mustJSON(f, RelayHeader{V: 2, Joiner: j.id.String()})))
	f.Add(frame(mustJSON(f, RelayHeader{V: Version, Joiner: "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"})))
	f.Add(frame(mustJSON(f, RelayHeader{V: Version})))
	f.Add(frame([]byte("{}")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, stream []byte) {
		id, err := ReadRelayHeader(readStream{r: bytes.NewReader(stream)})
		if err != nil {
			if id != "" {
				t.Fatalf("peer %q returned with error %v", id, err)
			}
			return
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("accepted an invalid peer ID: %v", err)
		}
		var h RelayHeader
		if err := mesh.ReadMsg(bytes.NewReader(stream), 4096, &h); err != nil || h.V != Version {
			t.Fatalf("accepted header %+v (%v)", h, err)
		}
		if want, err := peer.Decode(h.Joiner); err != nil || want != id {
			t.Fatalf("accepted %s for joiner %q", id, h.Joiner)
		}
	})
}
