// Package mesh holds everything that talks to other members: the libp2p host
// and its identity, the authentication gate that admits only holders of a
// valid mesh certificate, gossip membership (hashicorp/memberlist carried over
// libp2p streams) and the raft election of the coordinator.
//
// mesh imports ca and store of this module, never capability, agent or cli.
package mesh
