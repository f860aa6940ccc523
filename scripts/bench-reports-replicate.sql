-- Benchmark only: multiplies the decisions, findings and feedback that the real engine and audit
-- writer recorded (`orderguard demo seed`) into copies :kfrom..:kto by SQL, so that report
-- timings can be taken at a scale (10 million decisions) the writer cannot seed in the time at
-- hand. The copies are NOT hash-chained (audit verify reports them as unchained rows).
--
-- Each copy k of a decision gets new ids (md5 of the old id and k), its own patient, encounter
-- (split where the year wraps) and (one of ten) prescriber references, and a new time: the original's age (before :'anchor')
-- plus 37·k days and k mod 60 minutes, wrapped into the last 365 days, so the copies spread over
-- the whole year at the originals' times of day. Its findings move with it (same partition key);
-- its feedback is received 2..61 s after its own outcome time, which stays the original's delay
-- after the decision (5..305 s): feedback lands in the decision's month, as in real use.
--
-- Reads the originals from bench_base_decisions / _findings / _feedback (made by
-- scripts/bench-reports.sh before the first copy; _feedback carries its decision's
-- evaluated_at), so every copy is of an engine-made row.
-- psql -v kfrom=1 -v kto=10 -v anchor='2026-12-02T00:00:00Z' -f scripts/bench-reports-replicate.sql
\set ON_ERROR_STOP on
-- Bulk load: the foreign key from findings to decisions holds by construction; skip its
-- per-row check (superuser only; append-only triggers fire on UPDATE/DELETE, not INSERT).
SET session_replication_role = replica;
SET synchronous_commit = off;

CREATE TEMP TABLE shift AS
SELECT k, (k * 37) * interval '1 day' + (k % 60) * interval '1 minute' AS by,
       :'anchor'::timestamptz AS anchor
  FROM generate_series(:kfrom::int, :kto::int) k;

-- How many times the shift wrapped `at` around the year. An encounter's decisions that land on
-- either side of the wrap are two encounters (two stays, a year apart), not one a year long.
CREATE FUNCTION pg_temp.wraps(at timestamptz, by interval, anchor timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT floor(extract(epoch FROM (anchor - at) + by)::numeric / (365 * 86400))::bigint
$$;

-- The new time of an original decision time `at` in copy k: same age plus the shift, modulo a
-- year. Times after the decision (recorded, outcome, received) keep their delay after it.
CREATE FUNCTION pg_temp.moved(at timestamptz, by interval, anchor timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
    SELECT anchor - make_interval(secs =>
        mod(extract(epoch FROM (anchor - at) + by)::numeric, 365 * 86400))
$$;

INSERT INTO decisions
SELECT md5(d.decision_id::text || ':' || s.k)::uuid, pg_temp.moved(d.evaluated_at, s.by, s.anchor),
       pg_temp.moved(d.evaluated_at, s.by, s.anchor) + (d.recorded_at - d.evaluated_at), d.channel, d.hook, d.hook_instance, d.client_id,
       d.user_ref || '-' || (s.k % 10), d.patient_ref || '-' || s.k,
       d.encounter_ref || '-' || s.k || '.' || pg_temp.wraps(d.evaluated_at, s.by, s.anchor),
       d.pathway_id, d.pathway_version, d.pathway_hash,
       d.canonical_input, d.input_sha256, d.response, d.response_sha256, d.unrecognized,
       d.missing_inputs, d.finding_count, d.chain_id || '-copy', d.batch_seq, d.batch_pos
  FROM bench_base_decisions d, shift s;

INSERT INTO findings (decision_id, evaluated_at, finding_index, rule_id, severity, order_ref,
                      card_uuid, numbers, labels)
SELECT md5(f.decision_id::text || ':' || s.k)::uuid, pg_temp.moved(f.evaluated_at, s.by, s.anchor),
       f.finding_index, f.rule_id, f.severity, f.order_ref,
       md5(f.card_uuid::text || ':' || s.k)::uuid, f.numbers, f.labels
  FROM bench_base_findings f, shift s;

INSERT INTO feedback (feedback_id, received_at, card_uuid, decision_id, outcome,
                      accepted_suggestions, override_reason_code, override_comment, outcome_at,
                      client_id, chain_id, batch_seq, batch_pos)
SELECT md5(b.feedback_id::text || ':' || s.k)::uuid,
       pg_temp.moved(b.evaluated_at, s.by, s.anchor) + (b.outcome_at - b.evaluated_at)
           + (2 + mod(b.batch_pos, 60)) * interval '1 second',
       md5(b.card_uuid::text || ':' || s.k)::uuid, md5(b.decision_id::text || ':' || s.k)::uuid,
       b.outcome, b.accepted_suggestions, b.override_reason_code, b.override_comment,
       pg_temp.moved(b.evaluated_at, s.by, s.anchor) + (b.outcome_at - b.evaluated_at), b.client_id, b.chain_id || '-copy', b.batch_seq,
       b.batch_pos
  FROM bench_base_feedback b, shift s;
