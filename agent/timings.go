package agent

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// Timings are the failure-detection, election and voter-management clocks.
// LANTimings is what an agent runs with; LibraryTimings are memberlist's and
// raft's own defaults (for comparison in benchmarks); TestTimings shrink
// everything for in-process tests.
type Timings struct {
	// Gossip failure detection (memberlist).
	ProbeInterval, ProbeTimeout, GossipInterval time.Duration
	SuspicionMult                               int
	// Raft election.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// VoterStable is how long a member must have been alive before the
	// coordinator promotes it; VoterDead how long a voter must have been
	// dead or gone before it is removed.
	VoterStable, VoterDead time.Duration
	// Reconnect is how often a node tries to reach members it sees dead:
	// after a partition heals, neither side gossips with the other's
	// "dead" members until someone joins across (serf's reconnect).
	Reconnect time.Duration
}

// LANTimings: a dead member is seen in about 2–3 s (memberlist's LAN
// defaults take 6–7 s) and a new coordinator is elected about a second after
// the old one dies (raft's defaults take 2–3 s), with no false suspicions at
// rest on a LAN.
func LANTimings() Timings {
	return Timings{
		ProbeInterval: 500 * time.Millisecond, ProbeTimeout: 250 * time.Millisecond,
		GossipInterval: 100 * time.Millisecond, SuspicionMult: 2,
		HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		VoterStable:        3 * time.Second, VoterDead: 5 * time.Second,
		Reconnect: 2 * time.Second,
	}
}

// LibraryTimings are memberlist's DefaultLANConfig and raft's DefaultConfig
// values, with palyra's voter management unchanged.
func LibraryTimings() Timings {
	ml, rc := memberlist.DefaultLANConfig(), raft.DefaultConfig()
	t := LANTimings()
	t.ProbeInterval, t.ProbeTimeout, t.GossipInterval, t.SuspicionMult = ml.ProbeInterval, ml.ProbeTimeout, ml.GossipInterval, ml.SuspicionMult
	t.HeartbeatTimeout, t.ElectionTimeout, t.LeaderLeaseTimeout = rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout
	return t
}

// TestTimings make in-process clusters converge fast.
func TestTimings() Timings {
	t := LANTimings()
	t.ProbeInterval, t.ProbeTimeout, t.GossipInterval = 200*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
	t.VoterStable, t.VoterDead, t.Reconnect = 500*time.Millisecond, 1500*time.Millisecond, 500*time.Millisecond
	return t
}

// TimingsByName maps the --timings flag's values.
func TimingsByName(name string) (Timings, error) {
	switch name {
	case "lan", "":
		return LANTimings(), nil
	case "library":
		return LibraryTimings(), nil
	case "test":
		return TestTimings(), nil
	}
	return Timings{}, fmt.Errorf("unknown timings %q (want lan, library or test)", name)
}
