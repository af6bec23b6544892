package ca_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palyra-mesh/palyra/ca"
)

func newTicket(t *testing.T, requireApproval bool) *ca.Ticket {
	t.Helper()
	tk, err := ca.NewTicket(t0, 10*time.Minute, []string{"node"}, requireApproval, "user:ops", "alpha", testRand(3))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestNewTicket(t *testing.T) {
	tk, err := ca.NewTicket(t0, 0, nil, false, "user:ops", "alpha", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(tk.ID) {
		t.Errorf("ID %q is not 16 random bytes in hex", tk.ID)
	}
	wantErr(t, ca.ValidPIN(tk.PIN), nil)
	if !slices.Equal(tk.Roles, []string{"node"}) || tk.State != ca.TicketActive || tk.Failures != 0 {
		t.Errorf("roles %q state %q failures %d", tk.Roles, tk.State, tk.Failures)
	}
	if tk.CreatedBy != "user:ops" || tk.CreatedOn != "alpha" || !tk.CreatedAt.Equal(t0) {
		t.Errorf("provenance %q %q %v", tk.CreatedBy, tk.CreatedOn, tk.CreatedAt)
	}
	if tk.AttemptsLeft() != ca.MaxPINFailures {
		t.Errorf("attempts left %d", tk.AttemptsLeft())
	}

	for _, tc := range []struct {
		ttl, want time.Duration
	}{
		{0, 10 * time.Minute},
		{time.Second, 30 * time.Second},
		{-time.Hour, 30 * time.Second},
		{30 * time.Second, 30 * time.Second},
		{time.Hour, time.Hour},
		{24 * time.Hour, 24 * time.Hour},
		{48 * time.Hour, 24 * time.Hour},
	} {
		t.Run("ttl "+tc.ttl.String(), func(t *testing.T) {
			tk, err := ca.NewTicket(t0, tc.ttl, nil, false, "", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := tk.ExpiresAt.Sub(tk.CreatedAt); got != tc.want {
				t.Fatalf("ttl %s, want %s", got, tc.want)
			}
		})
	}

	t.Run("roles sorted and deduplicated", func(t *testing.T) {
		tk, err := ca.NewTicket(t0, 0, []string{"node", "gpu", "node"}, false, "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tk.Roles, []string{"gpu", "node"}) {
			t.Fatalf("roles %q", tk.Roles)
		}
	})
	t.Run("bad role", func(t *testing.T) {
		_, err := ca.NewTicket(t0, 0, []string{"no de"}, false, "", "", nil)
		wantErr(t, err, ca.ErrInvalidName)
	})
}

func TestTicketUsable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*ca.Ticket)
		now    time.Time
		want   error
		string string
	}{
		{"active", func(*ca.Ticket) {}, t0.Add(time.Minute), nil, ""},
		{"active at expiry", func(*ca.Ticket) {}, t0.Add(10 * time.Minute), nil, ""},
		{"expired", func(*ca.Ticket) {}, t0.Add(10*time.Minute + time.Second), ca.ErrTicketExpired, "PIN expired at 12:10:00 UTC"},
		{"pending", func(tk *ca.Ticket) { tk.State = ca.TicketPending }, t0, ca.ErrTicketPending, "PIN is waiting for operator approval"},
		{"used", func(tk *ca.Ticket) { tk.State, tk.UsedBy = ca.TicketUsed, "beta" }, t0, ca.ErrTicketUsed, "PIN already used by node beta"},
		{"used, expired too", func(tk *ca.Ticket) { tk.State, tk.UsedBy = ca.TicketUsed, "beta" }, t0.Add(time.Hour), ca.ErrTicketUsed, "PIN already used by node beta"},
		{"burned", func(tk *ca.Ticket) { tk.State, tk.Failures = ca.TicketBurned, 5 }, t0, ca.ErrTicketBurned, "PIN burned after 5 wrong attempts"},
		{"rejected", func(tk *ca.Ticket) { tk.State = ca.TicketRejected }, t0, ca.ErrTicketRejected, "PIN rejected by an operator"},
		{"unknown state", func(tk *ca.Ticket) { tk.State = "lost" }, t0, ca.ErrTicketState, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := newTicket(t, false)
			tc.edit(tk)
			err := tk.Usable(tc.now)
			wantErr(t, err, tc.want)
			if tc.string != "" && err.Error() != tc.string {
				t.Errorf("message %q, want %q", err, tc.string)
			}
		})
	}
}

