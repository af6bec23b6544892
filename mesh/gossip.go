package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// Meta is what a member tells everyone at a glance through gossip. It must
// encode to at most memberlist.MetaMaxSize (512) bytes: addresses are
// dropped from the end until it fits.
type Meta struct {
	Name    string `json:"n"`
	Version string `json:"v"`
	// Eligible: may become a voter/coordinator (--coordinator).
	Eligible bool `json:"e,omitempty"`
	// Coordinator: this member is the raft leader, at Term.
	Coordinator bool   `json:"c,omitempty"`
	Voter       bool   `json:"o,omitempty"`
	Term        uint64 `json:"t,omitempty"`
	// Claim is the CA's signature of Coordinator at Term (ca.SignCoordinator):
	// members that run no raft trust an announced coordinator only with it.
	Claim []byte `json:"s,omitempty"`
	// Addrs are the member's libp2p multiaddrs (without /p2p/).
	Addrs []string `json:"a,omitempty"`
	// Caps names the capabilities the member offers.
	Caps []string `json:"k,omitempty"`
	// Leaving is set just before a graceful leave. memberlist hands
	// NotifyLeave a node whose State field is stale, so this flag is how
	// the others tell "left" from "dead".
	Leaving bool `json:"x,omitempty"`
}

func (m Meta) encode(limit int) []byte {
	for {
		b, _ := json.Marshal(m)
		if len(b) <= limit || len(m.Addrs) == 0 {
			return b
		}
		m.Addrs = m.Addrs[:len(m.Addrs)-1]
	}
}

// ReapAfter is how long a dead or left member stays listed.
const ReapAfter = 24 * time.Hour

// Member is one member as this node sees it.
type Member struct {
	PeerID peer.ID
	Meta   Meta
	// State is "alive", "suspect", "dead" or "left".
	State string
	Since time.Time
}

// GossipConfig configures membership.
type GossipConfig struct {
	Transport *Transport
	// Meta returns this node's current metadata. Called by memberlist's
	// delegate: it must not block and must not call into Gossip.
	Meta func() Meta
	// ProbeInterval, ProbeTimeout, SuspicionMult and GossipInterval tune
	// failure detection; zero keeps memberlist's LAN defaults.
	ProbeInterval, ProbeTimeout, GossipInterval time.Duration
	SuspicionMult                               int
	// OnChange is called (from a goroutine of Gossip's own, never under a
	// memberlist lock) after membership changed.
	OnChange func()
	// OnMessage receives what other members Broadcast; LocalState is this
	// node's shared state for push/pull and MergeState receives a peer's.
	// All three run on memberlist's goroutines: they must not block and
	// must not call into Gossip. Any may be nil.
	OnMessage  func([]byte)
	LocalState func() []byte
	MergeState func([]byte)
	Logger     *slog.Logger
}

// Gossip is memberlist membership over libp2p.
type Gossip struct {
	cfg  GossipConfig
	ml   *memberlist.Memberlist
	self peer.ID
	ps   peerstore.Peerstore

	mu      sync.Mutex
	members map[peer.ID]*Member
	leaving bool

	broadcasts *memberlist.TransmitLimitedQueue

	notify chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
}

// NewGossip validates cfg and allocates; nothing runs until Start.
func NewGossip(cfg GossipConfig) (*Gossip, error) {
	if cfg.Transport == nil || cfg.Meta == nil {
		return nil, fmt.Errorf("gossip: transport and meta are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := cfg.Transport.Host()
	g := &Gossip{
		cfg:     cfg,
		self:    h.ID(),
		ps:      h.Peerstore(),
		members: make(map[peer.ID]*Member),
		notify:  make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	g.broadcasts = &memberlist.TransmitLimitedQueue{NumNodes: g.numAlive, RetransmitMult: 3}
	return g, nil
}

// Start creates the memberlist (this node alone until Join) and the
// notifier goroutine. Call once.
func (g *Gossip) Start() error {
	mc := memberlist.DefaultLANConfig()
	mc.Name = g.self.String()
	mc.Transport = g.cfg.Transport
	if g.cfg.ProbeInterval > 0 {
		mc.ProbeInterval = g.cfg.ProbeInterval
		mc.ProbeTimeout = g.cfg.ProbeTimeout
		mc.SuspicionMult = g.cfg.SuspicionMult
		mc.GossipInterval = g.cfg.GossipInterval
	}
	mc.Delegate = &gossipDelegate{g}
	mc.Events = &gossipEvents{g}
	mc.LogOutput = memberlistLog{g.cfg.Logger.With("component", "gossip")}
	g.wg.Add(1)
	go g.notifier()
	ml, err := memberlist.Create(mc)
	if err != nil {
		close(g.done)
		g.wg.Wait()
		return fmt.Errorf("memberlist: %w", err)
	}
	g.ml = ml
	return nil
}

// numAlive counts alive members, for the broadcast queue's retransmit limit.
func (g *Gossip) numAlive() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, m := range g.members {
		if m.State == "alive" {
			n++
		}
	}
	return max(n, 1)
}

// Join contacts members; it succeeds if at least one answered.
func (g *Gossip) Join(peers []peer.AddrInfo) (int, error) {
	var addrs []string
	for _, ai := range peers {
		if ai.ID == g.self {
			continue
		}
		g.ps.AddAddrs(ai.ID, ai.Addrs, peerstore.AddressTTL)
		for _, a := range ai.Addrs {
			if s, err := JoinAddress(ai.ID, a); err == nil {
				addrs = append(addrs, s)
				break
			}
		}
	}
	if len(addrs) == 0 {
		return 0, fmt.Errorf("no TCP address to join among %d peers", len(peers))
	}
	return g.ml.Join(addrs)
}

// Members returns every member known, alive or not, sorted by name.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for id, m := range g.members {
		// Like serf's reap: members gone for a day are forgotten.
		if (m.State == "dead" || m.State == "left") && time.Since(m.Since) > ReapAfter {
			delete(g.members, id)
			continue
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Meta.Name < out[j].Meta.Name })
	return out
}

