// Package agent is palyra's composition root: it builds the identity from
// the data dir (creating a mesh or pairing into one first), starts the libp2p
// host behind the authentication gate, gossip, raft on voters, the pairing
// and control-forwarding protocols, and the HTTP API (/healthz, /api/v1).
package agent
