package control_test

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
)

// t0 is the leader's clock reading of the first command of every test.
var t0 = time.Date(2030, time.March, 4, 10, 0, 0, 0, time.UTC)

// ticket returns an active ticket created at created, valid for ttl.
func ticket(id, pin string, created time.Time, ttl time.Duration) ca.Ticket {
	return ca.Ticket{
		ID:        id,
		PIN:       pin,
		Roles:     []string{ca.DefaultTicketRole},
		CreatedAt: created,
		ExpiresAt: created.Add(ttl),
		CreatedBy: "admin",
		CreatedOn: "founder",
		State:     ca.TicketActive,
	}
}

// approvalTicket is ticket with RequireApproval: its join waits for an
// operator (pair.pending, pair.decide).
func approvalTicket(id, pin string, created time.Time, ttl time.Duration) ca.Ticket {
	tk := ticket(id, pin, created, ttl)
	tk.RequireApproval = true
	return tk
}

// isAny reports whether err wraps one of targets.
func isAny(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func founder() control.Init {
	return control.Init{
		MeshID:    "home",
		CACertPEM: "ca-cert",
		CAKeyPEM:  "ca-key",
		Node:      control.Node{Name: "founder", PeerID: "peer-founder", Roles: []string{"voter"}, JoinedAt: t0},
	}
}

// apply encodes one command and applies it as the next raft log entry.
func apply(t *testing.T, f *control.FSM, op control.Op, at time.Time, v any) any {
	t.Helper()
	data, err := control.NewCommand(op, at, v)
	if err != nil {
		t.Fatalf("NewCommand(%s): %v", op, err)
	}
	return f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: data})
}

// applyOK applies a command that must succeed and returns its result.
func applyOK(t *testing.T, f *control.FSM, op control.Op, at time.Time, v any) any {
	t.Helper()
	res := apply(t, f, op, at, v)
	if err, ok := res.(error); ok {
		t.Fatalf("apply %s: %v", op, err)
	}
	return res
}

// applyErr applies a command that must fail and returns its error.
func applyErr(t *testing.T, f *control.FSM, op control.Op, at time.Time, v any) error {
	t.Helper()
	res := apply(t, f, op, at, v)
	err, ok := res.(error)
	if !ok {
		t.Fatalf("apply %s: got result %#v, want an error", op, res)
	}
	return err
}

// stateOf returns a deep copy of f's state (Read forbids keeping references).
func stateOf(t *testing.T, f *control.FSM) *control.State {
	t.Helper()
	var b []byte
	var err error
	f.Read(func(s *control.State) { b, err = json.Marshal(s) })
	if err != nil {
		t.Fatalf("encode state: %v", err)
	}
	var st control.State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("decode state: %v", err)
	}
	return &st
}

// initialised returns an FSM whose mesh exists.
func initialised(t *testing.T) *control.FSM {
	t.Helper()
	f := control.NewFSM()
	applyOK(t, f, control.OpInit, t0, founder())
	return f
}

