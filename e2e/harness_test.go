package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the palyra binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "palyra-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "palyra")
	args := []string{"build", "-o", binary}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "..")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build palyra:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one agent process and its data dir.
type node struct {
	t      testing.TB
	name   string
	dir    string
	http   string
	listen string
	ns     string // network namespace to run in (see newNetNode); "" = this one
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePort returns a loopback port for an agent to listen on later. It
// picks below the kernel's ephemeral range (32768 and up on Linux), so an
// outgoing connection cannot take it meanwhile, never hands out a port twice
// in one run, and checks the port is free for both TCP and UDP (QUIC) now.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if portsUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		u.Close()
		portsUsed[p] = true
		return p
	}
	t.Fatal("no free port")
	return 0
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// newNode prepares a node with its own data dir and loopback ports.
func newNode(t testing.TB, name string) *node {
	t.Helper()
	n := &node{
		t:      t,
		name:   name,
		dir:    filepath.Join(t.TempDir(), name),
		http:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		listen: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t)),
		log:    &syncBuffer{},
	}
	t.Cleanup(func() {
		n.kill()
		if strings.Contains(n.log.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector found a data race in the agent", n.name)
		}
		if t.Failed() {
			t.Logf("---- log of %s ----\n%s", n.name, n.log.String())
		}
	})
	return n
}

// start runs `palyra agent` with the node's settings and extra flags.
func (n *node) start(extra ...string) {
	n.t.Helper()
	args := append([]string{"agent", "--data-dir", n.dir, "--name", n.name, "--http", n.http,
		"--listen", n.listen, "--no-mdns", "--log-level", "debug"}, extra...)
	n.cmd = n.command(context.Background(), args...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	n.exited = make(chan struct{})
	if err := n.cmd.Start(); err != nil {
		n.t.Fatalf("start %s: %v", n.name, err)
	}
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
}

// startOK starts the node and waits until its API answers.
func (n *node) startOK(extra ...string) {
	n.t.Helper()
	n.start(extra...)
	n.waitHealthy()
}

func (n *node) waitHealthy() {
	n.t.Helper()
	waitFor(n.t, 30*time.Second, n.name+" healthy", func() error {
		select {
		case <-n.exited:
			return fmt.Errorf("exited: %v", n.err)
		default:
		}
		if n.ns != "" { // the API is on the namespace's loopback
			if _, errOut, code := n.cli("status", "--json"); code != 0 {
				return fmt.Errorf("status: exit %d: %s", code, lastLine(errOut))
			}
			return nil
		}
		res, err := http.Get("http://" + n.http + "/healthz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop() {
	n.t.Helper()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(15 * time.Second):
		n.t.Fatalf("%s did not exit after SIGTERM", n.name)
	}
	n.cmd = nil
}

// kill sends SIGKILL.
func (n *node) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

// cli runs a client command against this node and returns stdout, stderr
// and the exit status.
func (n *node) cli(args ...string) (string, string, int) {
	n.t.Helper()
	args = append(args, "--data-dir", n.dir, "--http", n.http)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := n.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// cliJSON runs a command with --json and decodes its output into v.
func (n *node) cliJSON(v any, args ...string) {
	n.t.Helper()
	out, errOut, code := n.cli(append(args, "--json")...)
	if code != 0 {
		n.t.Fatalf("palyra %v on %s: exit %d: %s", args, n.name, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		n.t.Fatalf("palyra %v: bad JSON %q: %v", args, out, err)
	}
}

type status struct {
	MeshID string `json:"mesh_id"`
	Self   struct {
		Name   string `json:"name"`
		PeerID string `json:"peer_id"`
	} `json:"self"`
	Coordinator *struct {
		Name   string `json:"name"`
		PeerID string `json:"peer_id"`
	} `json:"coordinator"`
	Quorum   bool     `json:"quorum"`
	Warnings []string `json:"warnings"`
	Members  []struct {
		Name        string   `json:"name"`
		PeerID      string   `json:"peer_id"`
		State       string   `json:"state"`
		Coordinator bool     `json:"coordinator"`
		Voter       bool     `json:"voter"`
		Revoked     bool     `json:"revoked"`
		Addrs       []string `json:"addrs"`
		Version     string   `json:"version"`
	} `json:"members"`
}

func (n *node) status() status {
	n.t.Helper()
	var s status
	n.cliJSON(&s, "status")
	return s
}

// addr is the node's libp2p address with /p2p/ as --peer wants it.
func (n *node) addr() string {
	n.t.Helper()
	return n.listen + "/p2p/" + n.status().Self.PeerID
}

type ticket struct {
	PIN       string    `json:"pin"`
	ExpiresAt time.Time `json:"expires_at"`
	JoinCode  string    `json:"join_code"`
}

func (n *node) pair(args ...string) ticket {
	n.t.Helper()
	var tk ticket
	n.cliJSON(&tk, append([]string{"pair"}, args...)...)
	return tk
}

// memberState returns the state name reports for the member called name.
func memberState(s status, name string) string {
	for _, m := range s.Members {
		if m.Name == name {
			return m.State
		}
	}
	return "absent"
}

// waitFor polls f until it returns nil or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		<-time.After(20 * time.Millisecond) // poll interval, not a wait for the condition
	}
	t.Fatalf("waiting for %s: %v", what, err)
}

// runJoin runs `palyra agent --pin` expecting it to fail, returning stderr.
func runJoin(t testing.TB, n *node, pin, peer string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := n.command(ctx, "agent", "--data-dir", n.dir, "--name", n.name, "--http", n.http,
		"--listen", n.listen, "--no-mdns", "--pin", pin, "--peer", peer)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return lastLine(errb.String()), code
}

// command runs the palyra binary, inside the node's network namespace if it
// has one (ip netns exec replaces itself with palyra: same PID and signals).
func (n *node) command(ctx context.Context, args ...string) *exec.Cmd {
	if n.ns != "" {
		return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns, binary}, args...)...)
	}
	return exec.CommandContext(ctx, binary, args...)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// quietStatus reads status straight from the HTTP API, as a monitoring
// client would (cheaper than a CLI process per poll, for benchmarks). A node
// not answering yet gives an empty status instead of failing.
func (n *node) quietStatus() status {
	var s status
	if n.ns != "" { // the API is on the namespace's loopback
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, _ := n.command(ctx, "status", "--json", "--data-dir", n.dir, "--http", n.http).Output()
		_ = json.Unmarshal(out, &s)
		return s
	}
	tok, err := os.ReadFile(filepath.Join(n.dir, "admin.token"))
	if err != nil {
		return s
	}
	req, _ := http.NewRequest("GET", "http://"+n.http+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+string(tok))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return s
	}
	defer res.Body.Close()
	_ = json.NewDecoder(res.Body).Decode(&s)
	return s
}

// quietPair creates a short-lived PIN straight through the HTTP API and
// reports whether the write was accepted (for benchmarks).
func (n *node) quietPair() bool {
	tok, err := os.ReadFile(filepath.Join(n.dir, "admin.token"))
	if err != nil {
		return false
	}
	req, _ := http.NewRequest("POST", "http://"+n.http+"/api/v1/pairing/tickets", strings.NewReader(`{"ttl":"30s"}`))
	req.Header.Set("Authorization", "Bearer "+string(tok))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}
