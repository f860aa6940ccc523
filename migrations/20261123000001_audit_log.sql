-- The audit log: every decision, its findings, clinician feedback, rejected requests and later
-- actions. Append-only (enforced below by triggers and grants) and hash-chained per writer batch
-- (see src/audit/chain.rs for exactly which bytes each batch hash covers).
--
-- Time-keyed tables are partitioned by month so that old months can be detached and archived
-- (HIPAA asks for six years) without deleting rows in place. The months from last month to two
-- months ahead are created here, and `orderguard db migrate` / `serve` (audit::migrate) extend
-- the window to a year ahead on every run through audit_create_month_partitions(); a DEFAULT
-- partition catches anything outside. (Creating 2024..2030 up front cost 6 s per migration, too
-- slow for a fresh database per test.)

-- One row per committed writer batch: the chain links. Small (one row per group commit), so it is
-- not partitioned; it is the index verify walks.
CREATE TABLE audit_batches (
    chain_id     text        NOT NULL CHECK (chain_id ~ '^[A-Za-z0-9._:-]{1,100}$'),
    seq          bigint      NOT NULL CHECK (seq >= 1),
    prev_hash    bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    batch_hash   bytea       NOT NULL CHECK (octet_length(batch_hash) = 32),
    row_count    integer     NOT NULL CHECK (row_count >= 1),
    -- SHA-256 of each row's canonical bytes in batch position order, so that verify can name
    -- the row that changed (the batch hash covers this list too).
    row_hashes   bytea[]     NOT NULL CHECK (cardinality(row_hashes) = row_count),
    committed_at timestamptz NOT NULL,
    PRIMARY KEY (chain_id, seq)
);
COMMENT ON TABLE audit_batches IS
    'Hash chain links: one row per writer batch; batch_hash = SHA-256 over prev_hash, this header and every row of the batch';

-- Each writer announces its chain when it starts (not hash-covered: informational).
CREATE TABLE audit_chains (
    chain_id   text        PRIMARY KEY CHECK (chain_id ~ '^[A-Za-z0-9._:-]{1,100}$'),
    started_at timestamptz NOT NULL DEFAULT now(),
    started_by text        NOT NULL DEFAULT ''
);

CREATE TABLE decisions (
    decision_id      uuid        NOT NULL,
    evaluated_at     timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL,
    channel          text        NOT NULL CHECK (channel IN ('cds-hooks', 'native', 'cli')),
    hook             text,
    -- Stored for tracing, never a key: clients reuse hookInstance.
    hook_instance    text,
    client_id        text,
    user_ref         text,
    patient_ref      text,
    encounter_ref    text,
    pathway_id       text        NOT NULL CHECK (pathway_id <> ''),
    pathway_version  text        NOT NULL CHECK (pathway_version <> ''),
    pathway_hash     text        NOT NULL,
    -- The canonical (RFC 8785 style) input bytes: jsonb would rewrite them and break hashes.
    canonical_input  bytea       NOT NULL,
    input_sha256     bytea       NOT NULL CHECK (octet_length(input_sha256) = 32),
    response         bytea       NOT NULL,
    response_sha256  bytea       NOT NULL CHECK (octet_length(response_sha256) = 32),
    unrecognized     jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(unrecognized) = 'array'),
    missing_inputs   jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(missing_inputs) = 'array'),
    finding_count    integer     NOT NULL CHECK (finding_count >= 0),
    chain_id         text        NOT NULL,
    batch_seq        bigint      NOT NULL,
    batch_pos        integer     NOT NULL CHECK (batch_pos >= 0),
    -- A partitioned table's keys must contain the partition key; the decision id is unique in
    -- practice (UUIDv7) and retries carry the same evaluated_at, so this key makes replays
    -- idempotent.
    PRIMARY KEY (decision_id, evaluated_at),
    CHECK (hook IS NOT NULL OR channel <> 'cds-hooks')
) PARTITION BY RANGE (evaluated_at);

CREATE TABLE findings (
    decision_id   uuid        NOT NULL,
    evaluated_at  timestamptz NOT NULL,
    finding_index integer     NOT NULL CHECK (finding_index >= 0),
    rule_id       text        NOT NULL CHECK (rule_id ~ '^[A-Z0-9][A-Z0-9-]*$'),
    severity      text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    order_ref     text,
    card_uuid     uuid,
    numbers       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(numbers) = 'object'),
    PRIMARY KEY (decision_id, evaluated_at, finding_index),
    FOREIGN KEY (decision_id, evaluated_at) REFERENCES decisions (decision_id, evaluated_at)
) PARTITION BY RANGE (evaluated_at);

CREATE TABLE feedback (
    feedback_id          uuid        NOT NULL,
    received_at          timestamptz NOT NULL,
    card_uuid            uuid        NOT NULL,
    decision_id          uuid,
    outcome              text        NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    accepted_suggestions jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(accepted_suggestions) = 'array'),
    override_reason_code text,
    override_comment     text,
    outcome_at           timestamptz NOT NULL,
    client_id            text,
    chain_id             text        NOT NULL,
    batch_seq            bigint      NOT NULL,
    batch_pos            integer     NOT NULL CHECK (batch_pos >= 0),
    PRIMARY KEY (feedback_id, received_at),
    CHECK (outcome = 'overridden' OR override_reason_code IS NULL)
) PARTITION BY RANGE (received_at);