func TestNewCommand(t *testing.T) {
	data, err := control.NewCommand(control.OpPairFail, t0, control.PairFail{Ticket: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	var c control.Command
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("decode command: %v", err)
	}
	if c.Op != control.OpPairFail || !c.At.Equal(t0) || string(c.V) != `{"ticket":"t1"}` {
		t.Errorf("command = %+v (v %s)", c, c.V)
	}
	if _, err := control.NewCommand(control.OpInit, t0, make(chan int)); err == nil {
		t.Error("NewCommand of an unencodable payload: no error")
	}
}

func TestApplyInit(t *testing.T) {
	f := control.NewFSM()
	if res := applyOK(t, f, control.OpInit, t0, founder()); res != nil {
		t.Errorf("init result = %#v, want nil", res)
	}
	st := stateOf(t, f)
	if st.MeshID != "home" || st.CACertPEM != "ca-cert" || st.CAKeyPEM != "ca-key" {
		t.Errorf("mesh = %q %q %q", st.MeshID, st.CACertPEM, st.CAKeyPEM)
	}
	if n, ok := st.Nodes["founder"]; !ok || n.PeerID != "peer-founder" {
		t.Errorf("founder node = %+v, %v", n, ok)
	}

	again := founder()
	again.MeshID = "other"
	err := applyErr(t, f, control.OpInit, t0.Add(time.Second), again)
	if !errors.Is(err, control.ErrConflict) {
		t.Errorf("second init: %v, want ErrConflict", err)
	}
	if st := stateOf(t, f); st.MeshID != "home" {
		t.Errorf("second init changed the mesh ID to %q", st.MeshID)
	}
}

func TestApplyTicketCreateSlots(t *testing.T) {
	tests := []struct {
		name     string
		approval bool                 // the first ticket "t1" (PIN 123456) requires approval
		first    func(f *control.FSM) // brings t1 into its state
		at       time.Time            // when the second ticket is created
		pin      string
		wantErr  error
	}{
		{name: "other digit is free", at: t0, pin: "923456"},
		{name: "same digit while open", at: t0, pin: "199999", wantErr: control.ErrConflict},
		{name: "same PIN while open", at: t0, pin: "123456", wantErr: control.ErrConflict},
		{name: "same digit after expiry", at: t0.Add(11 * time.Minute), pin: "199999"},
		{name: "same digit at expiry instant", at: t0.Add(10 * time.Minute), pin: "199999", wantErr: control.ErrConflict},
		{
			name: "same digit after use",
			first: func(f *control.FSM) {
				applyOK(t, f, control.OpPairComplete, t0, control.PairComplete{Ticket: "t1", Node: control.Node{Name: "n1", PeerID: "p1"}})
			},
			at: t0, pin: "199999",
		},
		{
			name: "same digit after burning",
			first: func(f *control.FSM) {
				for range ca.MaxPINFailures {
					applyOK(t, f, control.OpPairFail, t0, control.PairFail{Ticket: "t1"})
				}
			},
			at: t0, pin: "199999",
		},
		{
			name: "same digit while pending, even after expiry", approval: true,
			first: func(f *control.FSM) {
				applyOK(t, f, control.OpPairPending, t0, control.PairPending{Pending: control.Pending{Name: "n1", Ticket: "t1"}})
			},
			at: t0.Add(time.Hour), pin: "199999", wantErr: control.ErrConflict,
		},
		{name: "empty PIN", at: t0, pin: "", wantErr: control.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := initialised(t)
			first := ticket("t1", "123456", t0, 10*time.Minute)
			first.RequireApproval = tt.approval
			applyOK(t, f, control.OpTicketCreate, t0, first)
			if tt.first != nil {
				tt.first(f)
			}
			res := apply(t, f, control.OpTicketCreate, tt.at, ticket("t2", tt.pin, tt.at, 10*time.Minute))
			err, _ := res.(error)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && res != nil) {
				t.Fatalf("second ticket: %v, want %v", res, tt.wantErr)
			}
			_, stored := stateOf(t, f).Tickets["t2"]
			if stored != (tt.wantErr == nil) {
				t.Errorf("second ticket stored = %v, want %v", stored, tt.wantErr == nil)
			}
		})
	}
}

func TestTicketBySlotReturnsNewest(t *testing.T) {
	f := initialised(t)
	applyOK(t, f, control.OpTicketCreate, t0, ticket("old", "111111", t0, time.Minute))
	later := t0.Add(2 * time.Minute) // "old" has expired: its slot is free again
	applyOK(t, f, control.OpTicketCreate, later, ticket("new", "122222", later, time.Minute))
	applyOK(t, f, control.OpTicketCreate, later, ticket("other", "233333", later, time.Minute))

	tests := []struct {
		slot   byte
		wantID string
	}{
		{'1', "new"},
		{'2', "other"},
		{'3', ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.slot), func(t *testing.T) {
			f.Read(func(s *control.State) {
				got, ok := s.TicketBySlot(tt.slot)
				if ok != (tt.wantID != "") {
					t.Fatalf("TicketBySlot(%c) found = %v, want %v", tt.slot, ok, tt.wantID != "")
				}
				if ok && got.ID != tt.wantID {
					t.Errorf("TicketBySlot(%c) = %s, want %s", tt.slot, got.ID, tt.wantID)
				}
			})
		})
	}
}

