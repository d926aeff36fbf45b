-- 0003: a tenant's own request rate limit (docs/api.md §A1), overriding the
-- default of its tier. Both NULL: the tier's default; requests per second
-- 0: unlimited. The store's RateLimit.Validate checks the rest.

ALTER TABLE tenants ADD COLUMN rate_limit_rps REAL
    CHECK (rate_limit_rps IS NULL OR rate_limit_rps >= 0);
ALTER TABLE tenants ADD COLUMN rate_limit_burst INTEGER
    CHECK ((rate_limit_burst IS NULL) = (rate_limit_rps IS NULL) AND (rate_limit_burst IS NULL OR rate_limit_burst >= 0));
