package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/palyra-mesh/palyra/api"
	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/mesh"
)

// Certificate renewal. A node renews its certificate when a third of its
// lifetime is left, through any member, on an open protocol: a node whose
// certificate already expired (within the grace period) cannot pass the gate
// any more, yet must still be able to renew. The libp2p connection proves
// the peer ID; the old certificate (signed by the mesh CA, for that peer ID,
// not revoked, expired at most the grace period ago) proves membership; the
// CSR proves the key. The member relays to the coordinator, which signs a
// certificate with the same name and roles and records it in raft.

// renewProtocol is what a node opens on any member to renew.
const renewProtocol = protocol.ID("/palyra/renew/1.0.0")

// opCertRenew forwards a renewal from the member that took it.
const opCertRenew = "cert.renew"

// renewRequest is the node's request (and, with Peer set, the member's
// forwarded request to the coordinator).
type renewRequest struct {
	Cert []byte `json:"cert"`
	CSR  []byte `json:"csr"`
	// Peer is the requesting node as the relaying member saw it.
	Peer string `json:"peer,omitempty"`
}

// renewResponse answers it.
type renewResponse struct {
	Cert  []byte     `json:"cert,omitempty"`
	Error *api.Error `json:"error,omitempty"`
}

// ErrMustPair means the certificate expired more than the grace period ago.
var ErrMustPair = errors.New("certificate expired beyond the grace period: this node must pair again")

// cert returns this node's current certificate.
func (a *Agent) cert() *ca.Certificate { return a.certP.Load() }

// checkExpiry refuses to start a node whose certificate is past grace.
func (a *Agent) checkExpiry(now time.Time) error {
	c := a.cert()
	if now.After(c.NotAfter.Add(a.cfg.CertGrace)) {
		return fmt.Errorf("%w: it expired at %s; move %s away and run `palyra agent --pin PIN` with a PIN from `palyra pair` on a member",
			ErrMustPair, c.NotAfter.Format(time.RFC3339), a.cfg.DataDir)
	}
	return nil
}