func TestApplyPairFail(t *testing.T) {
	tests := []struct {
		name   string
		ticket string
		tries  int
		want   []control.PairFailResult // one per try
		state  ca.TicketState           // of ticket "t1" afterwards
	}{
		{
			name: "burns at the fifth failure", ticket: "t1", tries: 6,
			want: []control.PairFailResult{
				{AttemptsLeft: 4}, {AttemptsLeft: 3}, {AttemptsLeft: 2}, {AttemptsLeft: 1},
				{Burned: true, AttemptsLeft: 0}, {Burned: true, AttemptsLeft: 0},
			},
			state: ca.TicketBurned,
		},
		{
			name: "no ticket: only the window", ticket: "", tries: 6,
			want:  make([]control.PairFailResult, 6),
			state: ca.TicketActive,
		},
		{
			name: "unknown ticket: only the window", ticket: "nope", tries: 2,
			want:  make([]control.PairFailResult, 2),
			state: ca.TicketActive,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := initialised(t)
			applyOK(t, f, control.OpTicketCreate, t0, ticket("t1", "123456", t0, 10*time.Minute))
			var times []time.Time
			for i := range tt.tries {
				at := t0.Add(time.Duration(i) * time.Second)
				times = append(times, at)
				res := applyOK(t, f, control.OpPairFail, at, control.PairFail{Ticket: tt.ticket})
				if got, ok := res.(control.PairFailResult); !ok || got != tt.want[i] {
					t.Errorf("failure %d: result %#v, want %#v", i+1, res, tt.want[i])
				}
			}
			st := stateOf(t, f)
			tk := st.Tickets["t1"]
			if tk.State != tt.state {
				t.Errorf("ticket state = %s, want %s", tk.State, tt.state)
			}
			wantFailures := 0
			if tt.ticket == "t1" {
				wantFailures = tt.tries
			}
			if tk.Failures != wantFailures {
				t.Errorf("ticket failures = %d, want %d", tk.Failures, wantFailures)
			}
			if !reflect.DeepEqual(st.PairFailures.Failures, times) {
				t.Errorf("failure window = %v, want %v", st.PairFailures.Failures, times)
			}
			if tt.state == ca.TicketBurned {
				err := applyErr(t, f, control.OpPairComplete, t0, control.PairComplete{Ticket: "t1", Node: control.Node{Name: "n1"}})
				if !errors.Is(err, ca.ErrTicketBurned) {
					t.Errorf("complete with a burned ticket: %v, want ErrTicketBurned", err)
				}
			}
		})
	}
}

// TestPairFailWindowIsMeshWide spreads failures over many tickets: the
// window blocks further attempts although no ticket is burned.
func TestPairFailWindowIsMeshWide(t *testing.T) {
	f := initialised(t)
	pins := []string{"011111", "122222", "233333", "344444", "455555"}
	for i, pin := range pins {
		applyOK(t, f, control.OpTicketCreate, t0, ticket("t"+pin, pin, t0, 10*time.Minute))
		for j := range ca.DefaultFailureLimit / len(pins) {
			at := t0.Add(time.Duration(i*10+j) * time.Millisecond)
			if res := applyOK(t, f, control.OpPairFail, at, control.PairFail{Ticket: "t" + pin}); res.(control.PairFailResult).Burned {
				t.Fatalf("ticket %d burned after %d failures", i, j+1)
			}
		}
	}
	f.Read(func(s *control.State) {
		if err := s.PairFailures.Allow(t0.Add(time.Second)); !errors.Is(err, ca.ErrTooManyAttempts) {
			t.Errorf("Allow after %d failures: %v, want ErrTooManyAttempts", ca.DefaultFailureLimit, err)
		}
		if err := s.PairFailures.Allow(t0.Add(2 * ca.DefaultFailureWindow)); err != nil {
			t.Errorf("Allow once the window passed: %v", err)
		}
	})
}

