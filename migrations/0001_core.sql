-- Core schema: extensions and the tamper-evident tool-call audit log.
CREATE EXTENSION IF NOT EXISTS vector;

-- One row: the chain head. Appends lock it, so the sequence stays gap-free across processes.
CREATE TABLE audit_head (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq     bigint  NOT NULL,
    hash    bytea   NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));

-- Each record's `body` is canonical JSON; the other columns are derived from it for querying.
-- hash = sha256(prev_hash || seq || '\n' || body): editing, deleting or reordering breaks the chain.
CREATE TABLE audit_log (
    seq          bigint PRIMARY KEY,
    ts           timestamptz NOT NULL,
    server       text NOT NULL,
    tool         text NOT NULL,
    principal    text NOT NULL,
    transport    text NOT NULL,
    request_id   text NOT NULL,
    phase        text NOT NULL,
    outcome      text NOT NULL,
    error_class  text,
    latency_ms   double precision,
    result_bytes integer,
    body         text NOT NULL,
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL
);
CREATE INDEX audit_log_ts ON audit_log (ts);
CREATE INDEX audit_log_server_tool_ts ON audit_log (server, tool, ts);
CREATE INDEX audit_log_principal_ts ON audit_log (principal, ts);
CREATE INDEX audit_log_outcome_ts ON audit_log (outcome, ts);

CREATE FUNCTION audit_append(bodies text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    head_seq  bigint;
    head_hash bytea;
    prev      bytea;
    body      text;
    rec       jsonb;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE id FOR UPDATE;
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
    RETURN head_seq;
END;
$$;

-- Append-only for ordinary roles. The owner or a superuser can still disable this and rewrite rows and
-- hashes; only the keyed seals (migration 0006) and checkpoints kept outside the database catch that.
CREATE FUNCTION audit_log_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_rewrite BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_immutable();

-- Superseded by migration 0006, which drops this table: the key now lives outside the database.
CREATE TABLE audit_secret (
    id  boolean PRIMARY KEY DEFAULT true CHECK (id),
    key bytea NOT NULL
);
