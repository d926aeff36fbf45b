// Package decisionlog ships every decision Gatehouse makes as an event in
// OPA's decision-log format, so the tools that read OPA's decision logs
// read Gatehouse's: to the console (JSON lines), to a size-rotated file,
// or batched and gzipped to an HTTP endpoint as OPA's decision-log plugin
// uploads them.
//
// The decision's hot path only hands a Decision to Logger.Log, which does
// a non-blocking send on a bounded channel: a full buffer drops the event
// (counted, and logged at most once per DropLogInterval), never waits.
// One worker goroutine does everything else — builds the event, erases the
// masked JSON pointers, encodes it, and ships it — so a slow disk or a
// collector that is down slows no decision.
//
// # Event
//
// One JSON object per decision, with OPA's field names (EventV1 of
// open-policy-agent/opa v1/plugins/logs):
//
//   - decision_id: the action_id for POST /v1/actions, a random UUID for a
//     Data API query (the Data API response returns it, as OPA's does);
//   - path: "gatehouse/decision/result", the one query Gatehouse answers;
//   - input: the input document as a stock OPA would see it,
//     {"tenant_id","agent_id","action","params","step_type"};
//   - result: the policy_result document;
//   - labels: {"id": instance id, "version": pdp.Version, "type":
//     "gatehouse"}, the same on every event of a process, as OPA's labels
//     identify the instance;
//   - custom: {"tenant_id": ...}: the tenant is per decision, so it is not
//     a label (OPA's labels are per instance, and consumers group by
//     them); it is also input.tenant_id, but custom.tenant_id survives a
//     mask on /input;
//   - trace_id, span_id: of the request's span (trace_id is the action's
//     trace_id, the one its response and record carry, when no span is
//     recording);
//   - rule_labels: one object per rule that fired, {"policy", "scope",
//     "rule", "severity", "on_violation"}, derived from the result's
//     violations. OPA takes rule_labels from `# METADATA labels:`
//     annotations; the embedded engine compiles modules without
//     annotations (they cost compile time and nothing reads them), so the
//     violations, which name exactly the rules that fired, are the source;
//   - requested_by: the client's address (host:port), as OPA logs it;
//   - timestamp: when the decision was made, RFC 3339 with nanoseconds, UTC;
//   - erased: the mask pointers that removed something, as OPA lists them.
package decisionlog
