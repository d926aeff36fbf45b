package metrics

import (
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp/decisionlog"
)

var _ decisionlog.Observer = (*Metrics)(nil)

func TestDecisionLogCounters(t *testing.T) {
	m := New(Config{})
	want(t, scrape(t, m), map[string]float64{ // present before the first event
		"gatehouse_decision_logs_shipped_total": 0,
		"gatehouse_decision_logs_dropped_total": 0,
		"gatehouse_decision_logs_failed_total":  0,
	})
	m.DecisionLogsShipped(100)
	m.DecisionLogsShipped(5)
	m.DecisionLogsDropped(1)
	m.DecisionLogsFailed(3)
	want(t, scrape(t, m), map[string]float64{
		"gatehouse_decision_logs_shipped_total": 105,
		"gatehouse_decision_logs_dropped_total": 1,
		"gatehouse_decision_logs_failed_total":  3,
	})
}
