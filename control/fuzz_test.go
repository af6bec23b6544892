package control_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/palyra-mesh/palyra/control"
)

// fuzzEntries is how many raft log entries one fuzz input may hold: the
// input is split at newlines (encoded commands never contain one), so the
// fuzzer can drive a ticket through its states.
const fuzzEntries = 8

// FuzzApply applies arbitrary bytes as raft log data to a mesh holding a
// ticket, a pending join and a node. Apply must not panic, must answer every
// entry with nil, a PairFailResult or an error, must turn undecodable data
// into ErrBadCmd, and must be deterministic: two replicas applying the same
// entries hold the same state (compared through their snapshots).
func FuzzApply(f *testing.F) {
	seed := func(entries ...[]byte) {
		f.Add(bytes.Join(entries, []byte("\n")))
	}
	cmd := func(op control.Op, at time.Time, v any) []byte {
		b, err := control.NewCommand(op, at, v)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	later := t0.Add(time.Minute)
	seed(cmd(control.OpInit, t0, founder()))
	seed(cmd(control.OpTicketCreate, t0, ticket("t2", "223456", t0, time.Minute)), cmd(control.OpTicketCreate, later, ticket("t3", "223457", later, time.Hour)))
	seed(cmd(control.OpPairFail, t0, control.PairFail{Ticket: "t1"}), cmd(control.OpPairFail, t0, control.PairFail{}))
	seed(cmd(control.OpPairPending, t0, control.PairPending{Pending: control.Pending{Name: "n2", Ticket: "t1"}}),
		cmd(control.OpPairDecide, t0, control.PairDecide{Name: "n2", Approve: true}),
		cmd(control.OpPairComplete, t0, control.PairComplete{Ticket: "t1", Node: control.Node{Name: "n2"}}))
	seed(cmd(control.OpPairDecide, t0, control.PairDecide{Name: "waiting"}), cmd(control.OpPairComplete, t0, control.PairComplete{Ticket: "ta", Node: control.Node{Name: "waiting"}}))
	seed(cmd(control.OpPairComplete, t0.Add(48*time.Hour), control.PairComplete{Ticket: "t1", Node: control.Node{Name: "founder", PeerID: "x"}}))
	seed([]byte(`{"op":"ticket.create","at":"2030-03-04T10:00:00Z","v":{"id":"","pin":"\u0000"}}`))
	seed([]byte(`{"op":"pair.pending","at":"0001-01-01T00:00:00Z","v":{"pending":null}}`))
	seed([]byte(`{"op":"ticket.create","v":null}`))
	seed([]byte("null"), []byte("{}"), []byte(""), []byte("\xff"))

	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := fuzzFSM(t), fuzzFSM(t)
		for i, entry := range bytes.SplitN(data, []byte("\n"), fuzzEntries) {
			log := &raft.Log{Index: uint64(i + 2), Term: 1, Type: raft.LogCommand, Data: entry}
			res := a.Apply(log)
			switch r := res.(type) {
			case nil, control.PairFailResult:
			case error:
				var c control.Command
				if json.Unmarshal(entry, &c) != nil && !errors.Is(r, control.ErrBadCmd) {
					t.Fatalf("entry %d does not decode, but Apply = %v, want ErrBadCmd", i, r)
				}
			default:
				t.Fatalf("entry %d: Apply returned %T %#v", i, res, res)
			}
			b.Apply(log)
		}
		if sa, sb := snapshotBytes(t, a), snapshotBytes(t, b); !bytes.Equal(sa, sb) {
			t.Fatalf("replicas differ:\n%s\n%s", sa, sb)
		}
	})
}

// fuzzFSM returns a replica with something of each kind in its state.
func fuzzFSM(t *testing.T) *control.FSM {
	t.Helper()
	f := initialised(t)
	applyOK(t, f, control.OpTicketCreate, t0, ticket("t1", "123456", t0, 10*time.Minute))
	applyOK(t, f, control.OpTicketCreate, t0, approvalTicket("ta", "923456", t0, 10*time.Minute))
	applyOK(t, f, control.OpPairPending, t0, control.PairPending{Pending: control.Pending{Name: "waiting", PeerID: "pw", Ticket: "ta"}})
	return f
}

// snapshotBytes is what f persists: maps are encoded in key order, so equal
// states give equal bytes.
func snapshotBytes(t *testing.T, f *control.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	rc := persist(t, snap)
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
