// Package pdp holds Gatehouse's domain model: policies and their rules, the
// actions agents submit, the decisions the engine returns, tenants, and the
// error catalogue every layer classifies failures with. It depends on the
// standard library only, so every other package can import it.
package pdp
