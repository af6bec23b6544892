// Package client is the Go client of an agent's HTTP control-plane API; the
// CLI uses nothing else to talk to a running agent.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/palyra-mesh/palyra/api"
)

// Client talks to one agent.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client of the agent at addr (host:port or a URL) using the
// bearer token.
func New(addr, token string) *Client {
	base := addr
	if u, err := url.Parse(addr); err != nil || u.Scheme == "" || u.Host == "" {
		base = "http://" + addr
	}
	return &Client{base: base, token: token, http: &http.Client{Timeout: 30 * time.Second}}
}

// ErrUnreachable wraps failures to reach the agent at all.
var ErrUnreachable = errors.New("agent unreachable")

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, c.base, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if res.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
			eb.Error.Status = res.StatusCode
			return eb.Error
		}
		return &api.Error{Status: res.StatusCode, Code: "http", Message: fmt.Sprintf("%s %s: %s", method, path, res.Status)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// Status returns the mesh as this agent sees it.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var s api.Status
	return &s, c.do(ctx, http.MethodGet, "/api/v1/status", nil, &s)
}

// CreateTicket creates a pairing ticket (a PIN).
func (c *Client) CreateTicket(ctx context.Context, r api.TicketRequest) (*api.Ticket, error) {
	var t api.Ticket
	return &t, c.do(ctx, http.MethodPost, "/api/v1/pairing/tickets", r, &t)
}

// Nodes lists the registry.
func (c *Client) Nodes(ctx context.Context) (*api.NodeList, error) {
	var l api.NodeList
	err := c.do(ctx, http.MethodGet, "/api/v1/nodes", nil, &l)
	return &l, err
}

// Node shows one node, with its certificate.
func (c *Client) Node(ctx context.Context, name string) (*api.Node, error) {
	var n api.Node
	err := c.do(ctx, http.MethodGet, "/api/v1/nodes/"+url.PathEscape(name), nil, &n)
	return &n, err
}

// Decide approves or rejects a pending join.
func (c *Client) Decide(ctx context.Context, name string, approve bool) (*api.Decision, error) {
	verb := "reject"
	if approve {
		verb = "approve"
	}
	var d api.Decision
	return &d, c.do(ctx, http.MethodPost, "/api/v1/nodes/"+url.PathEscape(name)+"/"+verb, nil, &d)
}

// Tickets lists pairing tickets (never their PINs).
func (c *Client) Tickets(ctx context.Context) (*api.TicketList, error) {
	var l api.TicketList
	err := c.do(ctx, http.MethodGet, "/api/v1/pairing/tickets", nil, &l)
	return &l, err
}

// Revoke revokes a node's identity for good.
func (c *Client) Revoke(ctx context.Context, name string) (*api.Decision, error) {
	var d api.Decision
	return &d, c.do(ctx, http.MethodPost, "/api/v1/nodes/"+url.PathEscape(name)+"/revoke", nil, &d)
}