func TestTicketBurn(t *testing.T) {
	tk := newTicket(t, false)
	for i := 1; i < ca.MaxPINFailures; i++ {
		if tk.RecordFailure() {
			t.Fatalf("burned after %d failures", i)
		}
		if got, want := tk.AttemptsLeft(), ca.MaxPINFailures-i; got != want {
			t.Fatalf("attempts left %d, want %d", got, want)
		}
		wantErr(t, tk.Usable(t0), nil)
	}
	if !tk.RecordFailure() {
		t.Fatalf("not burned after %d failures", ca.MaxPINFailures)
	}
	if tk.State != ca.TicketBurned || tk.AttemptsLeft() != 0 {
		t.Fatalf("state %q, attempts left %d", tk.State, tk.AttemptsLeft())
	}
	wantErr(t, tk.Usable(t0), ca.ErrTicketBurned)
	wantErr(t, tk.Redeem(t0, "beta", "12D3KooW", "alpha"), ca.ErrTicketBurned)
}

func TestTicketRedeem(t *testing.T) {
	t.Run("without approval", func(t *testing.T) {
		tk := newTicket(t, false)
		wantErr(t, tk.Redeem(t0.Add(time.Minute), "beta", "12D3KooWBeta", "gamma"), nil)
		if tk.State != ca.TicketUsed || tk.UsedBy != "beta" || tk.UsedByPeer != "12D3KooWBeta" ||
			tk.RelayedBy != "gamma" || !tk.UsedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("after redeem: %+v", tk.Public())
		}
		wantErr(t, tk.Redeem(t0.Add(time.Minute), "delta", "", ""), ca.ErrTicketUsed)
		wantErr(t, tk.Approve(), ca.ErrTicketState)
		wantErr(t, tk.Reject(), ca.ErrTicketState)
	})
	t.Run("with approval", func(t *testing.T) {
		tk := newTicket(t, true)
		wantErr(t, tk.Redeem(t0, "beta", "12D3KooWBeta", "gamma"), nil)
		if tk.State != ca.TicketPending {
			t.Fatalf("state %q", tk.State)
		}
		wantErr(t, tk.Redeem(t0, "mallory", "", ""), ca.ErrTicketPending)
		wantErr(t, tk.Approve(), nil)
		if tk.State != ca.TicketUsed || tk.UsedBy != "beta" {
			t.Fatalf("state %q used by %q", tk.State, tk.UsedBy)
		}
	})
	t.Run("rejected while pending", func(t *testing.T) {
		tk := newTicket(t, true)
		wantErr(t, tk.Redeem(t0, "beta", "", ""), nil)
		wantErr(t, tk.Reject(), nil)
		wantErr(t, tk.Usable(t0), ca.ErrTicketRejected)
		wantErr(t, tk.Approve(), ca.ErrTicketState)
	})
	t.Run("expired", func(t *testing.T) {
		tk := newTicket(t, false)
		wantErr(t, tk.Redeem(t0.Add(time.Hour), "beta", "", ""), ca.ErrTicketExpired)
		if tk.State != ca.TicketActive || tk.UsedBy != "" {
			t.Fatalf("failed redeem changed the ticket: %+v", tk.Public())
		}
	})
}

func TestTicketPublicAndJSON(t *testing.T) {
	tk := newTicket(t, true)
	pub := tk.Public()
	if pub.PIN != "" || tk.PIN == "" {
		t.Fatalf("public PIN %q, original PIN kept %v", pub.PIN, tk.PIN != "")
	}
	pub.Roles[0] = "changed"
	if tk.Roles[0] != "node" {
		t.Fatal("Public shares the roles slice")
	}

	listing, err := json.Marshal(tk.Public())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(listing, []byte(`"pin"`)) || bytes.Contains(listing, []byte(tk.PIN)) {
		t.Fatalf("listing carries the PIN: %s", listing)
	}

	wantErr(t, tk.Redeem(t0, "beta", "12D3KooWBeta", "gamma"), nil)
	tk.Failures = 2
	data, err := json.Marshal(tk)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "pin", "roles", "require_approval", "created_at", "expires_at", "created_by",
		"created_on", "state", "failures", "used_at", "used_by", "used_by_peer", "relayed_by"} {
		if !bytes.Contains(data, []byte(`"`+key+`":`)) {
			t.Errorf("JSON lacks %q: %s", key, data)
		}
	}
	var back ca.Ticket
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, tk) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, *tk)
	}
}