// renewLoop renews this node's certificate in time, retrying until it works.
func (a *Agent) renewLoop() {
	for {
		c := a.cert()
		wait := time.Until(c.RenewAt())
		if wait > 0 {
			select {
			case <-a.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		err := a.renew()
		if err == nil {
			continue
		}
		a.log.Warn("certificate renewal failed", "err", err, "expires", a.cert().NotAfter)
		if errors.Is(err, ErrMustPair) {
			return
		}
		retry := min(max(c.Lifetime()/30, time.Second), time.Minute)
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

// renew asks a member (the coordinator itself if we are it) for a new
// certificate and installs it.
func (a *Agent) renew() error {
	raw, err := a.id.key.Raw()
	if err != nil {
		return err
	}
	csr, err := ca.NewCSR(ed25519.NewKeyFromSeed(raw[:32]), a.id.mesh.Name, nil)
	if err != nil {
		return err
	}
	req := renewRequest{Cert: a.cert().Raw, CSR: csr}
	var der []byte
	if a.isLeader() {
		req.Peer = a.host.ID().String()
		der, err = a.signRenewal(a.ctx, req)
	} else {
		der, err = a.renewViaMember(req)
	}
	if err != nil {
		return err
	}
	c, err := ca.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("renewed certificate: %w", err)
	}
	if err := a.id.ca.Verify(time.Now(), c, a.cert().PublicKey); err != nil {
		return fmt.Errorf("renewed certificate: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(a.cfg.DataDir, fileCert), c.PEM(), 0o644); err != nil {
		return fmt.Errorf("save renewed certificate: %w", err)
	}
	a.certP.Store(c)
	a.gate.SetIdentity(a.id.ca, c)
	a.gate.Reannounce()
	a.log.Info("certificate renewed", "serial", c.Serial, "expires", c.NotAfter)
	return nil
}

// renewViaMember tries the coordinator first, then any other member.
func (a *Agent) renewViaMember(req renewRequest) ([]byte, error) {
	var targets []peer.ID
	if coord, ok := a.coordinator(); ok {
		targets = append(targets, coord)
	}
	for _, m := range a.gossip.Members() {
		if m.PeerID != a.host.ID() && m.State == "alive" {
			targets = append(targets, m.PeerID)
		}
	}
	for _, s := range a.savedPeers() {
		if ai, err := parsePeer(s); err == nil {
			targets = append(targets, ai.ID)
		}
	}
	var lastErr error = errors.New("no member known")
	tried := map[peer.ID]bool{}
	for _, p := range targets {
		if tried[p] || p == a.host.ID() {
			continue
		}
		tried[p] = true
		der, err := a.renewVia(p, req)
		if err == nil {
			return der, nil
		}
		if errors.Is(err, ErrMustPair) {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

func (a *Agent) renewVia(p peer.ID, req renewRequest) ([]byte, error) {
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	s, err := a.routed.NewStream(ctx, p, renewProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	if err := mesh.WriteMsg(s, req); err != nil {
		s.Reset()
		return nil, err
	}
	var res renewResponse
	if err := mesh.ReadMsg(s, 64<<10, &res); err != nil {
		s.Reset()
		return nil, err
	}
	if res.Error != nil {
		if res.Error.Code == "must_pair" {
			return nil, fmt.Errorf("%w: %s", ErrMustPair, res.Error.Message)
		}
		return nil, res.Error
	}
	return res.Cert, nil
}

// handleRenew takes a renewal from a node, on any member.
func (a *Agent) handleRenew(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(15 * time.Second))
	var req renewRequest
	if err := mesh.ReadMsg(s, 64<<10, &req); err != nil {
		s.Reset()
		return
	}
	req.Peer = s.Conn().RemotePeer().String()
	var der []byte
	var err error
	if a.isLeader() {
		der, err = a.signRenewal(a.ctx, req)
	} else {
		body, _ := json.Marshal(req)
		var raw json.RawMessage
		raw, err = a.onCoordinator(a.ctx, principal{Name: "renewal relay"}, controlRequest{Op: opCertRenew, Body: body})
		if err == nil {
			var res renewResponse
			if err = json.Unmarshal(raw, &res); err == nil {
				der = res.Cert
			}
		}
	}
	if err != nil {
		_ = mesh.WriteMsg(s, renewResponse{Error: toAPIError(err)})
		return
	}
	_ = mesh.WriteMsg(s, renewResponse{Cert: der})
}

// signRenewal checks a renewal on the coordinator and signs it.
func (a *Agent) signRenewal(ctx context.Context, req renewRequest) ([]byte, error) {
	now := time.Now()
	p, err := peer.Decode(req.Peer)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "bad_request", "renewal for an invalid peer ID")
	}
	old, err := ca.ParseCertificate(req.Cert)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "bad_request", "renewal: %s", err)
	}
	pub, name, err := ca.ParseCSR(req.CSR)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "bad_request", "renewal: %s", err)
	}
	if !pub.Equal(old.PublicKey) || name != old.Name {
		return nil, errf(http.StatusBadRequest, "bad_request", "renewal: the request does not match the certificate")
	}
	if err := a.id.ca.Verify(now, old, pub); err != nil && !errors.Is(err, ca.ErrExpired) {
		return nil, errf(http.StatusForbidden, "forbidden", "renewal: %s", err)
	}
	if pid, err := mesh.PeerIDFromKey(pub); err != nil || pid != p {
		return nil, errf(http.StatusForbidden, "forbidden", "renewal: certificate key is not the requesting peer's key")
	}
	if now.After(old.NotAfter.Add(a.cfg.CertGrace)) {
		return nil, errf(http.StatusForbidden, "must_pair", "certificate of %q expired at %s, beyond the grace period of %s: pair again", old.Name, old.NotAfter.Format(time.RFC3339), a.cfg.CertGrace)
	}
	var node control.Node
	var known bool
	a.fsm.Read(func(s *control.State) {
		if n, ok := s.Nodes[old.Name]; ok {
			node, known = *n, true
		}
	})
	if !known || node.PeerID != p.String() {
		return nil, errf(http.StatusForbidden, "forbidden", "renewal: %q is not a registered node of this peer", old.Name)
	}
	if node.Revoked || a.isRevokedPeer(p) {
		return nil, errf(http.StatusForbidden, "forbidden", "renewal: %q is revoked", old.Name)
	}
	signer, err := a.signer()
	if err != nil {
		return nil, err
	}
	c, err := signer.Issue(now, pub, old.Name, old.Roles, a.cfg.CertLifetime, nil)
	if err != nil {
		return nil, err
	}
	if _, err := a.apply(ctx, control.OpCertRenew, control.CertRenew{Name: c.Name, PeerID: p.String(), CertPEM: string(c.PEM()), Serial: c.Serial, ExpiresAt: c.NotAfter}); err != nil {
		return nil, err
	}
	a.log.Info("certificate renewed for node", "node", c.Name, "serial", c.Serial, "expires", c.NotAfter)
	return c.Raw, nil
}
