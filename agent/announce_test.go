package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/mesh"
)

// TestAnnouncedCoordinator: members that run no raft follow the alive
// member announcing itself coordinator at the highest term, but only with a
// claim the mesh CA signed for that peer and term.
func TestAnnouncedCoordinator(t *testing.T) {
	authority, err := ca.New("home", time.Now(), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.New("office", time.Now(), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	member := func(id peer.ID, state string, term uint64, signer *ca.CA, signedTerm uint64) mesh.Member {
		m := mesh.Member{PeerID: id, State: state, Meta: mesh.Meta{Coordinator: true, Term: term}}
		if signer != nil {
			if m.Meta.Claim, err = signer.SignCoordinator(id.String(), signedTerm); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	// Peer IDs only name members here; any bytes do.
	leader, old, liar := peer.ID("leader"), peer.ID("old"), peer.ID("liar")
	stolen := member(liar, "alive", 9, nil, 0)
	stolen.Meta.Claim = member(leader, "alive", 9, authority, 9).Meta.Claim // the leader's claim, replayed
	tests := []struct {
		name    string
		members []mesh.Member
		want    peer.ID
	}{
		{"signed", []mesh.Member{member(leader, "alive", 5, authority, 5)}, leader},
		{"highest signed term wins", []mesh.Member{member(old, "alive", 4, authority, 4), member(leader, "alive", 5, authority, 5)}, leader},
		{"dead coordinator ignored", []mesh.Member{member(old, "alive", 4, authority, 4), member(leader, "dead", 5, authority, 5)}, old},
		{"unsigned claim at a higher term", []mesh.Member{member(leader, "alive", 5, authority, 5), member(liar, "alive", 1<<40, nil, 0)}, leader},
		{"claim for another term", []mesh.Member{member(leader, "alive", 5, authority, 5), member(liar, "alive", 9, authority, 8)}, leader},
		{"claim by another mesh's CA", []mesh.Member{member(leader, "alive", 5, authority, 5), member(liar, "alive", 9, other, 9)}, leader},
		{"another peer's claim", []mesh.Member{member(leader, "alive", 5, authority, 5), stolen}, leader},
		{"only a liar", []mesh.Member{member(liar, "alive", 9, nil, 0)}, ""},
		{"nobody", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := announcedCoordinator(tt.members, authority)
			if ok != (tt.want != "") || got != tt.want {
				t.Fatalf("got %v (%v), want %v", got, ok, tt.want)
			}
		})
	}
}

// TestAdvertiseOrder: loopback addresses go last (metadata trimmed to size
// loses addresses from the end); the others keep their order.
func TestAdvertiseOrder(t *testing.T) {
	var in []ma.Multiaddr
	for _, s := range []string{"/ip4/127.0.0.1/tcp/7420", "/ip4/192.168.1.10/tcp/7420", "/ip6/::1/udp/7420/quic-v1", "/ip4/10.0.0.2/udp/7420/quic-v1"} {
		in = append(in, ma.StringCast(s))
	}
	got := strings.Join(advertiseOrder(in), " ")
	want := "/ip4/192.168.1.10/tcp/7420 /ip4/10.0.0.2/udp/7420/quic-v1 /ip4/127.0.0.1/tcp/7420 /ip6/::1/udp/7420/quic-v1"
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
