package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// netLab is a set of network namespaces ("hosts") joined by bridges in one
// more namespace (the "switch"), so that e2e tests can run agents on
// separate machines and cut the links between them.
//
// Layout, for a lab named plab-<pid>-<seq>:
//
//	plab-<pid>-<seq>-h<i>   host i: lo up, eth0 = 10.200.<y>.<i+1>/24
//	plab-<pid>-<seq>-sw     the switch: bridges br0…brN; vh<i> is the
//	                        other end of host i's eth0
//
// Every veth is created directly inside the lab's namespaces, so nothing is
// ever added to the root namespace: deleting the namespaces removes the
// whole lab. The /24 is random per lab only to make captures readable; labs
// cannot see each other anyway. A netLab is not safe for concurrent use.
type netLab struct {
	t       testing.TB
	name    string // plab-<pid>-<seq>
	subnet  string // first three octets of the lab's /24
	hosts   int
	bridges int // br0…br<bridges-1> exist in the switch
}

// netLabPrefix starts the name of every namespace a lab creates; the pid
// after it lets a later run remove what a killed run left behind.
const netLabPrefix = "plab-"

var (
	netLabOnce sync.Once
	netLabErr  error        // why labs cannot run here, decided once
	netLabSeq  atomic.Int64 // lab number within this process; 0 is the probe
)

// requireNetLab skips the test when this machine cannot build a lab (not
// root, no iproute2, no namespace support), or fails it on CI, which must
// run every test.
func requireNetLab(t testing.TB) {
	t.Helper()
	netLabOnce.Do(func() { netLabErr = probeNetLab(t) })
	if netLabErr == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("network lab required on CI: %v", netLabErr)
	}
	t.Skipf("network lab unavailable: %v", netLabErr)
}

// probeNetLab removes labs left by killed runs, then builds and deletes a
// namespace with a bridge and a veth pair, which is all a lab needs.
func probeNetLab(t testing.TB) error {
	if id := os.Geteuid(); id != 0 {
		return fmt.Errorf("needs root (euid %d)", id)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("needs iproute2: %w", err)
	}
	sweepNetLabs(t)
	ns := fmt.Sprintf("%s%d-0-probe", netLabPrefix, os.Getpid())
	if err := ipBatch("", false, "netns add "+ns); err != nil {
		return err
	}
	defer func() { _ = ipBatch("", true, "netns del "+ns) }() // a leftover is swept by the next run
	if err := ipBatch(ns, false,
		"link add br0 type bridge",
		"link add v0 type veth peer name v1",
	); err != nil {
		return err
	}
	if out, err := exec.Command("ip", "netns", "exec", ns, "true").CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns exec: %w: %s", err, out)
	}
	return nil
}

// sweepNetLabs deletes the namespaces of labs whose process is gone (a test
// binary killed by a timeout or ^C runs no cleanup). Namespaces carrying our
// own pid are stale too: this runs before we create any.
func sweepNetLabs(t testing.TB) {
	names, err := netnsList()
	if err != nil {
		return
	}
	var stale []string
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, netLabPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if pid == os.Getpid() || errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			stale = append(stale, "netns del "+name)
		}
	}
	if len(stale) > 0 {
		t.Logf("removing %d namespaces left by killed test runs", len(stale))
		_ = ipBatch("", true, stale...)
	}
}

// newNetLab builds a lab of hosts namespaces on one bridge. Everything is
// deleted in t.Cleanup, also when building fails halfway; run it before
// starting processes in the lab so that their cleanup (kill) runs first.
func newNetLab(t testing.TB, hosts int) *netLab {
	t.Helper()
	requireNetLab(t)
	if hosts < 1 || hosts > 253 {
		t.Fatalf("newNetLab: %d hosts, want 1–253", hosts)
	}
	l := &netLab{
		t:      t,
		name:   fmt.Sprintf("%s%d-%d", netLabPrefix, os.Getpid(), netLabSeq.Add(1)),
		subnet: fmt.Sprintf("10.200.%d", rand.IntN(256)),
		hosts:  hosts,
	}
	t.Cleanup(l.destroy)

	add := []string{"netns add " + l.switchNS()}
	sw := l.bridgeAdd(0)
	for i := range hosts {
		add = append(add, "netns add "+l.NS(i))
		sw = append(sw,
			fmt.Sprintf("link add vh%d type veth peer name eth0 netns %s", i, l.NS(i)),
			fmt.Sprintf("link set dev vh%d master br0 up", i))
	}
	l.ip("", add...)
	l.ip(l.switchNS(), sw...)
	l.bridges = 1
	for i := range hosts {
		l.ip(l.NS(i),
			"link set dev lo up",
			fmt.Sprintf("addr add %s/24 dev eth0", l.IP(i)),
			"link set dev eth0 up")
	}
	return l
}

// IP is host i's address on the lab network.
func (l *netLab) IP(i int) string {
	l.check(i)
	return fmt.Sprintf("%s.%d", l.subnet, i+1)
}

