package ca

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"time"
)

// PINLength is the number of decimal digits of a pairing PIN.
const PINLength = 6

// pinSpace is the number of distinct PINs, 10^PINLength.
const pinSpace = 1_000_000

// MaxPINFailures is the number of wrong PIN attempts that burns a ticket.
const MaxPINFailures = 5

// Ticket lifetimes: NewTicket uses DefaultTicketTTL for a zero TTL and
// clamps any other into [MinTicketTTL, MaxTicketTTL].
const (
	DefaultTicketTTL = 10 * time.Minute
	MinTicketTTL     = 30 * time.Second
	MaxTicketTTL     = 24 * time.Hour
)

// DefaultTicketRole is the role of a ticket created without any.
const DefaultTicketRole = "node"

// TicketState is where a pairing ticket is in its life. The transitions:
//
//	active          → used      Redeem, without RequireApproval
//	active          → pending   Redeem, with RequireApproval
//	pending         → used      Approve
//	active, pending → rejected  Reject
//	active          → burned    RecordFailure, the MaxPINFailures-th time
//
// An active ticket past its ExpiresAt is expired (a check, not a state).
type TicketState string

// The ticket states.
const (
	// TicketActive: the PIN may be used.
	TicketActive TicketState = "active"
	// TicketPending: a node completed the exchange and waits for an
	// operator's approval; the PIN cannot be used again.
	TicketPending TicketState = "pending"
	// TicketUsed: a node joined with the ticket.
	TicketUsed TicketState = "used"
	// TicketBurned: too many wrong PINs were tried.
	TicketBurned TicketState = "burned"
	// TicketRejected: an operator refused the join.
	TicketRejected TicketState = "rejected"
)

// Ticket is a single-use pairing ticket. It is plain data kept by the caller
// in replicated state; its methods apply the rules and never look at a
// clock. Every step is recorded: who created it, where, who joined with it
// and through which member.
type Ticket struct {
	// ID identifies the ticket (32 hex digits); it is not secret.
	ID string `json:"id"`
	// PIN is the secret the joining node types. It is shown once, at
	// creation; listings use Public.
	PIN string `json:"pin,omitempty"`
	// Roles are granted to the node that joins with the ticket.
	Roles []string `json:"roles"`
	// RequireApproval makes a successful exchange wait for an operator.
	RequireApproval bool `json:"require_approval"`
	// CreatedAt and ExpiresAt bound the ticket's use.
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// CreatedBy is the principal (user or token) that asked for it.
	CreatedBy string `json:"created_by"`
	// CreatedOn is the member that took the request.
	CreatedOn string `json:"created_on"`
	// State is where the ticket is in its life.
	State TicketState `json:"state"`
	// Failures counts wrong PIN attempts against this ticket.
	Failures int `json:"failures"`
	// UsedAt is when a node completed the exchange (zero until then).
	UsedAt time.Time `json:"used_at,omitzero"`
	// UsedBy is the name of the node that joined.
	UsedBy string `json:"used_by,omitempty"`
	// UsedByPeer is the libp2p peer ID of the node that joined.
	UsedByPeer string `json:"used_by_peer,omitempty"`
	// RelayedBy is the member that relayed the exchange to the coordinator.
	RelayedBy string `json:"relayed_by,omitempty"`
}

