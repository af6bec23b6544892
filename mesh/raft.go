package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
)

// RaftProtocol carries raft's RPCs between voters over libp2p streams.
const RaftProtocol = protocol.ID("/palyra/raft/1.0.0")

// RaftConfig configures the election of the coordinator.
type RaftConfig struct {
	// Dir holds raft's snapshots.
	Dir string
	// Logs and Stable are raft's durable log and stable store (badger).
	Logs   raft.LogStore
	Stable raft.StableStore
	// FSM is the replicated state machine.
	FSM raft.FSM
	// Bootstrap makes this node the single voter of a new cluster.
	Bootstrap bool
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout; zero keeps
	// raft's defaults.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	Logger                                                *slog.Logger
}

// Raft is the raft node of a voter.
type Raft struct {
	*raft.Raft
	trans *raft.NetworkTransport
}

// StartRaft starts raft over libp2p streams on h, authenticating every peer
// through gate before a stream is opened.
func StartRaft(h host.Host, gate *Gate, cfg RaftConfig) (*Raft, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := gostream.Listen(h, RaftProtocol)
	if err != nil {
		return nil, fmt.Errorf("raft listener: %w", err)
	}
	logOut := hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Warn,
		Output: slogWriter{cfg.Logger.With("component", "raft")},
	})
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{Listener: ln, host: h, gate: gate},
		MaxPool: 3,
		Timeout: 2 * time.Second,
		Logger:  logOut,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(h.ID().String())
	rc.Logger = logOut
	if cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.HeartbeatTimeout
		rc.ElectionTimeout = cfg.ElectionTimeout
		rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	}
	rc.SnapshotThreshold = 1024
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		trans.Close()
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.Dir), 2, logOut)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("raft snapshots: %w", err)
	}
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(cfg.Logs, cfg.Stable, snaps)
		if err != nil {
			trans.Close()
			return nil, err
		}
		if !has {
			err := raft.BootstrapCluster(rc, cfg.Logs, cfg.Stable, snaps, trans, raft.Configuration{
				Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(h.ID().String())}},
			})
			if err != nil {
				trans.Close()
				return nil, fmt.Errorf("raft bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, cfg.FSM, cfg.Logs, cfg.Stable, snaps, trans)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("raft: %w", err)
	}
	return &Raft{Raft: r, trans: trans}, nil
}

// Close shuts raft down and closes its transport.
func (r *Raft) Close() error {
	err := r.Shutdown().Error()
	return errors.Join(err, r.trans.Close())
}

// streamLayer is raft's network: a gostream listener and dialer with the
// peer ID as raft's ServerAddress.
type streamLayer struct {
	net.Listener
	host host.Host
	gate *Gate
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	pid, err := peer.Decode(string(addr))
	if err != nil {
		return nil, fmt.Errorf("raft address %q: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.gate.Await(ctx, pid); err != nil {
		return nil, err
	}
	return gostream.Dial(ctx, s.host, pid, RaftProtocol)
}

// slogWriter adapts hclog's text output to slog, one record per line.
type slogWriter struct{ l *slog.Logger }

var _ io.Writer = slogWriter{}

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn(string(trimNL(p)))
	return len(p), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