-- Requests refused before a decision (auth, schema, size). No body: only a hash of at most the
-- first bytes the service chose to hash, and the length.
CREATE TABLE rejected_requests (
    rejection_id uuid        NOT NULL,
    rejected_at  timestamptz NOT NULL,
    client_id    text,
    route        text        NOT NULL,
    reason       text        NOT NULL,
    status       integer     NOT NULL CHECK (status BETWEEN 100 AND 599),
    body_sha256  text        CHECK (body_sha256 ~ '^[0-9a-f]{64}$'),
    body_len     bigint      NOT NULL CHECK (body_len >= 0),
    chain_id     text        NOT NULL,
    batch_seq    bigint      NOT NULL,
    batch_pos    integer     NOT NULL CHECK (batch_pos >= 0),
    PRIMARY KEY (rejection_id, rejected_at)
) PARTITION BY RANGE (rejected_at);

-- Later actions on decisions: pharmacist acknowledgements, replays, administrative events.
CREATE TABLE audit_events (
    event_id    uuid        NOT NULL,
    occurred_at timestamptz NOT NULL,
    kind        text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.-]*$'),
    actor       text        NOT NULL,
    decision_id uuid,
    payload     jsonb       NOT NULL DEFAULT '{}',
    chain_id    text        NOT NULL,
    batch_seq   bigint      NOT NULL,
    batch_pos   integer     NOT NULL CHECK (batch_pos >= 0),
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- Indexes for the reports (by time, rule, patient, user) and for verify (by batch). Lookups by
-- decision id alone use the primary key, whose first column it is.
CREATE INDEX decisions_evaluated_at_idx ON decisions (evaluated_at);
CREATE INDEX decisions_patient_idx      ON decisions (patient_ref, evaluated_at);
CREATE INDEX decisions_user_idx         ON decisions (user_ref, evaluated_at);
CREATE INDEX decisions_batch_idx        ON decisions (chain_id, batch_seq, batch_pos);
CREATE INDEX findings_rule_idx          ON findings (rule_id, evaluated_at);
CREATE INDEX findings_card_idx          ON findings (card_uuid);
CREATE INDEX feedback_card_idx          ON feedback (card_uuid);
CREATE INDEX feedback_time_idx          ON feedback (received_at);
CREATE INDEX feedback_batch_idx         ON feedback (chain_id, batch_seq, batch_pos);
CREATE INDEX rejected_time_idx          ON rejected_requests (rejected_at);
CREATE INDEX rejected_batch_idx         ON rejected_requests (chain_id, batch_seq, batch_pos);
CREATE INDEX events_time_idx            ON audit_events (occurred_at);
CREATE INDEX events_decision_idx        ON audit_events (decision_id);
CREATE INDEX events_batch_idx           ON audit_events (chain_id, batch_seq, batch_pos);

-- Append-only: refuse UPDATE, DELETE and TRUNCATE for everyone, the owner included. (A
-- superuser can still switch triggers off; that is what the hash chain is for.)
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit table %: % refused, the audit log is append-only', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Adds the append-only triggers to one table. Row triggers on a partitioned table are cloned to
-- its partitions, TRUNCATE triggers are not, so partitions get their own TRUNCATE trigger.
CREATE FUNCTION audit_protect_table(tbl regclass, with_row_trigger boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF with_row_trigger THEN
        EXECUTE format('CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON %s
                        FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()', tbl);
    END IF;
    EXECUTE format('CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()', tbl);
END;
$$;

-- Creates the monthly partitions [from_month, to_month] of every time-keyed audit table, with
-- their TRUNCATE triggers. Idempotent: existing months are skipped.
CREATE FUNCTION audit_create_month_partitions(from_month date, to_month date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', from_month);
    parent text;
    part text;
    created integer := 0;
BEGIN
    WHILE month <= to_month LOOP
        FOREACH parent IN ARRAY ARRAY['decisions', 'findings', 'feedback', 'rejected_requests', 'audit_events'] LOOP
            part := format('%s_%s', parent, to_char(month, 'YYYY_MM'));
            IF to_regclass(part) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                                   part, parent, month::timestamptz, (month + interval '1 month')::timestamptz);
                    PERFORM audit_protect_table(part::regclass, false);
                    created := created + 1;
                EXCEPTION WHEN check_violation THEN
                    -- Rows of that month already sit in the DEFAULT partition (which would have to
                    -- be moved, i.e. deleted): leave the month there.
                    RAISE NOTICE 'month % of % stays in the default partition', month, parent;
                END;
            END IF;
        END LOOP;
        month := month + interval '1 month';
    END LOOP;
    RETURN created;
END;
$$;

SELECT audit_protect_table('audit_batches', true);
SELECT audit_protect_table('audit_chains', true);
SELECT audit_protect_table('decisions', true);
SELECT audit_protect_table('findings', true);
SELECT audit_protect_table('feedback', true);
SELECT audit_protect_table('rejected_requests', true);
SELECT audit_protect_table('audit_events', true);

CREATE TABLE decisions_default PARTITION OF decisions DEFAULT;
CREATE TABLE findings_default PARTITION OF findings DEFAULT;
CREATE TABLE feedback_default PARTITION OF feedback DEFAULT;
CREATE TABLE rejected_requests_default PARTITION OF rejected_requests DEFAULT;
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;
SELECT audit_protect_table('decisions_default', false);
SELECT audit_protect_table('findings_default', false);
SELECT audit_protect_table('feedback_default', false);
SELECT audit_protect_table('rejected_requests_default', false);
SELECT audit_protect_table('audit_events_default', false);

SELECT audit_create_month_partitions((date_trunc('month', now()) - interval '1 month')::date,
                                     (date_trunc('month', now()) + interval '2 months')::date);

-- The service's role: INSERT and SELECT only. Roles are cluster-wide, so create it only once
-- (and tolerate a concurrent migration of another database creating it at the same moment).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orderguard_writer') THEN
        CREATE ROLE orderguard_writer NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;
GRANT SELECT, INSERT ON audit_batches, audit_chains, decisions, findings, feedback,
    rejected_requests, audit_events TO orderguard_writer;