func TestApplyPairPendingRefusals(t *testing.T) {
	tests := []struct {
		name    string
		at      time.Time
		pending control.Pending
		wantErr error
	}{
		{"unknown ticket", t0, control.Pending{Name: "n1", Ticket: "nope"}, control.ErrNotFound},
		{"expired ticket", t0.Add(time.Hour), control.Pending{Name: "n1", Ticket: "t1"}, ca.ErrTicketExpired},
		{"name taken", t0, control.Pending{Name: "founder", Ticket: "t1"}, control.ErrConflict},
		{"ticket needs no approval", t0, control.Pending{Name: "n1", Ticket: "t2"}, control.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := initialised(t)
			tk := ticket("t1", "123456", t0, 10*time.Minute)
			tk.RequireApproval = true
			applyOK(t, f, control.OpTicketCreate, t0, tk)
			applyOK(t, f, control.OpTicketCreate, t0, ticket("t2", "234567", t0, 10*time.Minute))
			err := applyErr(t, f, control.OpPairPending, tt.at, control.PairPending{Pending: tt.pending})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("pending: %v, want %v", err, tt.wantErr)
			}
			st := stateOf(t, f)
			if len(st.Pending) != 0 || st.Tickets["t1"].State != ca.TicketActive {
				t.Errorf("refused pending changed the state: pending %v, ticket %s", st.Pending, st.Tickets["t1"].State)
			}
		})
	}
}

func TestApplyPairDecide(t *testing.T) {
	joiner := control.Node{Name: "n1", PeerID: "p1", RelayedBy: "founder"}
	complete := control.PairComplete{Ticket: "t1", Node: joiner}
	tests := []struct {
		name        string
		approve     bool
		wantTicket  ca.TicketState
		completeErr []error // any of these, from pair.complete after the decision
	}{
		{"approve", true, ca.TicketUsed, nil},
		{"reject", false, ca.TicketRejected, []error{ca.ErrTicketRejected, control.ErrConflict}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := initialised(t)
			applyOK(t, f, control.OpTicketCreate, t0, approvalTicket("t1", "123456", t0, 10*time.Minute))
			pendingAt := t0.Add(time.Minute)
			applyOK(t, f, control.OpPairPending, pendingAt, control.PairPending{Pending: control.Pending{
				Name: joiner.Name, PeerID: joiner.PeerID, Ticket: "t1", RelayedBy: "founder", Since: t0.Add(-time.Hour),
			}})
			st := stateOf(t, f)
			if p := st.Pending["n1"]; p == nil || !p.Since.Equal(pendingAt) || p.Decision != "" {
				t.Fatalf("pending = %+v, want one since %s without decision", p, pendingAt)
			}
			if s := st.Tickets["t1"].State; s != ca.TicketPending {
				t.Fatalf("ticket state = %s, want pending", s)
			}
			// Nobody else can use the parked ticket.
			other := control.PairComplete{Ticket: "t1", Node: control.Node{Name: "n2", PeerID: "p2"}}
			if err := applyErr(t, f, control.OpPairComplete, pendingAt, other); !isAny(err, ca.ErrTicketPending, control.ErrConflict) {
				t.Errorf("complete by another node while pending: %v, want ErrTicketPending or ErrConflict", err)
			}
			// Completing before the decision is refused.
			if err := applyErr(t, f, control.OpPairComplete, pendingAt, complete); !errors.Is(err, control.ErrConflict) {
				t.Errorf("complete before the decision: %v, want ErrConflict", err)
			}

			applyOK(t, f, control.OpPairDecide, pendingAt, control.PairDecide{Name: "n1", Approve: tt.approve})
			if err := applyErr(t, f, control.OpPairDecide, pendingAt, control.PairDecide{Name: "n1", Approve: tt.approve}); !errors.Is(err, control.ErrNotFound) {
				t.Errorf("second decision: %v, want ErrNotFound", err)
			}

			// Long after the ticket's expiry: an approved join still completes.
			res := apply(t, f, control.OpPairComplete, t0.Add(time.Hour), complete)
			if tt.completeErr == nil && res != nil {
				t.Fatalf("complete after approval: %v", res)
			}
			if err, _ := res.(error); tt.completeErr != nil && !isAny(err, tt.completeErr...) {
				t.Fatalf("complete after rejection: %v, want one of %v", res, tt.completeErr)
			}
			st = stateOf(t, f)
			tk := st.Tickets["t1"]
			if tk.State != tt.wantTicket {
				t.Errorf("ticket state = %s, want %s", tk.State, tt.wantTicket)
			}
			n, joined := st.Nodes["n1"]
			if joined != tt.approve {
				t.Fatalf("node registered = %v, want %v", joined, tt.approve)
			}
			if !tt.approve {
				if p := st.Pending["n1"]; p != nil && p.Decision != "rejected" {
					t.Errorf("rejected join left pending as %+v", p)
				}
				return
			}
			if len(st.Pending) != 0 {
				t.Errorf("pending joins left after the join: %v", st.Pending)
			}
			if tk.UsedBy != "n1" || tk.UsedByPeer != "p1" || tk.RelayedBy != "founder" {
				t.Errorf("ticket = %+v, want used by n1/p1 relayed by founder", tk)
			}
			if n.PeerID != "p1" {
				t.Errorf("node = %+v", n)
			}
		})
	}
}