// NewTicket creates an active ticket with a random ID and PIN. ttl 0 means
// DefaultTicketTTL; other values are clamped to [MinTicketTTL,
// MaxTicketTTL]. No roles means [DefaultTicketRole]; roles are sorted and
// deduplicated. rand nil means crypto/rand.
func NewTicket(now time.Time, ttl time.Duration, roles []string, requireApproval bool, createdBy, createdOn string, rand io.Reader) (*Ticket, error) {
	switch {
	case ttl == 0:
		ttl = DefaultTicketTTL
	case ttl < MinTicketTTL:
		ttl = MinTicketTTL
	case ttl > MaxTicketTTL:
		ttl = MaxTicketTTL
	}
	if len(roles) == 0 {
		roles = []string{DefaultTicketRole}
	}
	roles = slices.Compact(slices.Sorted(slices.Values(roles)))
	if len(roles) > maxRoles {
		return nil, fmt.Errorf("new ticket: %d roles, at most %d allowed", len(roles), maxRoles)
	}
	for _, r := range roles {
		if err := ValidRole(r); err != nil {
			return nil, fmt.Errorf("new ticket: %w", err)
		}
	}
	rand = randOrDefault(rand)
	var id [16]byte
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return nil, fmt.Errorf("new ticket: id: %w", err)
	}
	pin, err := NewPIN(rand)
	if err != nil {
		return nil, fmt.Errorf("new ticket: %w", err)
	}
	return &Ticket{
		ID:              hex.EncodeToString(id[:]),
		PIN:             pin,
		Roles:           roles,
		RequireApproval: requireApproval,
		CreatedAt:       now,
		ExpiresAt:       now.Add(ttl),
		CreatedBy:       createdBy,
		CreatedOn:       createdOn,
		State:           TicketActive,
	}, nil
}

// Usable returns nil if the PIN may be tried at now: the ticket is active
// and not expired. Otherwise it returns ErrTicketExpired, ErrTicketUsed,
// ErrTicketBurned, ErrTicketRejected or ErrTicketPending, wrapped in a
// one-line message fit for the person typing the PIN.
func (t *Ticket) Usable(now time.Time) error {
	switch t.State {
	case TicketActive:
		if now.After(t.ExpiresAt) {
			return fmt.Errorf("%w at %s UTC", ErrTicketExpired, t.ExpiresAt.UTC().Format(time.TimeOnly))
		}
		return nil
	case TicketPending:
		return ErrTicketPending
	case TicketUsed:
		if t.UsedBy == "" {
			return ErrTicketUsed
		}
		return fmt.Errorf("%w by node %s", ErrTicketUsed, t.UsedBy)
	case TicketBurned:
		return fmt.Errorf("%w after %d wrong attempts", ErrTicketBurned, t.Failures)
	case TicketRejected:
		return ErrTicketRejected
	default:
		return fmt.Errorf("%w: unknown state %q", ErrTicketState, t.State)
	}
}

// RecordFailure counts one wrong PIN attempt; the attempt that reaches
// MaxPINFailures burns an active ticket. It reports whether the ticket is
// now burned.
func (t *Ticket) RecordFailure() (burned bool) {
	t.Failures++
	if t.Failures >= MaxPINFailures && t.State == TicketActive {
		t.State = TicketBurned
	}
	return t.State == TicketBurned
}

// AttemptsLeft is the number of wrong PINs the ticket still tolerates.
func (t *Ticket) AttemptsLeft() int {
	if t.State == TicketBurned {
		return 0
	}
	return max(0, MaxPINFailures-t.Failures)
}

// Redeem records a successful PIN exchange at now by node (its name and
// peer ID) relayed by relayedBy. The ticket becomes used, or pending when it
// requires approval. It fails, with Usable's error, if the ticket is not
// usable at now.
func (t *Ticket) Redeem(now time.Time, node, peer, relayedBy string) error {
	if err := t.Usable(now); err != nil {
		return err
	}
	t.UsedAt, t.UsedBy, t.UsedByPeer, t.RelayedBy = now, node, peer, relayedBy
	t.State = TicketUsed
	if t.RequireApproval {
		t.State = TicketPending
	}
	return nil
}

// Approve admits the node of a pending ticket: the ticket becomes used.
// How long a pending join may wait is the caller's decision.
func (t *Ticket) Approve() error {
	if t.State != TicketPending {
		return fmt.Errorf("approve ticket %s: %w: it is %s, not pending", t.ID, ErrTicketState, t.State)
	}
	t.State = TicketUsed
	return nil
}

// Reject refuses an active or pending ticket: it can no longer be used.
func (t *Ticket) Reject() error {
	if t.State != TicketActive && t.State != TicketPending {
		return fmt.Errorf("reject ticket %s: %w: it is %s", t.ID, ErrTicketState, t.State)
	}
	t.State = TicketRejected
	return nil
}

