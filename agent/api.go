package agent

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/palyra-mesh/palyra/api"
	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/control"
	"github.com/palyra-mesh/palyra/mesh"
)

// maxBody bounds request bodies of the control-plane API.
const maxBody = 64 << 10

func errf(status int, code, format string, args ...any) *api.Error {
	return &api.Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// toAPIError maps any error to an apiError.
func toAPIError(err error) *api.Error {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, control.ErrNotFound):
		return errf(http.StatusNotFound, "not_found", "%s", err)
	case errors.Is(err, control.ErrConflict), errors.Is(err, control.ErrNoTickets):
		return errf(http.StatusConflict, "conflict", "%s", err)
	case errors.Is(err, mesh.ErrNoCoordinator), errors.Is(err, ErrNotCoordinator):
		return errf(http.StatusServiceUnavailable, "no_coordinator", "%s", err)
	}
	return errf(http.StatusInternalServerError, "internal", "%s", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	ae := toAPIError(err)
	writeJSON(w, ae.Status, api.ErrorBody{Error: ae})
}

type ctxKey struct{}

func principalFrom(ctx context.Context) principal {
	p, _ := ctx.Value(ctxKey{}).(principal)
	return p
}

// routes builds the HTTP API.
func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /metrics", a.metricsHandler())
	api := func(pattern, perm string, h func(w http.ResponseWriter, r *http.Request)) {
		mux.Handle(pattern, a.authenticate(perm, http.HandlerFunc(h)))
	}
	api("GET /api/v1/status", permMeshRead, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.status())
	})
	api("POST /api/v1/pairing/tickets", permPairingCreate, a.handleCreateTicket)
	api("GET /api/v1/pairing/tickets", permNodesRead, a.coordinatorHandler(opTicketList))
	api("GET /api/v1/nodes", permNodesRead, a.coordinatorHandler(opNodesList))
	api("GET /api/v1/nodes/{name}", permNodesRead, a.coordinatorHandler(opNodesShow))
	api("POST /api/v1/nodes/{name}/approve", permNodesManage, a.coordinatorHandler(opNodesApprove))
	api("POST /api/v1/nodes/{name}/reject", permNodesManage, a.coordinatorHandler(opNodesReject))
	api("POST /api/v1/nodes/{name}/revoke", permNodesManage, a.coordinatorHandler(opNodesRevoke))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errf(http.StatusNotFound, "not_found", "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// authenticate admits a request carrying the local admin credential and
// checks perm against the principal's roles.
func (a *Agent) authenticate(perm string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			writeError(w, errf(http.StatusUnauthorized, "unauthenticated", "missing bearer credential"))
			return
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(a.adminTok)) != 1 {
			writeError(w, errf(http.StatusUnauthorized, "unauthenticated", "invalid credential"))
			return
		}
		p := principal{Name: "local-admin@" + a.id.mesh.Name, Roles: a.cert().Roles}
		if !p.can(perm) {
			writeError(w, errf(http.StatusForbidden, "forbidden", "%s (roles %v) lacks permission %s", p.Name, p.Roles, perm))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	})
}

// coordinatorHandler runs op on the coordinator: here, or forwarded.
func (a *Agent) coordinatorHandler(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			writeError(w, errf(http.StatusRequestEntityTooLarge, "too_large", "request body over %d bytes", maxBody))
			return
		}
		req := controlRequest{Op: op, Name: r.PathValue("name"), Body: body, Principal: principalFrom(r.Context()).Name}
		res, err := a.onCoordinator(r.Context(), principalFrom(r.Context()), req)
		if err != nil && readOps[op] && isNoCoordinator(err) {
			res, err = a.staleRead(r.Context(), principalFrom(r.Context()), req, err)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(res)
	}
}

// The coordinator's operations.
const (
	opTicketCreate = "pairing.create"
	opTicketList   = "pairing.list"
	opNodesList    = "nodes.list"
	opNodesShow    = "nodes.show"
	opNodesApprove = "nodes.approve"
	opNodesReject  = "nodes.reject"
	opNodesRevoke  = "nodes.revoke"
)

