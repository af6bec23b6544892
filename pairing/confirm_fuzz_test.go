package pairing

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/palyra-mesh/palyra/ca"
)

// FuzzServeConfirm runs a genuine exchange with a joiner that knows the
// PIN up to the Confirm, then sends body in its place. With sign set and a
// body that decodes, the harness puts the session's right tag on the
// decoded CSR, so the fuzzer reaches the CSR checks behind the tag; without
// it the body goes as is and can never carry the tag of a fresh session
// key. Serve must not panic, and:
//   - an undecodable or oversized confirm ends with a read error and
//     changes nothing;
//   - a confirm with a wrong tag is a wrong PIN, recorded exactly once, and
//     registers no node;
//   - a rightly tagged confirm is paired only when its CSR is the joiner's
//     key under a free name; the certificate is then for that key and name
//     and the ticket is used; any other CSR is refused with bad_request or
//     name_taken and records nothing.
func FuzzServeConfirm(f *testing.F) {
	const pin = "271828"
	j := newJoiner(f)
	csr := func(name string) []byte {
		b, err := ca.NewCSR(j.key, name, nil)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	intruder := newJoiner(f)
	intruderCSR, err := ca.NewCSR(intruder.key, "joiner-1", nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range [][]byte{csr("joiner-1"), csr(founderName), intruderCSR, []byte("csr"), nil} {
		body := mustJSON(f, Confirm{CSR: c, Tag: make([]byte, 32)})
		f.Add(body, true)
		f.Add(body, false)
	}
	f.Add([]byte(`{"csr":"","tag":""}`), true)
	f.Add([]byte(`{"csr":null}`), false)
	f.Add([]byte("confirm"), false)
	f.Add([]byte("null"), true)
	f.Add([]byte{}, false)

	f.Fuzz(func(t *testing.T, body []byte, sign bool) {
		c := newCoordinator(t)
		id := c.auth.addTicket(t, pin, nil)
		var sent Confirm
		decoded := len(body) <= maxMsg && json.Unmarshal(body, &sent) == nil
		tagged := sign && decoded
		if tagged {
			// The right tag is 32 bytes: the confirm sent must still fit.
			sent.Tag = make([]byte, 32)
			decoded = len(mustJSON(t, sent)) <= maxMsg
			tagged = decoded
		}
		res, err := scriptedJoin(t, c.srv, pin, j.id, func(isk, sid, ya, yb []byte) []byte {
			if !tagged {
				return body
			}
			sent.Tag = ca.Tag(isk, "palyra-pair-confirm", sid, ya, yb, sent.CSR)
			return mustJSON(t, sent)
		})
		st := c.auth.state()
		tk := st.Tickets[id]
		var pe *Error
		isRefusal := errors.As(err, &pe)

		switch {
		case !decoded:
			if err == nil || isRefusal || len(res.Bundle) != 0 || res.Error != nil {
				t.Fatalf("undecodable confirm: Serve = %v, result %+v; want a read error and no answer", err, res)
			}
			if len(st.Failures) != 0 || len(st.Nodes) != 0 || tk.State != ca.TicketActive || tk.Failures != 0 {
				t.Fatalf("an undecodable confirm changed the state: %+v", st)
			}

		case !tagged:
			wantCode(t, err, CodeWrongPIN)
			if res.Error == nil || res.Error.Code != CodeWrongPIN || len(res.Bundle) != 0 {
				t.Fatalf("untagged confirm answered with %+v", res)
			}
			if len(st.Failures) != 1 || tk.Failures != 1 || len(st.Nodes) != 0 {
				t.Fatalf("wrong PIN recorded as %d failures (ticket %d), %d nodes; want 1, 1, 0", len(st.Failures), tk.Failures, len(st.Nodes))
			}

		default:
			pub, name, csrErr := ca.ParseCSR(sent.CSR)
			pairs := csrErr == nil && pub.Equal(j.pub) && name != founderName
			if len(st.Failures) != 0 || tk.Failures != 0 {
				t.Fatalf("a rightly tagged confirm counted as a wrong PIN: %+v", st)
			}
			if !pairs {
				if !isRefusal || (pe.Code != CodeBadRequest && pe.Code != CodeNameTaken) {
					t.Fatalf("CSR %x (%v): Serve = %v, want bad_request or name_taken", sent.CSR, csrErr, err)
				}
				if res.Error == nil || res.Error.Code != pe.Code || len(res.Bundle) != 0 || len(st.Nodes) != 0 || tk.State != ca.TicketActive {
					t.Fatalf("refused CSR answered with %+v, state %+v", res, st)
				}
				return
			}
			if err != nil || res.Error != nil {
				t.Fatalf("the joiner's own CSR for %q: Serve = %v, result error %v", name, err, res.Error)
			}
			b, err := decodeBundle(res.Bundle)
			if err != nil {
				t.Fatalf("bundle: %v", err)
			}
			checkBundle(t, c, b, j, name, []string{"gpu", "node"})
			n, ok := st.Nodes[name]
			if len(st.Nodes) != 1 || !ok || n.PeerID != j.id.String() || tk.State != ca.TicketUsed {
				t.Fatalf("after pairing %q: nodes %+v, ticket %s", name, st.Nodes, tk.State)
			}
		}
		if len(res.Bundle) != 0 && (res.Error != nil || len(res.Tag) != 32) {
			t.Fatalf("bundle sent with error %v and a %d-byte tag", res.Error, len(res.Tag))
		}
	})
}
