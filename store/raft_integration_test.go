package store

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// countFSM counts applied commands and remembers the last one.
type countFSM struct {
	mu   sync.Mutex
	n    int
	last string
}

func (f *countFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.last = string(l.Data)
	return nil
}

func (f *countFSM) applied() (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.last
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return emptySnapshot{}, nil }

func (f *countFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

type emptySnapshot struct{}

func (emptySnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }

func (emptySnapshot) Release() {}

// testRaftConfig is a single-node config with timers shrunk for tests and
// snapshots out of the way, so the whole history stays in the log.
func testRaftConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 30
	c.SnapshotInterval = time.Hour
	c.LogOutput = io.Discard
	return c
}

// startRaft starts a node on st for both log and stable store and waits
// until it leads. It returns a stop function that shuts raft down.
func startRaft(t *testing.T, st *Store, snaps raft.SnapshotStore, fsm raft.FSM, bootstrap bool) (*raft.Raft, func()) {
	t.Helper()
	const id = raft.ServerID("node-1")
	conf := testRaftConfig(id)
	addr, trans := raft.NewInmemTransport("node-1")
	if bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: id, Address: addr}}}
		if err := raft.BootstrapCluster(conf, st, st, snaps, trans, cfg); err != nil {
			t.Fatalf("BootstrapCluster: %v", err)
		}
	}
	r, err := raft.NewRaft(conf, fsm, st, st, snaps, trans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := r.Shutdown().Error(); err != nil {
				t.Errorf("raft shutdown: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	checkFor(t, func() bool { return r.State() == raft.Leader })
	return r, stop
}

// TestRaftRestart runs hashicorp/raft on the store: a single node
// bootstraps, leads and applies 100 commands; after a shutdown and a reopen
// of the store it leads again from the same log without bootstrapping and
// replays every command into a fresh FSM.
func TestRaftRestart(t *testing.T) {
	const n = 100
	dir := t.TempDir()
	snaps := raft.NewInmemSnapshotStore()

	st := openDir(t, dir)
	if ok, err := raft.HasExistingState(st, st, snaps); err != nil || ok {
		t.Fatalf("fresh store: HasExistingState = %v, %v; want false, nil", ok, err)
	}
	fsm := &countFSM{}
	r, stop := startRaft(t, st, snaps, fsm, true)
	for i := range n {
		if err := r.Apply(fmt.Appendf(nil, "cmd-%d", i), 5*time.Second).Error(); err != nil {
			t.Fatalf("Apply #%d: %v", i, err)
		}
	}
	if got, last := fsm.applied(); got != n || last != fmt.Sprintf("cmd-%d", n-1) {
		t.Fatalf("FSM applied %d commands, last %q; want %d", got, last, n)
	}
	lastIndex := r.LastIndex()
	term, err := st.GetUint64([]byte("CurrentTerm"))
	if err != nil {
		t.Fatalf("GetUint64(CurrentTerm): %v", err)
	}
	stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen: the log and the term survived.
	st = openDir(t, dir)
	if got, err := st.LastIndex(); err != nil || got != lastIndex {
		t.Fatalf("LastIndex after reopen = %d, %v; want %d", got, err, lastIndex)
	}
	if got, err := st.FirstIndex(); err != nil || got != 1 {
		t.Fatalf("FirstIndex after reopen = %d, %v; want 1", got, err)
	}
	var l raft.Log
	if err := st.GetLog(lastIndex, &l); err != nil || string(l.Data) != fmt.Sprintf("cmd-%d", n-1) {
		t.Fatalf("GetLog(%d) = %q, %v; want the last command", lastIndex, l.Data, err)
	}
	if got, err := st.GetUint64([]byte("CurrentTerm")); err != nil || got != term {
		t.Fatalf("CurrentTerm after reopen = %d, %v; want %d", got, err, term)
	}
	if ok, err := raft.HasExistingState(st, st, snaps); err != nil || !ok {
		t.Fatalf("reopened store: HasExistingState = %v, %v; want true, nil", ok, err)
	}
	_, trans := raft.NewInmemTransport("node-1")
	err = raft.BootstrapCluster(testRaftConfig("node-1"), st, st, snaps, trans,
		raft.Configuration{Servers: []raft.Server{{ID: "node-1", Address: "node-1"}}})
	if !errors.Is(err, raft.ErrCantBootstrap) {
		t.Fatalf("BootstrapCluster on existing state = %v, want ErrCantBootstrap", err)
	}
	trans.Close()

	// Restart without bootstrap: raft reads its configuration from the log.
	fsm = &countFSM{}
	r, stop = startRaft(t, st, snaps, fsm, false)
	defer stop()
	checkFor(t, func() bool { got, _ := fsm.applied(); return got >= n })
	if got, last := fsm.applied(); got != n || last != fmt.Sprintf("cmd-%d", n-1) {
		t.Fatalf("replayed %d commands, last %q; want %d", got, last, n)
	}
	if err := r.Apply([]byte("after-restart"), 5*time.Second).Error(); err != nil {
		t.Fatalf("Apply after restart: %v", err)
	}
	if got := r.LastIndex(); got <= lastIndex {
		t.Fatalf("LastIndex after restart = %d, want > %d", got, lastIndex)
	}
	if got, err := st.GetUint64([]byte("CurrentTerm")); err != nil || got <= term {
		t.Fatalf("CurrentTerm after re-election = %d, %v; want > %d", got, err, term)
	}
}
