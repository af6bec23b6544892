// Package pairing joins a new machine to a mesh with a PIN.
//
// The new node (the joiner) holds no certificate, so the authentication gate
// lets it open only Protocol on a member. The member relays the exchange to
// the coordinator over RelayProtocol (authenticated, member to coordinator);
// the coordinator itself answers Protocol directly. The exchange:
//
//	joiner → Hello{slot, sid, Ya}          slot = first PIN digit
//	       ← Challenge{Yb}                 CPace on ristretto255, PRS = PIN
//	joiner → Confirm{CSR, tag}             tag = HMAC(ISK, transcript‖CSR)
//	       ← Result{pending}               only with require_approval
//	       ← Result{bundle, tag} | Result{error}
//
// Why it resists guessing: CPace gives each session exactly one PIN guess, and
// a wrong tag is recorded in the replicated state before the answer is sent
// (5 per ticket burn it; a mesh-wide window caps sweeping). A fake member
// that answers in the coordinator's place gets one online guess too, and
// nothing to test guesses against offline; it cannot forge the bundle's tag,
// so the joiner never trusts its CA.
//
// Why the first digit may select the ticket: an attacker who does not know
// the PIN does not know its first digit either; learning it from a joiner (as
// a fake member) leaves 10^5 values and one online guess, the same odds as a
// fake member offering one guess per open ticket. The coordinator keeps at
// most one open ticket per first digit (so at most ten open at once).
// A slot without a ticket still runs the exchange with a random secret (the
// failure counts in the mesh-wide window). A prober can learn which first
// digits hold open tickets ("attempts left" is only said for those), which
// does not change its odds: each open ticket still burns after 5 misses.
package pairing
