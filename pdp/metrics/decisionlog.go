package metrics

import "github.com/prometheus/client_golang/prometheus"

// decisionLogCounters count decision-log events (decisionlog.Observer).
// They are registered whether or not a decision log is configured, so a
// dashboard's queries never miss their series.
type decisionLogCounters struct {
	shipped, dropped, failed prometheus.Counter
}

func newDecisionLogCounters(reg *prometheus.Registry) decisionLogCounters {
	c := decisionLogCounters{
		shipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_decision_logs_shipped_total",
			Help: "Decision-log events delivered to the sink (written to the console or file, or accepted by the HTTP endpoint).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_decision_logs_dropped_total",
			Help: "Decision-log events dropped because the buffer was full (see --decision-log-buffer-size); the decision itself was not slowed.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_decision_logs_failed_total",
			Help: "Decision-log events accepted but not delivered: the sink refused or could not write them, or shutdown came first.",
		}),
	}
	reg.MustRegister(c.shipped, c.dropped, c.failed)
	return c
}

// DecisionLogsShipped counts events delivered (decisionlog.Observer).
func (m *Metrics) DecisionLogsShipped(n int) { m.decisionLogs.shipped.Add(float64(n)) }

// DecisionLogsDropped counts events dropped on a full buffer
// (decisionlog.Observer); it runs on the decision's goroutine: one atomic
// add.
func (m *Metrics) DecisionLogsDropped(n int) { m.decisionLogs.dropped.Add(float64(n)) }

// DecisionLogsFailed counts events not delivered (decisionlog.Observer).
func (m *Metrics) DecisionLogsFailed(n int) { m.decisionLogs.failed.Add(float64(n)) }
