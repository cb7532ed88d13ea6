package metrics

import "github.com/prometheus/client_golang/prometheus"

// Gatherer exposes the private registry to the tests (prometheus/testutil).
func Gatherer(m *Metrics) prometheus.Gatherer { return m.reg }
