// Package control is the replicated control-plane state of a mesh: the node
// registry, pairing tickets and the mesh-wide pairing failure window, the CA
// (whose key only voters hold), and later revocations and the access registry.
//
// State changes only through commands applied in raft log order (FSM.Apply),
// so every voter holds the same state. Commands carry the leader's clock
// reading ("at"), never read the local clock, so applying is deterministic.
package control
