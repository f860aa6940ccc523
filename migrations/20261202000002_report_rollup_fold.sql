-- Report rollups, second step: a rollup by encounter, a fold that scales to a year of 10
-- million decisions, and a refresh that folds a few days per transaction.
--
-- Measured on 8.5 million seeded decisions (README, Performance, Reports): folding a year in
-- one transaction did not finish in 15 minutes, nor did 30 days in 9.5. The decisions-per-day
-- rollup joined its per-decision and per-card counts on `IS NOT DISTINCT FROM` (hook and
-- prescriber may be NULL), which no hash or merge join can use: a nested loop over every pair
-- of a day's groups. The counts are now one GROUP BY over both row kinds (GROUP BY puts NULLs
-- together, as IS NOT DISTINCT FROM does).

-- Cards gain their decision's encounter, for the rollup by encounter. The functions that read
-- report_card_answers name its columns, so they keep working across the re-creation.
DROP FUNCTION report_card_answers(timestamptz, timestamptz);
CREATE FUNCTION report_card_answers(lo timestamptz, hi timestamptz)
RETURNS TABLE (day date, hook text, pathway_version text, user_ref text, rule_id text,
               severity text, outcome text, reason text, took_suggestion boolean,
               fracture_days float8, encounter_ref text)
LANGUAGE sql STABLE AS $$
    WITH cards AS (
        SELECT f.card_uuid, f.rule_id, f.severity, f.numbers, d.evaluated_at, d.hook,
               d.pathway_version, d.user_ref, d.encounter_ref
          FROM decisions d
          JOIN findings f ON f.decision_id = d.decision_id AND f.evaluated_at = d.evaluated_at
         WHERE f.card_uuid IS NOT NULL
           AND d.evaluated_at >= lo AND d.evaluated_at < hi
           AND f.evaluated_at >= lo AND f.evaluated_at < hi),
    answers AS (
        SELECT DISTINCT ON (fb.card_uuid) fb.card_uuid, fb.outcome,
               fb.override_reason_code AS reason,
               jsonb_array_length(fb.accepted_suggestions) > 0 AS took_suggestion
          FROM feedback fb
         WHERE fb.received_at >= lo AND fb.card_uuid IN (SELECT card_uuid FROM cards)
         ORDER BY fb.card_uuid, fb.outcome_at DESC, fb.received_at DESC, fb.feedback_id DESC)
    SELECT (c.evaluated_at AT TIME ZONE 'UTC')::date, c.hook, c.pathway_version, c.user_ref,
           c.rule_id, c.severity, a.outcome, a.reason, a.took_suggestion,
           CASE WHEN c.rule_id = 'VCF-AUGMENT-TIMING'
                THEN (c.numbers->>'fracture_days')::float8 END,
           c.encounter_ref
      FROM cards c LEFT JOIN answers a ON a.card_uuid = c.card_uuid
$$;

-- Decisions per day, hook, version and prescriber with their cards: one pass over both.
CREATE OR REPLACE FUNCTION report_decision_days_rows(lo timestamptz, hi timestamptz)
RETURNS SETOF report_decision_days LANGUAGE sql STABLE AS $$
    SELECT day, hook, pathway_version, user_ref, sum(decisions), sum(cards), sum(answered),
           sum(overridden), sum(critical)
      FROM (SELECT (d.evaluated_at AT TIME ZONE 'UTC')::date AS day, d.hook,
                   d.pathway_version, d.user_ref, 1 AS decisions, 0 AS cards, 0 AS answered,
                   0 AS overridden, 0 AS critical
              FROM decisions d
             WHERE d.evaluated_at >= lo AND d.evaluated_at < hi
            UNION ALL
            SELECT day, hook, pathway_version, user_ref, 0, 1, (outcome IS NOT NULL)::int,
                   (outcome IS NOT DISTINCT FROM 'overridden')::int,
                   (severity = 'critical')::int
              FROM report_card_answers(lo, hi)) rows
     GROUP BY day, hook, pathway_version, user_ref
$$;

-- Decisions per day, version and encounter with their cards (all hooks), for the by-encounter
-- report: about one row per encounter and day, a third of the decisions in the demo data, so a
-- 30-day report sums a few hundred thousand rows instead of joining millions.
CREATE TABLE report_encounter_days (
    day             date    NOT NULL,
    pathway_version text    NOT NULL,
    encounter_ref   text,
    decisions       bigint  NOT NULL,
    cards           bigint  NOT NULL,
    answered        bigint  NOT NULL,
    overridden      bigint  NOT NULL,
    critical        bigint  NOT NULL
);
CREATE INDEX report_encounter_days_day_idx ON report_encounter_days (day);