func TestApplyPairDecideUnknown(t *testing.T) {
	f := initialised(t)
	err := applyErr(t, f, control.OpPairDecide, t0, control.PairDecide{Name: "ghost", Approve: true})
	if !errors.Is(err, control.ErrNotFound) {
		t.Errorf("decide on an unknown join: %v, want ErrNotFound", err)
	}
}

func TestApplyPairComplete(t *testing.T) {
	joinAt := t0.Add(3 * time.Minute)
	node := control.Node{
		Name: "n1", PeerID: "p1", Roles: []string{"node"}, CertPEM: "cert", Serial: "01",
		CertExpiresAt: t0.Add(24 * time.Hour), JoinedAt: t0.Add(-time.Hour), Ticket: "t1", RelayedBy: "founder",
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, f *control.FSM)
		at      time.Time
		ticket  string
		node    control.Node
		wantErr error
	}{
		{name: "joins", at: joinAt, ticket: "t1", node: node},
		{
			name: "same name and peer again",
			prepare: func(t *testing.T, f *control.FSM) {
				applyOK(t, f, control.OpTicketCreate, t0, ticket("t0", "923456", t0, 10*time.Minute))
				applyOK(t, f, control.OpPairComplete, t0, control.PairComplete{Ticket: "t0", Node: node})
			},
			at: joinAt, ticket: "t1", node: node,
		},
		{name: "unknown ticket", at: joinAt, ticket: "nope", node: node, wantErr: control.ErrNotFound},
		{name: "expired ticket", at: t0.Add(11 * time.Minute), ticket: "t1", node: node, wantErr: ca.ErrTicketExpired},
		{
			name: "ticket requires approval",
			prepare: func(t *testing.T, f *control.FSM) {
				applyOK(t, f, control.OpTicketCreate, t0, approvalTicket("t2", "223456", t0, 10*time.Minute))
			},
			at: joinAt, ticket: "t2", node: node, wantErr: control.ErrConflict,
		},
		{
			name: "name taken by another peer", at: joinAt, ticket: "t1",
			node: control.Node{Name: "founder", PeerID: "p1"}, wantErr: control.ErrConflict,
		},
		{
			name: "ticket used",
			prepare: func(t *testing.T, f *control.FSM) {
				applyOK(t, f, control.OpPairComplete, t0, control.PairComplete{Ticket: "t1", Node: control.Node{Name: "n0", PeerID: "p0"}})
			},
			at: joinAt, ticket: "t1", node: node, wantErr: ca.ErrTicketUsed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := initialised(t)
			applyOK(t, f, control.OpTicketCreate, t0, ticket("t1", "123456", t0, 10*time.Minute))
			if tt.prepare != nil {
				tt.prepare(t, f)
			}
			before := stateOf(t, f)
			res := apply(t, f, control.OpPairComplete, tt.at, control.PairComplete{Ticket: tt.ticket, Node: tt.node})
			st := stateOf(t, f)
			if tt.wantErr != nil {
				if err, _ := res.(error); !errors.Is(err, tt.wantErr) {
					t.Fatalf("complete: %v, want %v", res, tt.wantErr)
				}
				if !reflect.DeepEqual(before, st) {
					t.Errorf("refused complete changed the state:\nbefore %+v\nafter  %+v", before, st)
				}
				return
			}
			if res != nil {
				t.Fatalf("complete: %v", res)
			}
			tk := st.Tickets["t1"]
			if tk.State != ca.TicketUsed || !tk.UsedAt.Equal(tt.at) || tk.UsedBy != "n1" || tk.UsedByPeer != "p1" || tk.RelayedBy != "founder" {
				t.Errorf("ticket = %+v, want used at %s by n1/p1 relayed by founder", tk, tt.at)
			}
			want := node
			want.JoinedAt = tt.at // the command's time, not the payload's
			if got := st.Nodes["n1"]; !reflect.DeepEqual(got, &want) {
				t.Errorf("node = %+v, want %+v", got, want)
			}
			if n, ok := st.NodeByPeer("p1"); !ok || n.Name != "n1" {
				t.Errorf("NodeByPeer(p1) = %+v, %v", n, ok)
			}
		})
	}
}

