-- Pathway versions: every pathway a service loaded (at start, on SIGHUP, through the admin
-- route), with its full content, so that any decision's `pathway_hash` can be turned back into
-- the exact plan that decided it (`orderguard replay --verify-determinism`), and reports can
-- group decisions by version. One row per load: loading the same content twice gives two rows
-- with the same content_hash (the load history is itself audit data).
--
-- Append-only like the other audit tables (audit_protect_table from the audit-log migration),
-- and the service role may only INSERT and SELECT. The row is written directly, not through the
-- hash-chained writer; the load is also recorded as a chained `pathway.loaded` audit event
-- naming the same content hash, and the CHECK below ties the stored content to its hash.

CREATE TABLE pathway_versions (
    load_id      uuid        PRIMARY KEY,
    pathway_id   text        NOT NULL CHECK (pathway_id <> ''),
    version      text        NOT NULL CHECK (version <> ''),
    -- Lowercase hex SHA-256 of `content`: the same string decisions.pathway_hash holds.
    content_hash text        NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    -- The pathway's canonical JSON bytes (src/canonical.rs), exactly what was hashed.
    content      bytea       NOT NULL CHECK (encode(sha256(content), 'hex') = content_hash),
    -- Who: `startup`, `signal:SIGHUP`, or the staff subject of the admin who asked.
    loaded_by    text        NOT NULL CHECK (loaded_by <> ''),
    -- How: startup | sighup | admin.
    trigger      text        NOT NULL CHECK (trigger IN ('startup', 'sighup', 'admin')),
    -- The instance that loaded it (its audit chain id).
    chain_id     text        NOT NULL,
    loaded_at    timestamptz NOT NULL
);
COMMENT ON TABLE pathway_versions IS
    'Every pathway a service loaded, with its canonical content; content_hash = decisions.pathway_hash';

CREATE INDEX pathway_versions_hash_idx ON pathway_versions (content_hash);
CREATE INDEX pathway_versions_loaded_idx ON pathway_versions (loaded_at);
-- Replay and reports select decisions by version.
CREATE INDEX decisions_pathway_idx ON decisions (pathway_hash, evaluated_at);

SELECT audit_protect_table('pathway_versions', true);

GRANT SELECT, INSERT ON pathway_versions TO orderguard_writer;