CREATE FUNCTION report_encounter_days_rows(lo timestamptz, hi timestamptz)
RETURNS SETOF report_encounter_days LANGUAGE sql STABLE AS $$
    SELECT day, pathway_version, encounter_ref, sum(decisions), sum(cards), sum(answered),
           sum(overridden), sum(critical)
      FROM (SELECT (d.evaluated_at AT TIME ZONE 'UTC')::date AS day, d.pathway_version,
                   d.encounter_ref, 1 AS decisions, 0 AS cards, 0 AS answered,
                   0 AS overridden, 0 AS critical
              FROM decisions d
             WHERE d.evaluated_at >= lo AND d.evaluated_at < hi
            UNION ALL
            SELECT day, pathway_version, encounter_ref, 0, 1, (outcome IS NOT NULL)::int,
                   (outcome IS NOT DISTINCT FROM 'overridden')::int,
                   (severity = 'critical')::int
              FROM report_card_answers(lo, hi)) rows
     GROUP BY day, pathway_version, encounter_ref
$$;

-- Folds the days [first_day, end_day): replaces their rows in every rollup table, the
-- encounter table included.
CREATE OR REPLACE FUNCTION report_rollup_fold(first_day date, end_day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := end_day::timestamp AT TIME ZONE 'UTC';
BEGIN
    SET LOCAL work_mem = '256MB';
    DELETE FROM report_card_days WHERE day >= first_day AND day < end_day;
    DELETE FROM report_decision_days WHERE day >= first_day AND day < end_day;
    DELETE FROM report_encounter_days WHERE day >= first_day AND day < end_day;
    DELETE FROM report_vcf_days WHERE day >= first_day AND day < end_day;
    DELETE FROM report_mme_days WHERE day >= first_day AND day < end_day;
    DELETE FROM report_missing_days WHERE day >= first_day AND day < end_day;
    INSERT INTO report_card_days SELECT * FROM report_card_days_rows(lo, hi);
    INSERT INTO report_decision_days SELECT * FROM report_decision_days_rows(lo, hi);
    INSERT INTO report_encounter_days SELECT * FROM report_encounter_days_rows(lo, hi);
    INSERT INTO report_vcf_days SELECT * FROM report_vcf_days_rows(lo, hi);
    INSERT INTO report_mme_days SELECT * FROM report_mme_days_rows(lo, hi);
    INSERT INTO report_missing_days SELECT * FROM report_missing_days_rows(lo, hi);
    INSERT INTO report_rollup_days (day, decisions, folded_at)
    SELECT g.day, coalesce(c.n, 0), now()
      FROM (SELECT s::date AS day
              FROM generate_series(first_day, end_day - 1, interval '1 day') s) g
      LEFT JOIN (SELECT (evaluated_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
                   FROM decisions WHERE evaluated_at >= lo AND evaluated_at < hi
                  GROUP BY 1) c ON c.day = g.day
    ON CONFLICT (day) DO UPDATE SET decisions = EXCLUDED.decisions, folded_at = EXCLUDED.folded_at;
END;
$$;

-- The refresh is now driven from Rust (src/reports/rollup.rs, `refresh`): it holds a
-- session advisory lock, reads the stale runs of days below in one snapshot, and folds them a
-- few days per REPEATABLE READ transaction, so a year's backfill commits as it goes and a
-- failure loses at most one chunk. Each fold records its days' decision counts from its own
-- snapshot, so a decision committed between two chunks is caught by the next refresh.
DROP FUNCTION report_rollup_refresh(interval, interval);

-- The runs of consecutive days that need folding: closed days (ended `settle` ago) never
-- folded or whose decision count changed, and days with a card answered since the last refresh
-- (`in_flight` further back, for feedback received before that refresh's snapshot but
-- committed after it).
CREATE FUNCTION report_rollup_stale(settle interval, in_flight interval)
RETURNS TABLE (first_day date, end_day date) LANGUAGE sql STABLE AS $$
    WITH bounds AS (
        SELECT ((now() - settle) AT TIME ZONE 'UTC')::date AS closed,
               (((now() - settle) AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC'
                   AS closed_at,
               (SELECT (min(evaluated_at) AT TIME ZONE 'UTC')::date FROM decisions) AS first,
               (SELECT feedback_seen_until FROM report_rollup_state) AS seen),
    counts AS (
        SELECT (d.evaluated_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
          FROM decisions d, bounds b WHERE d.evaluated_at < b.closed_at GROUP BY 1),
    stale AS (
        SELECT g.day
          FROM bounds b,
               LATERAL (SELECT s::date AS day
                          FROM generate_series(b.first, b.closed - 1, interval '1 day') s) g
          LEFT JOIN report_rollup_days r ON r.day = g.day
          LEFT JOIN counts c ON c.day = g.day
         WHERE r.day IS NULL OR r.decisions <> coalesce(c.n, 0)
        UNION
        SELECT (f.evaluated_at AT TIME ZONE 'UTC')::date
          FROM bounds b, feedback fb JOIN findings f ON f.card_uuid = fb.card_uuid
         WHERE b.seen IS NOT NULL AND fb.received_at >= b.seen - in_flight
           AND f.evaluated_at < b.closed_at),
    islands AS (
        SELECT day, day - (row_number() OVER (ORDER BY day))::integer AS island FROM stale)
    SELECT min(day), max(day) + 1 FROM islands GROUP BY island ORDER BY 1
$$;
