package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/palyra-mesh/palyra/api"
	"github.com/palyra-mesh/palyra/mesh"
)

// controlProtocol carries control-plane operations from any member to the
// coordinator, so a client may talk to any node.
const controlProtocol = protocol.ID("/palyra/control/1.0.0")

// opRaftPrepare is sent by the coordinator to a member it will promote:
// start raft (without bootstrapping) so it can be added as a voter.
const opRaftPrepare = "raft.prepare"

// controlRequest is one forwarded operation.
type controlRequest struct {
	Op   string          `json:"op"`
	Name string          `json:"name,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
	// Principal names who asked, for the record; the permissions used are
	// the forwarding member's certificate roles (it cannot lend more).
	Principal string `json:"principal"`
	// Via names the member that took the request.
	Via string `json:"via,omitempty"`
	// Stale asks a voter that is not the coordinator to answer a read from
	// its own copy of the state (no coordinator is reachable).
	Stale bool `json:"stale,omitempty"`
}

// controlResponse answers it.
type controlResponse struct {
	Body  json.RawMessage `json:"body,omitempty"`
	Error *api.Error      `json:"error,omitempty"`
	// Status is the HTTP status of Error.
	Status int `json:"status,omitempty"`
}

// onCoordinator runs req where the coordinator is and returns the JSON result.
func (a *Agent) onCoordinator(ctx context.Context, p principal, req controlRequest) (json.RawMessage, error) {
	if a.isLeader() {
		// Renewals carry their own proof (the node's certificate and
		// CSR, bound to the peer the member saw); everything else needs
		// a permission.
		if perm := requiredPerm[req.Op]; req.Op != opCertRenew && !p.can(perm) {
			return nil, errf(http.StatusForbidden, "forbidden", "%s lacks permission %s", p.Name, perm)
		}
		v, err := a.execute(ctx, p, req)
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	}
	coord, ok := a.coordinator()
	if !ok {
		return nil, a.noCoordinator()
	}
	res, err := a.callMember(ctx, coord, req)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", mesh.ErrNoCoordinator, err)
	}
	return res, nil
}

// callMember sends one control request to member p and returns its answer.
func (a *Agent) callMember(ctx context.Context, p peer.ID, req controlRequest) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Bound the dial: a member that just died must not cost the caller the
	// whole deadline.
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	defer dcancel()
	if err := a.gate.Await(dctx, p); err != nil {
		return nil, err
	}
	s, err := a.routed.NewStream(dctx, p, controlProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := mesh.WriteMsg(s, req); err != nil {
		s.Reset()
		return nil, fmt.Errorf("send %s: %w", req.Op, err)
	}
	var res controlResponse
	if err := mesh.ReadMsg(s, 0, &res); err != nil {
		s.Reset()
		return nil, fmt.Errorf("answer to %s: %w", req.Op, err)
	}
	if res.Error != nil {
		res.Error.Status = res.Status
		return nil, res.Error
	}
	return res.Body, nil
}

// handleControl serves forwarded operations on the coordinator.
func (a *Agent) handleControl(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(15 * time.Second))
	cert, ok := a.gate.Peer(s.Conn().RemotePeer())
	if !ok {
		s.Reset()
		return
	}
	var req controlRequest
	if err := mesh.ReadMsg(s, maxBody*2, &req); err != nil {
		s.Reset()
		return
	}
	if req.Op == opRaftPrepare {
		err := a.prepareRaft(s.Conn().RemotePeer())
		_ = mesh.WriteMsg(s, responseFor(json.RawMessage(`{}`), err))
		return
	}
	p := principal{Name: req.Principal + " via " + cert.Name, Roles: cert.Roles}
	if req.Stale && !a.isLeader() {
		body, err := a.readLocal(p, req)
		_ = mesh.WriteMsg(s, responseFor(body, err))
		return
	}
	if !a.isLeader() {
		_ = mesh.WriteMsg(s, responseFor(nil, ErrNotCoordinator))
		return
	}
	body, err := a.onCoordinator(a.ctx, p, req)
	_ = mesh.WriteMsg(s, responseFor(body, err))
}

func responseFor(body json.RawMessage, err error) controlResponse {
	if err != nil {
		ae := toAPIError(err)
		return controlResponse{Error: ae, Status: ae.Status}
	}
	return controlResponse{Body: body}
}

// readOps are the operations a voter may answer from its own copy of the
// state when no coordinator is reachable (a minority side stays readable).
var readOps = map[string]bool{opTicketList: true, opNodesList: true, opNodesShow: true}

// isNoCoordinator tells whether err means no coordinator took the request,
// here or at the member it was forwarded to.
func isNoCoordinator(err error) bool { return toAPIError(err).Code == "no_coordinator" }

// staleRead answers a read that no coordinator took: from this node's state
// on a voter, else from any alive voter that answers. The answer carries a
// warning saying why it may be stale. Without a voter it returns cause.
func (a *Agent) staleRead(ctx context.Context, p principal, req controlRequest, cause error) (json.RawMessage, error) {
	if a.raft() != nil {
		return a.readLocal(p, req)
	}
	req.Stale = true
	for _, m := range a.gossip.Members() {
		if m.State != "alive" || !m.Meta.Voter || m.PeerID == a.host.ID() {
			continue
		}
		res, err := a.callMember(ctx, m.PeerID, req)
		var ae *api.Error
		if err == nil || errors.As(err, &ae) && ae.Code != "no_coordinator" {
			return res, err
		}
	}
	return nil, cause
}

// readLocal runs a read operation on this voter's copy of the state and
// marks the answer as possibly stale.
func (a *Agent) readLocal(p principal, req controlRequest) (json.RawMessage, error) {
	if !readOps[req.Op] || a.raft() == nil {
		return nil, ErrNotCoordinator
	}
	if perm := requiredPerm[req.Op]; !p.can(perm) {
		return nil, errf(http.StatusForbidden, "forbidden", "%s lacks permission %s", p.Name, perm)
	}
	v, err := a.execute(a.ctx, p, req)
	if err != nil {
		return nil, err
	}
	warn := fmt.Sprintf("%s; answered from %s's copy of the replicated state, which may be stale", a.noCoordinator(), a.id.mesh.Name)
	switch d := v.(type) {
	case api.NodeList:
		d.Warnings = append(d.Warnings, warn)
		v = d
	case api.Node:
		d.Warnings = append(d.Warnings, warn)
		v = d
	case api.TicketList:
		d.Warnings = append(d.Warnings, warn)
		v = d
	}
	return json.Marshal(v)
}