func TestApplyBadCommand(t *testing.T) {
	cmd := func(op, v string) []byte {
		return []byte(`{"op":"` + op + `","at":"2030-03-04T10:00:00Z","v":` + v + `}`)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"garbage", []byte("\x00\xff not json")},
		{"json null", []byte("null")},
		{"json array", []byte("[1,2]")},
		{"truncated", cmd("mesh.init", `{"mesh_id":"x"}`)[:20]},
		{"bad time", []byte(`{"op":"mesh.init","at":"yesterday","v":{}}`)},
		{"unknown op", cmd("node.explode", `{}`)},
		{"empty op", cmd("", `{}`)},
		{"missing payload", []byte(`{"op":"ticket.create","at":"2030-03-04T10:00:00Z"}`)},
	}
	ops := []control.Op{control.OpInit, control.OpTicketCreate, control.OpPairFail, control.OpPairPending, control.OpPairDecide, control.OpPairComplete}
	for _, op := range ops {
		tests = append(tests,
			struct {
				name string
				data []byte
			}{string(op) + " with a string payload", cmd(string(op), `"x"`)},
			struct {
				name string
				data []byte
			}{string(op) + " with a mistyped field", cmd(string(op), `{"mesh_id":1,"ticket":2,"id":3,"name":4,"pending":5,"node":6}`)},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := initialised(t)
			applyOK(t, f, control.OpTicketCreate, t0, ticket("t1", "123456", t0, 10*time.Minute))
			before := stateOf(t, f)
			res := f.Apply(&raft.Log{Data: tt.data})
			err, ok := res.(error)
			if !ok || !errors.Is(err, control.ErrBadCmd) {
				t.Fatalf("Apply = %#v, want an ErrBadCmd error", res)
			}
			if after := stateOf(t, f); !reflect.DeepEqual(before, after) {
				t.Errorf("bad command changed the state:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestChangedClosesOnApply(t *testing.T) {
	f := control.NewFSM()
	ch := f.Changed()
	select {
	case <-ch:
		t.Fatal("Changed is closed before any change")
	default:
	}
	applyOK(t, f, control.OpInit, t0, founder())
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by Apply")
	}
	next := f.Changed()
	if next == ch {
		t.Fatal("Changed returned the closed channel again")
	}
	select {
	case <-next:
		t.Fatal("new Changed channel is already closed")
	default:
	}
	if err := f.Restore(io.NopCloser(strings.NewReader(`{"mesh_id":"x"}`))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-next:
	default:
		t.Fatal("Changed not closed by Restore")
	}
}

// TestChangedWakesWaiter is the use Changed exists for: a goroutine waits
// for the next change while raft applies.
func TestChangedWakesWaiter(t *testing.T) {
	f := control.NewFSM()
	woke := make(chan string)
	ch := f.Changed()
	go func() {
		<-ch
		var id string
		f.Read(func(s *control.State) { id = s.MeshID })
		woke <- id
	}()
	applyOK(t, f, control.OpInit, t0, founder())
	select {
	case id := <-woke:
		if id != "home" {
			t.Errorf("waiter read mesh %q, want home", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken within 10s")
	}
}

// populated returns an FSM with something in every part of the state.
func populated(t *testing.T) *control.FSM {
	t.Helper()
	f := initialised(t)
	applyOK(t, f, control.OpTicketCreate, t0, ticket("t1", "123456", t0, 10*time.Minute))
	applyOK(t, f, control.OpTicketCreate, t0, approvalTicket("t2", "234567", t0, 10*time.Minute))
	applyOK(t, f, control.OpTicketCreate, t0, ticket("t3", "345678", t0, 10*time.Minute))
	applyOK(t, f, control.OpPairFail, t0.Add(time.Second), control.PairFail{Ticket: "t1"})
	applyOK(t, f, control.OpPairFail, t0.Add(2*time.Second), control.PairFail{})
	applyOK(t, f, control.OpPairComplete, t0.Add(time.Minute), control.PairComplete{
		Ticket: "t1", Node: control.Node{Name: "n1", PeerID: "p1", Roles: []string{"node"}, Serial: "0a", RelayedBy: "founder"},
	})
	applyOK(t, f, control.OpPairPending, t0.Add(time.Minute), control.PairPending{Pending: control.Pending{Name: "n2", PeerID: "p2", Ticket: "t2"}})
	applyOK(t, f, control.OpPairDecide, t0.Add(2*time.Minute), control.PairDecide{Name: "n2", Approve: true})
	return f
}

// persist snapshots f into a raft in-memory snapshot store and returns the
// stored bytes' reader.
func persist(t *testing.T, snap raft.FSMSnapshot) io.ReadCloser {
	t.Helper()
	store := raft.NewInmemSnapshotStore()
	sink, err := store.Create(1, 10, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := populated(t)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	// A change after Snapshot is not in it: the snapshot is a point in time.
	applyOK(t, f, control.OpPairComplete, t0.Add(3*time.Minute), control.PairComplete{Ticket: "t2", Node: control.Node{Name: "n2", PeerID: "p2"}})
	after := stateOf(t, f)
	if _, ok := after.Nodes["n2"]; !ok {
		t.Fatal("n2 did not join")
	}

	restored := control.NewFSM()
	if err := restored.Restore(persist(t, snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got := stateOf(t, restored)
	if _, ok := got.Nodes["n2"]; ok {
		t.Error("snapshot holds a change applied after it was taken")
	}

	// The restored FSM is the original before the last change: applying
	// the same command makes them equal again.
	applyOK(t, restored, control.OpPairComplete, t0.Add(3*time.Minute), control.PairComplete{Ticket: "t2", Node: control.Node{Name: "n2", PeerID: "p2"}})
	if got := stateOf(t, restored); !reflect.DeepEqual(got, after) {
		t.Errorf("restored state differs:\ngot  %+v\nwant %+v", got, after)
	}
	f.Read(func(s *control.State) {
		if s.CAKeyPEM != "ca-key" || len(s.PairFailures.Failures) != 2 {
			t.Errorf("state lost CA key or failures: %q, %v", s.CAKeyPEM, s.PairFailures.Failures)
		}
	})
}

func TestRestore(t *testing.T) {
	tests := []struct {
		name     string
		snapshot string
		wantErr  bool
	}{
		{name: "empty object", snapshot: `{}`},
		{name: "null maps", snapshot: `{"mesh_id":"m","nodes":null,"tickets":null,"pending":null}`},
		{name: "garbage", snapshot: "\x00garbage", wantErr: true},
		{name: "empty", snapshot: "", wantErr: true},
		{name: "truncated", snapshot: `{"mesh_id":"m","nodes":{`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := populated(t)
			before := stateOf(t, f)
			rc := &closeRecorder{Reader: strings.NewReader(tt.snapshot)}
			err := f.Restore(rc)
			if !rc.closed {
				t.Error("Restore did not close the snapshot reader")
			}
			if tt.wantErr {
				if err == nil {
					t.Fatal("Restore of a bad snapshot: no error")
				}
				if after := stateOf(t, f); !reflect.DeepEqual(before, after) {
					t.Error("failed Restore changed the state")
				}
				return
			}
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			// The restored maps are usable: every op can write to them.
			applyOK(t, f, control.OpTicketCreate, t0, approvalTicket("t9", "923456", t0, 10*time.Minute))
			applyOK(t, f, control.OpPairPending, t0, control.PairPending{Pending: control.Pending{Name: "n9", Ticket: "t9"}})
			applyOK(t, f, control.OpPairDecide, t0, control.PairDecide{Name: "n9", Approve: true})
			applyOK(t, f, control.OpPairComplete, t0, control.PairComplete{Ticket: "t9", Node: control.Node{Name: "n9"}})
			if st := stateOf(t, f); len(st.Nodes) != 1 || len(st.Tickets) != 1 {
				t.Errorf("after restore and a join: %d nodes, %d tickets; want 1, 1", len(st.Nodes), len(st.Tickets))
			}
		})
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error {
	c.closed = true
	return nil
}

// failingSink is a raft.SnapshotSink whose writes fail.
type failingSink struct {
	cancelled, closed bool
}

func (s *failingSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }
func (s *failingSink) Close() error              { s.closed = true; return nil }
func (s *failingSink) ID() string                { return "failing" }
func (s *failingSink) Cancel() error             { s.cancelled = true; return nil }

func TestPersistCancelsOnWriteError(t *testing.T) {
	snap, err := populated(t).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &failingSink{}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("Persist into a failing sink: no error")
	}
	if !sink.cancelled || sink.closed {
		t.Errorf("sink cancelled = %v, closed = %v; want cancelled only", sink.cancelled, sink.closed)
	}
}

func TestPruneExpiredTickets(t *testing.T) {
	const ttl = 10 * time.Minute
	now := t0.Add(48 * time.Hour) // when the pruning ticket.create runs
	tests := []struct {
		name       string
		expiredAgo time.Duration // before now; negative: still valid
		used       bool
		wantKept   bool
	}{
		{name: "valid", expiredAgo: -time.Minute, wantKept: true},
		{name: "expired an hour ago", expiredAgo: time.Hour, wantKept: true},
		{name: "expired exactly a day ago", expiredAgo: 24 * time.Hour, wantKept: true},
		{name: "expired a day and a second ago", expiredAgo: 24*time.Hour + time.Second},
		{name: "used, expired two days ago", expiredAgo: 48 * time.Hour, used: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := initialised(t)
			created := now.Add(-tt.expiredAgo - ttl)
			applyOK(t, f, control.OpTicketCreate, created, ticket("old", "123456", created, ttl))
			if tt.used {
				applyOK(t, f, control.OpPairComplete, created, control.PairComplete{Ticket: "old", Node: control.Node{Name: "n1", Ticket: "old"}})
			}
			if _, ok := stateOf(t, f).Tickets["old"]; !ok {
				t.Fatal("ticket pruned at its own creation")
			}
			applyOK(t, f, control.OpTicketCreate, now, ticket("new", "923456", now, ttl))
			st := stateOf(t, f)
			if _, kept := st.Tickets["old"]; kept != tt.wantKept {
				t.Errorf("old ticket kept = %v, want %v", kept, tt.wantKept)
			}
			if _, ok := st.Tickets["new"]; !ok {
				t.Error("the new ticket was pruned")
			}
			if tt.used && st.Nodes["n1"].Ticket != "old" {
				t.Error("node lost the record of its ticket")
			}
		})
	}
}

// TestTicketCreateAfterRestoringPINlessTicket: a snapshot may hold a ticket
// without a PIN (written by another version, or with the secret stripped);
// the slot check must skip it instead of indexing its empty PIN.
func TestTicketCreateAfterRestoringPINlessTicket(t *testing.T) {
	f := control.NewFSM()
	snapshot := `{"tickets":{"x":{"id":"x","state":"active","expires_at":"2100-01-01T00:00:00Z"}}}`
	if err := f.Restore(io.NopCloser(strings.NewReader(snapshot))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	applyOK(t, f, control.OpTicketCreate, t0, ticket("t1", "123456", t0, 10*time.Minute))
	f.Read(func(s *control.State) {
		if got := s.OpenSlots(t0); !reflect.DeepEqual(got, map[byte]bool{'1': true}) {
			t.Errorf("OpenSlots = %v, want only slot 1", got)
		}
	})
}