// Public returns a copy of the ticket without its PIN, for listings.
func (t *Ticket) Public() Ticket {
	p := *t
	p.PIN = ""
	p.Roles = slices.Clone(t.Roles)
	return p
}

// NewPIN returns PINLength uniformly random decimal digits, drawn by
// rejection sampling (no modulo bias). rand nil means crypto/rand.
func NewPIN(rand io.Reader) (string, error) {
	// The largest multiple of pinSpace that fits in 32 bits: values at or
	// above it would favour the low PINs.
	const bound = (1 << 32) / pinSpace * pinSpace
	rand = randOrDefault(rand)
	var b [4]byte
	for range maxRandomTries {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return "", fmt.Errorf("new PIN: %w", err)
		}
		if v := binary.BigEndian.Uint32(b[:]); v < bound {
			return fmt.Sprintf("%0*d", PINLength, v%pinSpace), nil
		}
	}
	return "", fmt.Errorf("new PIN: random source keeps returning out-of-range values")
}

// ValidPIN checks that s is exactly PINLength decimal digits. The message
// never repeats the input.
func ValidPIN(s string) error {
	if len(s) != PINLength {
		return fmt.Errorf("%w: want %d digits, got %d characters", ErrInvalidPIN, PINLength, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("%w: only digits 0-9 allowed", ErrInvalidPIN)
		}
	}
	return nil
}

// Defaults of a FailureWindow.
const (
	DefaultFailureLimit  = 20
	DefaultFailureWindow = time.Minute
)

// FailureWindow is the mesh-wide limit on wrong PIN attempts, whatever the
// ticket: at most Limit failures within any Window. It is plain data so the
// caller can keep it in replicated state; the zero value uses the defaults.
// It keeps at most Limit timestamps.
type FailureWindow struct {
	// Limit is the number of failures within Window that blocks further
	// attempts (0 means DefaultFailureLimit).
	Limit int `json:"limit,omitempty"`
	// Window is the sliding window, in nanoseconds in JSON (0 means
	// DefaultFailureWindow).
	Window time.Duration `json:"window,omitempty"`
	// Failures holds the times of the most recent failures, oldest first.
	Failures []time.Time `json:"failures,omitempty"`
}

// Allow returns nil if a PIN attempt may be made at now, or
// ErrTooManyAttempts when Limit failures already happened within the last
// Window. It does not change the window.
func (w *FailureWindow) Allow(now time.Time) error {
	limit, window := w.params()
	recent := w.recent(now, window)
	if n := len(recent); n >= limit {
		// Attempts resume once enough of the recent failures leave the window.
		retry := recent[n-limit].Add(window)
		return fmt.Errorf("%w: %d failures in the last %s, retry after %s UTC",
			ErrTooManyAttempts, n, window, retry.UTC().Format(time.TimeOnly))
	}
	return nil
}

// Record counts a failed attempt at now, dropping failures older than the
// window and all but the newest Limit.
func (w *FailureWindow) Record(now time.Time) {
	limit, window := w.params()
	kept := append(w.recent(now, window), now)
	// Coordinators' clocks differ a little after a failover: keep the order.
	slices.SortFunc(kept, time.Time.Compare)
	if len(kept) > limit {
		kept = kept[len(kept)-limit:]
	}
	w.Failures = kept
}

// recent returns a new slice of the failures within window before now,
// oldest first.
func (w *FailureWindow) recent(now time.Time, window time.Duration) []time.Time {
	since := now.Add(-window)
	out := make([]time.Time, 0, len(w.Failures)+1)
	for _, f := range w.Failures {
		if f.After(since) {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

func (w *FailureWindow) params() (int, time.Duration) {
	limit, window := w.Limit, w.Window
	if limit <= 0 {
		limit = DefaultFailureLimit
	}
	if window <= 0 {
		window = DefaultFailureWindow
	}
	return limit, window
}