func (a *Agent) handleCreateTicket(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeError(w, errf(http.StatusRequestEntityTooLarge, "too_large", "request body over %d bytes", maxBody))
		return
	}
	p := principalFrom(r.Context())
	raw, err := a.onCoordinator(r.Context(), p, controlRequest{Op: opTicketCreate, Body: body, Principal: p.Name, Via: a.id.mesh.Name})
	if err != nil {
		writeError(w, err)
		return
	}
	var res api.Ticket
	if err := json.Unmarshal(raw, &res); err != nil {
		writeError(w, err)
		return
	}
	// The new node should contact the member the user is at.
	for _, s := range a.currentMeta().Addrs {
		res.Peers = append(res.Peers, s+"/p2p/"+a.host.ID().String())
	}
	res.JoinCode = encodeJoinCode(joinCode{PIN: res.PIN, MeshID: a.id.mesh.MeshID, CAFingerprint: a.id.ca.Fingerprint(), Peers: res.Peers})
	writeJSON(w, http.StatusOK, res)
}

// execute runs a control operation on this node, which must be the
// coordinator. The principal's roles were checked for the route's
// permission by the entry node; operations check anything finer.
func (a *Agent) execute(ctx context.Context, p principal, req controlRequest) (any, error) {
	switch req.Op {
	case opTicketCreate:
		return a.createTicket(ctx, p, req)
	case opCertRenew:
		var rr renewRequest
		if err := json.Unmarshal(req.Body, &rr); err != nil {
			return nil, errf(http.StatusBadRequest, "bad_request", "invalid renewal: %s", err)
		}
		der, err := a.signRenewal(ctx, rr)
		if err != nil {
			return nil, err
		}
		return renewResponse{Cert: der}, nil
	case opTicketList:
		return a.listTickets(), nil
	case opNodesList:
		return a.listNodes(), nil
	case opNodesShow:
		n, ok := a.showNode(req.Name)
		if !ok {
			return nil, errf(http.StatusNotFound, "not_found", "no node named %q", req.Name)
		}
		return n, nil
	case opNodesRevoke:
		if req.Name == a.id.mesh.Name {
			return nil, errf(http.StatusConflict, "conflict", "%s is the coordinator: it cannot revoke itself (stop it, let another member take over, then revoke it there)", req.Name)
		}
		if _, err := a.apply(ctx, control.OpNodeRevoke, control.NodeRevoke{Name: req.Name}); err != nil {
			return nil, err
		}
		a.log.Info("node revoked", "node", req.Name, "by", p.Name)
		return api.Decision{Name: req.Name, Decision: "revoked"}, nil
	case opNodesApprove, opNodesReject:
		_, err := a.apply(ctx, control.OpPairDecide, control.PairDecide{Name: req.Name, Approve: req.Op == opNodesApprove})
		if err != nil {
			return nil, err
		}
		decision := "rejected"
		if req.Op == opNodesApprove {
			decision = "approved"
		}
		return api.Decision{Name: req.Name, Decision: decision}, nil
	}
	return nil, errf(http.StatusBadRequest, "bad_request", "unknown operation %q", req.Op)
}

// requiredPerm is the permission each operation needs at the coordinator.
var requiredPerm = map[string]string{
	opTicketCreate: permPairingCreate,
	opTicketList:   permNodesRead,
	opNodesList:    permNodesRead,
	opNodesShow:    permNodesRead,
	opNodesApprove: permNodesManage,
	opNodesReject:  permNodesManage,
	opNodesRevoke:  permNodesManage,
}

