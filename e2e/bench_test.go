package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkJoin reports the time from starting `palyra agent --pin` until
// the new node is alive on every member of a 3-node mesh (the third node
// joining A and B), as the median and max of PALYRA_BENCH_RUNS runs.
func BenchmarkJoin(b *testing.B) {
	runs := 5
	if s := os.Getenv("PALYRA_BENCH_RUNS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			runs = n
		}
	}
	var times []time.Duration
	for i := 0; i < b.N; i++ {
		for r := range runs {
			times = append(times, joinOnce(b, r))
		}
	}
	slices.Sort(times)
	median := times[len(times)/2]
	b.ReportMetric(float64(median.Milliseconds()), "median-ms")
	b.ReportMetric(float64(times[len(times)-1].Milliseconds()), "max-ms")
	fmt.Printf("join → alive on all 3 members: median %v, max %v over %d runs\n", median.Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), len(times))
}

func joinOnce(b *testing.B, r int) time.Duration {
	b.Helper()
	a, bn, c := newNode(b, fmt.Sprintf("a%d", r)), newNode(b, fmt.Sprintf("b%d", r)), newNode(b, fmt.Sprintf("c%d", r))
	defer a.kill()
	defer bn.kill()
	defer c.kill()
	a.startOK("--init")
	waitFor(b, 20*time.Second, "coordinator", func() error {
		if s := a.status(); s.Coordinator == nil {
			return fmt.Errorf("no coordinator yet")
		}
		return nil
	})
	bn.startOK("--pin", a.pair().PIN, "--peer", a.addr())
	pin, peer := a.pair().PIN, bn.addr()

	start := time.Now()
	c.start("--pin", pin, "--peer", peer)
	waitFor(b, 30*time.Second, "new node alive everywhere", func() error {
		for _, n := range []*node{a, bn} {
			if st := memberState(n.quietStatus(), c.name); st != "alive" {
				return fmt.Errorf("%s sees %s %s", n.name, c.name, st)
			}
		}
		if st := memberState(c.quietStatus(), c.name); st != "alive" {
			return fmt.Errorf("%s not up yet", c.name)
		}
		return nil
	})
	return time.Since(start)
}

// BenchmarkFailover kills the coordinator of a 3-voter mesh with SIGKILL
// and reports (median and max over PALYRA_BENCH_TRIALS trials, default 10)
// the time until a write (a new PIN) is accepted through another member,
// and until every survivor sees the killed member dead. It runs once with
// palyra's LAN timings and once with memberlist's and raft's defaults, to
// show what the tuning buys.
func BenchmarkFailover(b *testing.B) {
	trials := 10
	if s := os.Getenv("PALYRA_BENCH_TRIALS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			trials = n
		}
	}
	for _, profile := range []string{"lan", "library"} {
		b.Run(profile, func(b *testing.B) {
			for range b.N {
				failover, detect := failoverTrials(b, profile, trials)
				report(b, "failover", failover)
				report(b, "detect", detect)
			}
		})
	}
}

func report(b *testing.B, what string, d []time.Duration) {
	slices.Sort(d)
	med, worst := d[len(d)/2], d[len(d)-1]
	b.ReportMetric(float64(med.Milliseconds()), what+"-median-ms")
	b.ReportMetric(float64(worst.Milliseconds()), what+"-max-ms")
	fmt.Printf("%s %s: median %v, max %v over %d trials\n", b.Name(), what, med.Round(time.Millisecond), worst.Round(time.Millisecond), len(d))
}

func failoverTrials(b *testing.B, profile string, trials int) (failover, detect []time.Duration) {
	nodes := []*node{newNode(b, "a-"+profile), newNode(b, "b-"+profile), newNode(b, "c-"+profile)}
	defer func() {
		for _, n := range nodes {
			n.kill()
		}
	}()
	formMesh(b, nodes, "--timings", profile)
	waitVoters(b, nodes[0], 3)
	for range trials {
		coord := byName(nodes, waitCoordinator(b, nodes))
		survivors := without(nodes, coord)
		start := time.Now()
		coord.kill()
		var tFail, tDetect time.Duration
		waitFor(b, 60*time.Second, "write accepted and death seen", func() error {
			if tFail == 0 && survivors[0].quietPair() {
				tFail = time.Since(start)
			}
			if tDetect == 0 {
				dead := 0
				for _, n := range survivors {
					if st := memberState(n.quietStatus(), coord.name); st == "dead" {
						dead++
					}
				}
				if dead == len(survivors) {
					tDetect = time.Since(start)
				}
			}
			if tFail == 0 || tDetect == 0 {
				return fmt.Errorf("failover %v, detect %v", tFail, tDetect)
			}
			return nil
		})
		failover, detect = append(failover, tFail), append(detect, tDetect)
		coord.start("--timings", profile)
		coord.waitHealthy()
		waitAllAlive(b, nodes)
		waitVoters(b, survivors[0], 3)
	}
	return failover, detect
}
