package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// probeEnv, when set, turns the test binary into a TCP probe run inside a
// lab namespace (no ping or nc needed): "listen:ADDR" accepts connections
// until its stdin closes; "dial:ADDR" exits 0 if it connects within
// half a second. init runs before TestMain, so a probe never builds palyra.
const probeEnv = "PALYRA_NETLAB_PROBE"

const probePort = "9999"

func init() {
	mode, addr, ok := strings.Cut(os.Getenv(probeEnv), ":")
	if !ok {
		return
	}
	switch mode {
	case "listen":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin) // the test closes stdin, or dies
		os.Exit(0)
	case "dial":
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		c.Close()
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: unknown mode %q\n", probeEnv, mode)
	os.Exit(2)
}

// probeEnviron is the environment of a probe process. Under -race a binary
// sleeps a second at exit unless told otherwise.
func probeEnviron(mode string) []string {
	return append(os.Environ(), probeEnv+"="+mode,
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// startProbe runs a probe listener on host i's lab address until the test
// ends.
func startProbe(t *testing.T, lab *netLab, i int) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := lab.Command(i, self)
	cmd.Env = probeEnviron("listen:" + net.JoinHostPort(lab.IP(i), probePort))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		_ = cmd.Wait()
		t.Fatalf("probe listener on h%d: %q %s", i, line, errb.String())
	}
}

// dialProbe reports whether host from can open a TCP connection to port on
// host to.
func dialProbe(lab *netLab, from, to int, port string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := lab.Command(from, self)
	cmd.Env = probeEnviron("dial:" + net.JoinHostPort(lab.IP(to), port))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("h%d → h%d:%s: %w: %s", from, to, port, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// TestNetLab checks the lab itself: hosts reach each other, a partition
// cuts exactly the links between groups and isolates unlisted hosts, Heal
// restores everything, and a real agent runs inside a host.
func TestNetLab(t *testing.T) {
	lab := newNetLab(t, 5)
	for i := range 5 {
		startProbe(t, lab, i)
	}
	reach := func(from, to int) {
		t.Helper()
		waitFor(t, 10*time.Second, fmt.Sprintf("h%d reaches h%d", from, to), func() error {
			return dialProbe(lab, from, to, probePort)
		})
	}
	cut := func(from, to int) {
		t.Helper()
		if err := dialProbe(lab, from, to, probePort); err == nil {
			t.Fatalf("h%d reaches h%d across the partition", from, to)
		}
	}

	reach(0, 4)

	lab.Partition([]int{0, 1, 2}, []int{3, 4})
	cut(0, 3)
	cut(4, 1)
	reach(0, 2)
	reach(3, 4)

	// Hosts in no group are alone, even with a former neighbour.
	lab.Partition([]int{0, 1})
	reach(0, 1)
	cut(3, 4)

	lab.Heal()
	reach(0, 3)
	reach(3, 4)

	// Real agents: alpha in h0 answers the CLI run in h0 and listens on the
	// lab address; bravo in h1 joins it over the lab network; a join from
	// h2 with a wrong PIN fails as on loopback.
	a := newNetNode(t, lab, 0, "alpha")
	a.startOK("--init")
	if s := a.status(); s.Self.Name != "alpha" {
		t.Fatalf("status in %s: %+v", lab.NS(0), s)
	}
	if addr := a.addr(); !strings.HasPrefix(addr, "/ip4/"+lab.IP(0)+"/tcp/7420/p2p/") {
		t.Fatalf("addr %s", addr)
	}
	waitFor(t, 20*time.Second, "alpha coordinator", func() error {
		if s := a.status(); s.Coordinator == nil {
			return fmt.Errorf("no coordinator")
		}
		return nil
	})
	b := newNetNode(t, lab, 1, "bravo")
	b.startOK("--pin", a.pair().PIN, "--peer", a.addr())
	waitFor(t, 20*time.Second, "alpha and bravo alive on bravo", func() error {
		s := b.status()
		for _, name := range []string{"alpha", "bravo"} {
			if st := memberState(s, name); st != "alive" {
				return fmt.Errorf("%s is %s", name, st)
			}
		}
		return nil
	})
	c := newNetNode(t, lab, 2, "charlie")
	if msg, code := runJoin(t, c, wrongPIN(a.pair().PIN), a.addr()); code == 0 || !strings.Contains(msg, "wrong PIN") {
		t.Fatalf("join from h2 with a wrong PIN: exit %d, %q", code, msg)
	}
}