// Broadcast spreads msg to every member by gossip. A later broadcast with
// the same key replaces one not yet fully sent.
func (g *Gossip) Broadcast(key string, msg []byte) {
	g.broadcasts.QueueBroadcast(&broadcast{key: key, msg: append([]byte(nil), msg...)})
}

type broadcast struct {
	key string
	msg []byte
}

func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*broadcast)
	return ok && o.key == b.key
}
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// UpdateMeta re-broadcasts this node's metadata.
func (g *Gossip) UpdateMeta(timeout time.Duration) error {
	return g.ml.UpdateNode(timeout)
}

// Leave tells the mesh this node is leaving: first a metadata update that
// says so, then memberlist's leave broadcast.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.mu.Lock()
	g.leaving = true
	g.mu.Unlock()
	deadline := time.Now().Add(timeout)
	if err := g.ml.UpdateNode(timeout / 3); err != nil {
		g.cfg.Logger.Debug("leave intent", "err", err)
	}
	if err := g.ml.Leave(timeout / 3); err != nil {
		return err
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	return g.cfg.Transport.Flush(ctx)
}

func (g *Gossip) meta(limit int) []byte {
	m := g.cfg.Meta()
	g.mu.Lock()
	m.Leaving = g.leaving
	g.mu.Unlock()
	return m.encode(limit)
}

// Close stops gossip and its goroutines. Idempotent.
func (g *Gossip) Close() error {
	select {
	case <-g.done:
		return nil
	default:
	}
	var err error
	if g.ml != nil {
		err = g.ml.Shutdown()
	}
	close(g.done)
	g.wg.Wait()
	return err
}

// notifier calls OnChange outside memberlist's locks, coalescing bursts.
func (g *Gossip) notifier() {
	defer g.wg.Done()
	for {
		select {
		case <-g.done:
			return
		case <-g.notify:
			if g.cfg.OnChange != nil {
				g.cfg.OnChange()
			}
		}
	}
}

// record updates the member table from a memberlist node. It runs under
// memberlist's nodeLock: it must not call memberlist.
func (g *Gossip) record(n *memberlist.Node, state string) {
	p, err := peer.Decode(n.Name)
	if err != nil {
		return
	}
	var meta Meta
	if len(n.Meta) > 0 {
		if err := json.Unmarshal(n.Meta, &meta); err != nil {
			g.cfg.Logger.Debug("bad member meta", "peer", p, "err", err)
		}
	}
	if meta.Name == "" {
		meta.Name = n.Name
	}
	var addrs []ma.Multiaddr
	for _, s := range meta.Addrs {
		if a, err := ma.NewMultiaddr(s); err == nil {
			addrs = append(addrs, a)
		}
	}
	if p != g.self && len(addrs) > 0 && state == "alive" {
		g.ps.AddAddrs(p, addrs, peerstore.AddressTTL)
	}
	g.mu.Lock()
	m, ok := g.members[p]
	if !ok {
		m = &Member{PeerID: p}
		g.members[p] = m
	}
	g.cfg.Logger.Debug("member event", "peer", p, "state", state, "leaving", meta.Leaving, "was", m.Meta.Leaving)
	if state == "dead" && (meta.Leaving || m.Meta.Leaving) {
		state = "left"
	}
	if m.State != state {
		m.Since = time.Now()
	}
	m.Meta, m.State = meta, state
	g.mu.Unlock()
	select {
	case g.notify <- struct{}{}:
	default:
	}
}

type gossipEvents struct{ g *Gossip }

func (e *gossipEvents) NotifyJoin(n *memberlist.Node)   { e.g.record(n, stateName(n.State)) }
func (e *gossipEvents) NotifyUpdate(n *memberlist.Node) { e.g.record(n, stateName(n.State)) }
func (e *gossipEvents) NotifyLeave(n *memberlist.Node) {
	e.g.record(n, "dead")
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateLeft:
		return "left"
	default:
		return "dead"
	}
}

type gossipDelegate struct{ g *Gossip }

func (d *gossipDelegate) NodeMeta(limit int) []byte { return d.g.meta(limit) }
func (d *gossipDelegate) NotifyMsg(b []byte) {
	if d.g.cfg.OnMessage != nil && len(b) > 0 {
		d.g.cfg.OnMessage(append([]byte(nil), b...))
	}
}

func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.g.broadcasts.GetBroadcasts(overhead, limit)
}

func (d *gossipDelegate) LocalState(bool) []byte {
	if d.g.cfg.LocalState == nil {
		return nil
	}
	return d.g.cfg.LocalState()
}

func (d *gossipDelegate) MergeRemoteState(b []byte, _ bool) {
	if d.g.cfg.MergeState != nil && len(b) > 0 {
		d.g.cfg.MergeState(append([]byte(nil), b...))
	}
}

// memberlistLog turns memberlist's "[LEVEL] memberlist: ..." lines into slog
// records, dropping DEBUG.
type memberlistLog struct{ l *slog.Logger }

func (w memberlistLog) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	switch {
	case bytes.Contains(line, []byte("[DEBUG]")):
	case bytes.Contains(line, []byte("[ERR]")):
		w.l.Warn(string(line))
	default:
		w.l.Info(string(line))
	}
	return len(p), nil
}
