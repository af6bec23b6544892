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