func (a *Agent) createTicket(ctx context.Context, p principal, req controlRequest) (any, error) {
	var tr api.TicketRequest
	if len(req.Body) > 0 {
		if err := json.Unmarshal(req.Body, &tr); err != nil {
			return nil, errf(http.StatusBadRequest, "bad_request", "invalid JSON body: %s", err)
		}
	}
	ttl := 10 * time.Minute
	if tr.TTL != "" {
		d, err := time.ParseDuration(tr.TTL)
		if err != nil || d <= 0 {
			return nil, errf(http.StatusBadRequest, "bad_request", "invalid ttl %q: want a duration like 10m", tr.TTL)
		}
		ttl = d
	}
	for _, r := range tr.Roles {
		if _, ok := builtinRoles[r]; !ok {
			return nil, errf(http.StatusBadRequest, "bad_request", "unknown role %q (known: admin, operator, viewer, node)", r)
		}
		if !p.mayGrant(r) {
			return nil, errf(http.StatusForbidden, "forbidden", "%s may not grant role %q", p.Name, r)
		}
	}
	now := time.Now().UTC()
	var slot byte
	var ok bool
	a.fsm.Read(func(s *control.State) { slot, ok = s.PickSlot(now, mrand.IntN) }) // the slot is not secret
	if !ok {
		return nil, fmt.Errorf("%w: 10 are open; wait for one to be used or to expire", control.ErrNoTickets)
	}
	t, err := ca.NewTicket(now, ttl, tr.Roles, tr.RequireApproval, req.Principal, req.Via, nil)
	if err != nil {
		return nil, err
	}
	// The other five digits stay uniformly random; the first one only
	// selects the ticket (see pairing's package doc).
	t.PIN = string(slot) + t.PIN[1:]
	if _, err := a.apply(ctx, control.OpTicketCreate, t); err != nil {
		return nil, err
	}
	a.log.Info("pairing ticket created", "ticket", t.ID, "by", t.CreatedBy, "on", t.CreatedOn, "roles", t.Roles, "expires", t.ExpiresAt)
	return api.Ticket{PIN: t.PIN, ExpiresAt: t.ExpiresAt, Roles: t.Roles}, nil
}

func (a *Agent) nodeViews() []api.Node {
	var out []api.Node
	a.fsm.Read(func(s *control.State) {
		for _, n := range s.Nodes {
			out = append(out, api.Node{Name: n.Name, PeerID: n.PeerID, State: "unknown", Roles: n.Roles, Revoked: n.Revoked,
				CertExpiresAt: n.CertExpiresAt, JoinedAt: n.JoinedAt, RelayedBy: n.RelayedBy, Ticket: n.Ticket, CertPEM: n.CertPEM})
		}
		for _, p := range s.Pending {
			if p.Decision == "" || p.Decision == "approved" {
				out = append(out, api.Node{Name: p.Name, PeerID: p.PeerID, State: "pending", RelayedBy: p.RelayedBy, Ticket: p.Ticket})
			}
		}
	})
	members := map[string]mesh.Member{}
	for _, m := range a.gossip.Members() {
		members[m.PeerID.String()] = m
	}
	for i := range out {
		if m, ok := members[out[i].PeerID]; ok && out[i].State != "pending" {
			out[i].State, out[i].Addrs, out[i].Version = m.State, m.Meta.Addrs, m.Meta.Version
		}
		if out[i].Addrs == nil {
			out[i].Addrs = []string{}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (a *Agent) listNodes() api.NodeList {
	views := a.nodeViews()
	for i := range views {
		views[i].CertPEM = ""
	}
	return api.NodeList{Nodes: views}
}

func (a *Agent) showNode(name string) (api.Node, bool) {
	views := a.nodeViews()
	i := slices.IndexFunc(views, func(v api.Node) bool { return v.Name == name })
	if i < 0 {
		return api.Node{}, false
	}
	return views[i], true
}

// listTickets shows every ticket's record, newest first, without PINs.
func (a *Agent) listTickets() api.TicketList {
	out := api.TicketList{Tickets: []api.TicketRecord{}}
	now := time.Now()
	a.fsm.Read(func(s *control.State) {
		for _, full := range s.Tickets {
			t := full.Public() // never the PIN
			state := string(t.State)
			if errors.Is(t.Usable(now), ca.ErrTicketExpired) {
				state = "expired"
			}
			out.Tickets = append(out.Tickets, api.TicketRecord{
				ID: t.ID, State: state, Roles: t.Roles, RequireApproval: t.RequireApproval,
				CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, CreatedBy: t.CreatedBy, CreatedOn: t.CreatedOn,
				Failures: t.Failures, UsedAt: t.UsedAt, UsedBy: t.UsedBy, RelayedBy: t.RelayedBy,
			})
		}
	})
	sort.Slice(out.Tickets, func(i, j int) bool { return out.Tickets[i].CreatedAt.After(out.Tickets[j].CreatedAt) })
	return out
}
