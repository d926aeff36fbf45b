# 1. Tenant-wide policy
curl -X POST https://novyx-ram-api.fly.dev/v1/control/policies \
-H "Authorization: Bearer nram_your_key" \
-H "Content-Type: application/json" \
-d '{
"name": "pii_protection",
"description": "Warn on PII patterns",
"rules": [{
"match": "(email|phone)",
"context_requires": "(external|public)",
"severity": "medium",
"on_violation": "warn"
}]
}'
# 2. Agent-scoped override
curl -X POST https://novyx-ram-api.fly.dev/v1/control/policies \
-H "Authorization: Bearer nram_your_key" \
-H "Content-Type: application/json" \
-d '{
"name": "pii_protection",
"description": "Block PII outright for billing-bot",
"agent_id": "billing-bot",
"rules": [{
"match": "(email|phone|ssn|passport|routing)",
"severity": "critical",
"on_violation": "block",
"reason": "PII blocked for billing-bot: {match}"
}]
}'
# 3. Verify
curl "https://novyx-ram-api.fly.dev/v1/control/policies/pii_protection?agent_id=billing-bot" \
-H "Authorization: Bearer nram_your_key"
