package agent

import (
	"net/http"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/palyra-mesh/palyra/control"
)

// metricsHandler serves /metrics: gauges read from the agent's state at
// scrape time (no counters to keep in sync), in a registry of its own so
// nothing global leaks between agents in one process.
func (a *Agent) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{a})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

var (
	descMembers     = prometheus.NewDesc("palyra_members", "Members this node knows, by gossip state.", []string{"state"}, nil)
	descCoordinator = prometheus.NewDesc("palyra_coordinator", "1 if this node is the coordinator (raft leader).", nil, nil)
	descVoter       = prometheus.NewDesc("palyra_voter", "1 if this node runs raft as a voter.", nil, nil)
	descQuorum      = prometheus.NewDesc("palyra_quorum", "1 if a coordinator with quorum is reachable.", nil, nil)
	descTerm        = prometheus.NewDesc("palyra_raft_term", "Current raft term (voters).", nil, nil)
	descRevocations = prometheus.NewDesc("palyra_revocation_list_version", "Version of the adopted revocation list.", nil, nil)
	descCertExpiry  = prometheus.NewDesc("palyra_certificate_expiry_seconds", "Unix time this node's certificate expires.", nil, nil)
	descTickets     = prometheus.NewDesc("palyra_pairing_tickets", "Pairing tickets in the replicated state, by state (voters).", []string{"state"}, nil)
)

type collector struct{ a *Agent }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMembers, descCoordinator, descVoter, descQuorum, descTerm, descRevocations, descCertExpiry, descTickets} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	states := map[string]float64{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range a.gossip.Members() {
		states[m.State]++
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, n, s)
	}
	_, quorum := a.coordinator()
	ch <- prometheus.MustNewConstMetric(descQuorum, prometheus.GaugeValue, b2f(quorum))
	r := a.raft()
	ch <- prometheus.MustNewConstMetric(descVoter, prometheus.GaugeValue, b2f(r != nil && isVoter(r, a.host.ID())))
	ch <- prometheus.MustNewConstMetric(descCoordinator, prometheus.GaugeValue, b2f(r != nil && r.State() == raft.Leader))
	if r != nil {
		ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(raftTerm(r)))
		tickets := map[string]float64{}
		a.fsm.Read(func(s *control.State) {
			for _, t := range s.Tickets {
				tickets[string(t.State)]++
			}
		})
		for s, n := range tickets {
			ch <- prometheus.MustNewConstMetric(descTickets, prometheus.GaugeValue, n, s)
		}
	}
	ch <- prometheus.MustNewConstMetric(descRevocations, prometheus.GaugeValue, float64(a.revs.current().Version))
	ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(a.cert().NotAfter.Unix()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