// NS is the name of host i's network namespace.
func (l *netLab) NS(i int) string {
	l.check(i)
	return fmt.Sprintf("%s-h%d", l.name, i)
}

// Command prepares name with args to run inside host i's namespace. `ip
// netns exec` replaces itself with the program, so the started process is
// the program itself (signals, PID and exit status are its own). The caller
// must stop what it starts.
func (l *netLab) Command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.NS(i), name}, args...)...)
}

// Partition cuts the lab so that hosts talk only within their group: group
// k's switch ports move to bridge br<k>, and hosts in no group are detached
// from every bridge. Packets across the cut are dropped, not refused, as
// when a cable is pulled. A new Partition replaces the previous one.
func (l *netLab) Partition(groups ...[]int) {
	l.t.Helper()
	group := make([]int, l.hosts) // bridge number + 1; 0 = isolated
	for k, g := range groups {
		for _, i := range g {
			if i < 0 || i >= l.hosts {
				l.t.Fatalf("Partition: no host %d in a lab of %d", i, l.hosts)
			}
			if group[i] != 0 {
				l.t.Fatalf("Partition: host %d is in groups %d and %d", i, group[i]-1, k)
			}
			group[i] = k + 1
		}
	}
	want := max(len(groups), 1) // br0 always stays
	var cmds []string
	for k := l.bridges; k < want; k++ {
		cmds = append(cmds, l.bridgeAdd(k)...)
	}
	for i, g := range group {
		if g == 0 {
			cmds = append(cmds, fmt.Sprintf("link set dev vh%d nomaster", i))
		} else {
			cmds = append(cmds, fmt.Sprintf("link set dev vh%d master br%d", i, g-1))
		}
	}
	for k := want; k < l.bridges; k++ {
		cmds = append(cmds, fmt.Sprintf("link del dev br%d", k))
	}
	l.ip(l.switchNS(), cmds...)
	l.bridges = want
}

// Heal puts every host back on one bridge.
func (l *netLab) Heal() {
	l.t.Helper()
	all := make([]int, l.hosts)
	for i := range all {
		all[i] = i
	}
	l.Partition(all)
}

func (l *netLab) switchNS() string { return l.name + "-sw" }

func (l *netLab) check(i int) {
	if i < 0 || i >= l.hosts {
		panic(fmt.Sprintf("netLab: no host %d in a lab of %d", i, l.hosts))
	}
}

// bridgeAdd creates bridge br<k>. Without STP a port forwards as soon as it
// joins; snooping off lets mDNS through without an IGMP querier.
func (l *netLab) bridgeAdd(k int) []string {
	return []string{
		fmt.Sprintf("link add br%d type bridge stp_state 0 forward_delay 0 mcast_snooping 0", k),
		fmt.Sprintf("link set dev br%d up", k),
	}
}

func (l *netLab) ip(ns string, cmds ...string) {
	l.t.Helper()
	if err := ipBatch(ns, false, cmds...); err != nil {
		l.t.Fatal(err)
	}
}

// destroy deletes every namespace of the lab, found by name so that a
// half-built lab goes too. The veths and bridges live only in those
// namespaces and go with them.
func (l *netLab) destroy() {
	names, err := netnsList()
	if err != nil {
		l.t.Errorf("net lab cleanup: %v", err)
		return
	}
	var del []string
	for _, name := range names {
		if strings.HasPrefix(name, l.name+"-") {
			del = append(del, "netns del "+name)
		}
	}
	if len(del) == 0 {
		return
	}
	if err := ipBatch("", true, del...); err != nil {
		l.t.Errorf("net lab cleanup: %v", err)
	}
}

// netnsList returns the names `ip netns list` shows.
func netnsList() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0]) // "name (id: 3)"
		}
	}
	return names, nil
}

// ipBatch runs cmds through one `ip -batch` process, in namespace ns when it
// is not empty. With force it goes on after a failing command.
func ipBatch(ns string, force bool, cmds ...string) error {
	var args []string
	if ns != "" {
		args = append(args, "-n", ns)
	}
	if force {
		args = append(args, "-force")
	}
	args = append(args, "-batch", "-")
	cmd := exec.Command("ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s\ncommands:\n%s", strings.Join(args, " "), err,
			strings.TrimSpace(string(out)), strings.Join(cmds, "\n"))
	}
	return nil
}

// newNetNode prepares a node that runs inside host i of lab: libp2p on the
// lab address, port 7420; the HTTP API on the namespace's own loopback,
// reached by running the CLI in the namespace too. Like every node it starts
// with --no-mdns; pass --no-mdns=false to start for multicast discovery
// across the lab.
func newNetNode(t testing.TB, lab *netLab, i int, name string) *node {
	t.Helper()
	n := newNode(t, name)
	n.ns = lab.NS(i)
	n.http = "127.0.0.1:7421"
	n.listen = fmt.Sprintf("/ip4/%s/tcp/7420", lab.IP(i))
	return n
}
