package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/palyra-mesh/palyra/ca"
)

// Config is everything an agent needs to run. Flags, environment and
// defaults are merged into it in one place (cli).
type Config struct {
	// DataDir holds the node's identity, certificates, raft data and the
	// local admin credential. Created 0700; an existing one is made 0700
	// on start (and refused if another user owns it).
	DataDir string
	// Name is the node's name in the mesh (unique); default the host name.
	Name string
	// Listen are libp2p multiaddrs; default TCP+QUIC on port 7420.
	Listen []string
	// HTTPAddr is where the HTTP API listens (host:port).
	HTTPAddr string
	// Init creates a new mesh when DataDir holds none.
	Init bool
	// PIN pairs with an existing mesh when DataDir holds none. A join code
	// (from `palyra pair --json`) is accepted too.
	PIN string
	// Peers are member multiaddrs ending in /p2p/PEER_ID to contact.
	Peers []string
	// Coordinator: this node may become a voter and coordinator.
	Coordinator bool
	// MDNS enables multicast discovery on the LAN.
	MDNS bool
	// Version is reported in gossip and status.
	Version string
	// CertLifetime is the validity of node certificates this node signs.
	CertLifetime time.Duration
	// CertGrace is how long after expiry a node may still renew its
	// certificate (checked by the coordinator); beyond it, it must pair again.
	CertGrace time.Duration
	// CALifetime is the validity of a new mesh's CA.
	CALifetime time.Duration
	// Timings are the failure-detection, election and voter clocks.
	Timings Timings
	// JoinWait bounds the search for a member when pairing via mDNS.
	JoinWait time.Duration
	// Logger receives the agent's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultHTTPAddr is the HTTP API's default address.
const DefaultHTTPAddr = "127.0.0.1:7421"

// DefaultDataDir is $XDG_DATA_HOME/palyra, else ~/.local/share/palyra.
func DefaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "palyra")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "palyra-data"
	}
	return filepath.Join(home, ".local", "share", "palyra")
}

// DefaultConfig returns the defaults of `palyra agent`.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		DataDir:      DefaultDataDir(),
		Name:         host,
		HTTPAddr:     DefaultHTTPAddr,
		Coordinator:  true,
		MDNS:         true,
		Version:      "dev",
		CertLifetime: 7 * 24 * time.Hour,
		CertGrace:    7 * 24 * time.Hour,
		CALifetime:   10 * 365 * 24 * time.Hour,
		JoinWait:     30 * time.Second,
		Timings:      LANTimings(),
	}
}

// Validate returns every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty"))
	}
	if c.Name != "" {
		if err := ca.ValidName(c.Name); err != nil {
			errs = append(errs, fmt.Errorf("--name: %w", err))
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("--http %q: %w", c.HTTPAddr, err))
	}
	for _, l := range c.Listen {
		if _, err := ma.NewMultiaddr(l); err != nil {
			errs = append(errs, fmt.Errorf("--listen %q: %w", l, err))
		}
	}
	for _, p := range c.Peers {
		if _, err := parsePeer(p); err != nil {
			errs = append(errs, fmt.Errorf("--peer %q: %w", p, err))
		}
	}
	if c.PIN != "" {
		if _, _, err := parseJoinInput(c.PIN); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Init && c.PIN != "" {
		errs = append(errs, errors.New("--init and --pin exclude each other"))
	}
	if t := c.Timings; t.ProbeInterval <= 0 || t.ProbeTimeout <= 0 || t.GossipInterval <= 0 || t.SuspicionMult <= 0 ||
		t.HeartbeatTimeout <= 0 || t.ElectionTimeout <= 0 || t.LeaderLeaseTimeout <= 0 || t.Reconnect <= 0 {
		errs = append(errs, errors.New("timings must all be positive"))
	}
	if c.CertGrace < 0 {
		errs = append(errs, errors.New("--cert-grace must not be negative"))
	}
	if c.CertLifetime <= 0 || c.CALifetime <= c.CertLifetime {
		errs = append(errs, errors.New("certificate lifetimes must be positive and the CA must outlive node certificates"))
	}
	return errors.Join(errs...)
}