// seqReader returns the given 32-bit values, big-endian.
func seqReader(vals ...uint32) io.Reader {
	var b []byte
	for _, v := range vals {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return bytes.NewReader(b)
}

func TestNewPIN(t *testing.T) {
	rng := testRand(4)
	seen := make(map[string]bool)
	var digits [ca.PINLength][10]int
	for range 2000 {
		pin, err := ca.NewPIN(rng)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, ca.ValidPIN(pin), nil)
		seen[pin] = true
		for i, d := range pin {
			digits[i][d-'0']++
		}
	}
	if len(seen) < 1990 {
		t.Errorf("only %d distinct PINs in 2000", len(seen))
	}
	for i, counts := range digits {
		for d, n := range counts {
			if n == 0 {
				t.Errorf("digit %d never at position %d", d, i)
			}
		}
	}

	for _, tc := range []struct {
		name string
		r    io.Reader
		want string
	}{
		{"zero", seqReader(0), "000000"},
		{"leading zeros kept", seqReader(42), "000042"},
		{"largest accepted", seqReader(4293999999), "999999"},
		{"biased values rejected", seqReader(4294000000, 0xffffffff, 7), "000007"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pin, err := ca.NewPIN(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if pin != tc.want {
				t.Fatalf("PIN %q, want %q", pin, tc.want)
			}
		})
	}
	t.Run("random source fails", func(t *testing.T) {
		if _, err := ca.NewPIN(bytes.NewReader(nil)); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestValidPIN(t *testing.T) {
	for _, tc := range []struct {
		pin string
		ok  bool
	}{
		{"123456", true},
		{"000000", true},
		{"12345", false},
		{"1234567", false},
		{"12345a", false},
		{" 12345", false},
		{"١٢٣٤٥٦", false},
		{"", false},
	} {
		t.Run(tc.pin, func(t *testing.T) {
			err := ca.ValidPIN(tc.pin)
			if tc.ok {
				wantErr(t, err, nil)
				return
			}
			wantErr(t, err, ca.ErrInvalidPIN)
			if tc.pin != "" && strings.Contains(err.Error(), tc.pin) {
				t.Errorf("message %q repeats the PIN", err)
			}
		})
	}
}

func TestFailureWindow(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		var w ca.FailureWindow
		for i := range ca.DefaultFailureLimit {
			wantErr(t, w.Allow(t0), nil)
			w.Record(t0.Add(time.Duration(i) * time.Second))
		}
		now := t0.Add(20 * time.Second)
		err := w.Allow(now)
		wantErr(t, err, ca.ErrTooManyAttempts)
		if !strings.Contains(err.Error(), "retry after 12:01:00 UTC") {
			t.Errorf("message %q lacks the retry time", err)
		}
		// The oldest failure leaves the window a minute after it happened.
		wantErr(t, w.Allow(t0.Add(time.Minute)), nil)
		wantErr(t, w.Allow(t0.Add(time.Minute-time.Nanosecond)), ca.ErrTooManyAttempts)
		if len(w.Failures) > ca.DefaultFailureLimit {
			t.Errorf("keeps %d failures", len(w.Failures))
		}
	})
	t.Run("custom, bounded, serialisable", func(t *testing.T) {
		w := ca.FailureWindow{Limit: 3, Window: 10 * time.Second}
		for i := range 10 {
			w.Record(t0.Add(time.Duration(i) * time.Second))
		}
		if len(w.Failures) != 3 {
			t.Fatalf("keeps %d failures, want 3", len(w.Failures))
		}
		wantErr(t, w.Allow(t0.Add(10*time.Second)), ca.ErrTooManyAttempts)
		wantErr(t, w.Allow(t0.Add(16*time.Second)), ca.ErrTooManyAttempts)
		wantErr(t, w.Allow(t0.Add(17*time.Second)), nil) // the failure at 7s left

		data, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		var back ca.FailureWindow
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if back.Limit != 3 || back.Window != 10*time.Second || len(back.Failures) != 3 ||
			!back.Failures[2].Equal(t0.Add(9*time.Second)) {
			t.Fatalf("round trip %s -> %+v", data, back)
		}
		wantErr(t, back.Allow(t0.Add(10*time.Second)), ca.ErrTooManyAttempts)
	})
	t.Run("old failures expire on record", func(t *testing.T) {
		w := ca.FailureWindow{Limit: 3, Window: 10 * time.Second}
		w.Record(t0)
		w.Record(t0.Add(time.Second))
		w.Record(t0.Add(time.Minute))
		if len(w.Failures) != 1 {
			t.Fatalf("keeps %d failures, want 1", len(w.Failures))
		}
		wantErr(t, w.Allow(t0.Add(time.Minute)), nil)
	})
	t.Run("out-of-order clocks", func(t *testing.T) {
		w := ca.FailureWindow{Limit: 2, Window: time.Minute}
		w.Record(t0.Add(2 * time.Second))
		w.Record(t0) // a new coordinator whose clock is behind
		if !w.Failures[0].Equal(t0) {
			t.Fatalf("failures not in order: %v", w.Failures)
		}
		wantErr(t, w.Allow(t0.Add(3*time.Second)), ca.ErrTooManyAttempts)
	})
}
