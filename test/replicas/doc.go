// Package replicas tests Gatehouse as it runs behind a load balancer:
// several `gatehouse serve` processes, built once by TestMain, on one
// PostgreSQL database that each test creates and drops (see pgtest: the
// tests skip without a server, except in CI where they fail).
//
// A test starts a Cluster and speaks HTTP to its replicas. What one
// replica writes must govern every other within docs/api.md §A4's 1 s, and
// nothing a replica acknowledged may be lost when it dies. Tests of state
// that is one per database (audit chain, approvals) belong here too, built
// on the same Cluster.
package replicas
