-- Audit hardening: keyed seals over the chain, an append-only API for the app role, no key in the database.
--
-- Runs as mcp_suite_owner (the migration runner creates the roles and switches to the owner). Servers
-- connect as mcp_suite_app, which may read every audit row and append through audit_append() only:
-- it cannot update, delete or truncate, disable the trigger, move the head or alter any table.
--
-- What the chain proves: hash = sha256(prev_hash || seq || '\n' || body) links every record to the one
-- before it. A database superuser or the owner role CAN still rewrite rows and recompute those hashes;
-- what they cannot do without the suite's key (held outside the database, see shared/keys.py) is
-- produce the seals: a seal is HMAC-SHA-256(key, seq || '\n' || hash) of a chain head, written by the
-- servers right after they commit, so it vouches for every record up to that seq. `mcp-suite audit
-- verify` (with the key) reports any record whose chain no longer matches a seal, and a tail of records
-- left unsealed. Truncating back to an earlier seal is caught only against a checkpoint kept outside
-- the database (`mcp-suite audit checkpoint`). See docs/audit.md.

CREATE TABLE audit_seal (
    seq bigint PRIMARY KEY,
    mac bytea  NOT NULL
);

DROP FUNCTION audit_append(text[]);

-- Appends a batch and, optionally, the seal of a head this writer saw earlier. Returns the new head.
CREATE FUNCTION audit_append(bodies text[], seal_seq bigint DEFAULT NULL, seal_mac bytea DEFAULT NULL,
                             OUT head_seq bigint, OUT head_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    prev      bytea;
    body      text;
    rec       jsonb;
BEGIN
    IF seal_seq IS NOT NULL THEN
        INSERT INTO audit_seal (seq, mac) VALUES (seal_seq, seal_mac) ON CONFLICT (seq) DO NOTHING;
    END IF;
    SELECT h.seq, h.hash INTO head_seq, head_hash FROM audit_head h WHERE h.id FOR UPDATE;
    IF head_seq IS NULL THEN
        RAISE EXCEPTION 'audit_head row is missing';
    END IF;
    FOREACH body IN ARRAY bodies LOOP
        head_seq := head_seq + 1;
        prev := head_hash;
        head_hash := sha256(prev || convert_to(head_seq::text || E'\n' || body, 'UTF8'));
        rec := body::jsonb;
        INSERT INTO audit_log (seq, ts, server, tool, principal, transport, request_id, phase, outcome,
                               error_class, latency_ms, result_bytes, body, prev_hash, hash)
        VALUES (head_seq, (rec->>'ts')::timestamptz, rec->>'server', rec->>'tool', rec->>'principal',
                rec->>'transport', rec->>'request_id', rec->>'phase', rec->>'outcome',
                rec->>'error_class', (rec->>'latency_ms')::double precision,
                (rec->>'result_bytes')::integer, body, prev, head_hash);
    END LOOP;
    UPDATE audit_head SET seq = head_seq, hash = head_hash WHERE id;
END;
$$;

-- A seal on its own, for a writer that has gone idle after its last batch.
CREATE FUNCTION audit_seal_put(seal_seq bigint, seal_mac bytea) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO audit_seal (seq, mac) VALUES (seal_seq, seal_mac) ON CONFLICT (seq) DO NOTHING;
$$;

CREATE TRIGGER audit_seal_no_rewrite BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_seal
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_immutable();
CREATE FUNCTION audit_head_forward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'audit_head only moves forward';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_head_only_forward BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_immutable();

COMMENT ON TRIGGER audit_log_no_rewrite ON audit_log IS
    'Stops ordinary roles from rewriting history; the owner or a superuser can disable it, which the seals catch.';

-- The arguments key now lives outside the database (shared/keys.py).
DROP TABLE audit_secret;

-- The app role: read and append the audit log, read and write the servers' own tables.
GRANT USAGE ON SCHEMA public TO mcp_suite_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO mcp_suite_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO mcp_suite_app;
REVOKE ALL ON audit_log, audit_head, audit_seal, schema_migrations FROM PUBLIC, mcp_suite_app;
GRANT SELECT ON audit_log, audit_head, audit_seal, schema_migrations TO mcp_suite_app;
REVOKE ALL ON FUNCTION audit_append(text[], bigint, bytea), audit_seal_put(bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_append(text[], bigint, bytea), audit_seal_put(bigint, bytea) TO mcp_suite_app;
-- Tables later migrations create are the app's to use; audit-like tables must REVOKE as above.
ALTER DEFAULT PRIVILEGES FOR ROLE mcp_suite_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO mcp_suite_app;
ALTER DEFAULT PRIVILEGES FOR ROLE mcp_suite_owner IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO mcp_suite_app;
