-- Shared rate limits across replicas: one GCRA row per key (principal, tool).
-- `tat` is the theoretical arrival time in epoch seconds of the database clock, so every replica
-- judges time alike. UNLOGGED: no WAL per call; after a crash the table is empty, which only means
-- every caller starts again with a full allowance.
CREATE UNLOGGED TABLE rate_limits (
    key     text PRIMARY KEY,
    tat     double precision NOT NULL,
    allowed boolean NOT NULL,
    seen_at double precision NOT NULL
);
CREATE INDEX rate_limits_tat ON rate_limits (tat);
