-- 0002: a tenant's own request rate limit (docs/api.md §A1), overriding the
-- default of its tier. Both NULL: the tier's default; requests per second
-- 0: unlimited. The store's RateLimit.Validate checks the rest.

ALTER TABLE tenants
    ADD COLUMN rate_limit_rps   double precision CHECK (rate_limit_rps >= 0),
    ADD COLUMN rate_limit_burst integer          CHECK (rate_limit_burst >= 0),
    ADD CONSTRAINT tenants_rate_limit_both CHECK ((rate_limit_rps IS NULL) = (rate_limit_burst IS NULL));
