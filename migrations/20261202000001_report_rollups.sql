-- Report rollups: daily aggregates of the audit tables that the reports read for whole folded
-- days, while the days not folded yet (today, a window's partial first and last day) are read
-- raw. Issue 5 asks every report to answer in 500 ms over 10 million decisions; aggregating a
-- month of raw decisions, findings and feedback takes seconds.
--
-- Exactness: every rollup table is filled by a `*_rows(lo, hi)` function, and the reports read
-- the live tail through the very same functions, so a report over folded days gives exactly the
-- numbers of the same SQL over the raw rows (tests/report_rollups.rs compares them with the raw
-- report SQL on a seeded dataset). The rollup is derived data, not audit data: it may be
-- deleted and rebuilt (`DELETE FROM report_rollup_days` and run the refresher), and the audit
-- tables' append-only rules do not apply to it.
--
-- Freshness: `report_rollup_refresh` (run by `orderguard report refresh`, e.g. every few
-- minutes from a timer) folds each closed day once it is `settle` old, and refolds a folded day
-- when its decision count changed (a spool replayed after an outage; the audit tables are
-- append-only, so a changed count is the only way a day's decisions can change) or when one of
-- its cards was answered since the previous refresh (feedback normally comes minutes after the
-- decision, so this is rare). Between refreshes such a late row is missing from the rollup.
-- Nothing here is on the audit writer's path: the writer inserts exactly as before.

-- The decision filters (user, encounter) that the rollups cannot serve are read raw; an index
-- for the encounter filter (the user filter has decisions_user_idx).
CREATE INDEX decisions_encounter_idx ON decisions (encounter_ref, evaluated_at);

-- One row per card (a finding with a card) of the decisions evaluated in [lo, hi), with its
-- decision's hook, version and prescriber and its latest answer (by outcome time), as the raw
-- report SQL (src/reports/sql.rs, cards_and_answers) computes it. Feedback comes after its
-- decision, so only feedback received from `lo` on is read.
CREATE FUNCTION report_card_answers(lo timestamptz, hi timestamptz)
RETURNS TABLE (day date, hook text, pathway_version text, user_ref text, rule_id text,
               severity text, outcome text, reason text, took_suggestion boolean,
               fracture_days float8)
LANGUAGE sql STABLE AS $$
    WITH cards AS (
        SELECT f.card_uuid, f.rule_id, f.severity, f.numbers, d.evaluated_at, d.hook,
               d.pathway_version, d.user_ref
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
                THEN (c.numbers->>'fracture_days')::float8 END
      FROM cards c LEFT JOIN answers a ON a.card_uuid = c.card_uuid
$$;

-- One row per decision evaluated in [lo, hi): its day, hook, version, prescriber, whether it
-- has a finding of each VCF adherence rule, its highest MME/day finding and its missing inputs.
CREATE FUNCTION report_decision_facts(lo timestamptz, hi timestamptz)
RETURNS TABLE (day date, hook text, pathway_version text, user_ref text, antiop boolean,
               calcium boolean, vitamin_d boolean, mme float8, missing_inputs jsonb)
LANGUAGE sql STABLE AS $$
    SELECT (d.evaluated_at AT TIME ZONE 'UTC')::date, d.hook, d.pathway_version, d.user_ref,
           coalesce(bool_or(f.rule_id = 'VCF-ANTIOP-MISSING'), false),
           coalesce(bool_or(f.rule_id = 'VCF-CALCIUM-MISSING'), false),
           coalesce(bool_or(f.rule_id = 'VCF-VITD-MISSING'), false),
           max((f.numbers->>'mme_per_day')::float8)
               FILTER (WHERE f.rule_id IN ('DOSE-MME-50', 'DOSE-MME-90')
                         AND f.numbers ? 'mme_per_day'),
           d.missing_inputs
      FROM decisions d
      LEFT JOIN findings f ON f.decision_id = d.decision_id AND f.evaluated_at = d.evaluated_at
                          AND f.evaluated_at >= lo AND f.evaluated_at < hi
     WHERE d.evaluated_at >= lo AND d.evaluated_at < hi
     GROUP BY d.decision_id, d.evaluated_at
$$;

-- Cards per day, hook, version, rule, severity and latest answer (no prescriber: that would
-- make the table nearly as long as the findings; reports filtered by prescriber read raw).
-- fracture_days is kept for VCF-AUGMENT-TIMING cards only (its median is a report column).
CREATE TABLE report_card_days (
    day             date    NOT NULL,
    hook            text,
    pathway_version text    NOT NULL,
    rule_id         text    NOT NULL,
    severity        text    NOT NULL,
    outcome         text,
    reason          text,
    took_suggestion boolean,
    fracture_days   float8,
    cards           bigint  NOT NULL
);
CREATE INDEX report_card_days_day_idx ON report_card_days (day);

CREATE FUNCTION report_card_days_rows(lo timestamptz, hi timestamptz)
RETURNS SETOF report_card_days LANGUAGE sql STABLE AS $$
    SELECT day, hook, pathway_version, rule_id, severity, outcome, reason, took_suggestion,
           fracture_days, count(*)
      FROM report_card_answers(lo, hi)
     GROUP BY day, hook, pathway_version, rule_id, severity, outcome, reason, took_suggestion,
              fracture_days
$$;

-- Decisions per day, hook, version and prescriber, with their cards, answered cards,
-- overridden cards and critical cards.
CREATE TABLE report_decision_days (
    day             date    NOT NULL,
    hook            text,
    pathway_version text    NOT NULL,
    user_ref        text,
    decisions       bigint  NOT NULL,
    cards           bigint  NOT NULL,
    answered        bigint  NOT NULL,
    overridden      bigint  NOT NULL,
    critical        bigint  NOT NULL
);
CREATE INDEX report_decision_days_day_idx ON report_decision_days (day);

CREATE FUNCTION report_decision_days_rows(lo timestamptz, hi timestamptz)
RETURNS SETOF report_decision_days LANGUAGE sql STABLE AS $$
    WITH per_decision AS (
        SELECT (d.evaluated_at AT TIME ZONE 'UTC')::date AS day, d.hook, d.pathway_version,
               d.user_ref, count(*) AS decisions
          FROM decisions d
         WHERE d.evaluated_at >= lo AND d.evaluated_at < hi
         GROUP BY 1, 2, 3, 4),
    per_card AS (
        SELECT day, hook, pathway_version, user_ref, count(*) AS cards,
               count(outcome) AS answered,
               count(*) FILTER (WHERE outcome = 'overridden') AS overridden,
               count(*) FILTER (WHERE severity = 'critical') AS critical
          FROM report_card_answers(lo, hi)
         GROUP BY 1, 2, 3, 4)
    SELECT pd.day, pd.hook, pd.pathway_version, pd.user_ref, pd.decisions,
           coalesce(pc.cards, 0), coalesce(pc.answered, 0), coalesce(pc.overridden, 0),
           coalesce(pc.critical, 0)
      FROM per_decision pd
      LEFT JOIN per_card pc ON pc.day = pd.day AND pc.hook IS NOT DISTINCT FROM pd.hook
                           AND pc.pathway_version = pd.pathway_version
                           AND pc.user_ref IS NOT DISTINCT FROM pd.user_ref
$$;

-- Order-sign calls with at least one VCF adherence finding, per combination of the three.
CREATE TABLE report_vcf_days (
    day             date    NOT NULL,
    pathway_version text    NOT NULL,
    user_ref        text,
    antiop          boolean NOT NULL,
    calcium         boolean NOT NULL,
    vitamin_d       boolean NOT NULL,
    calls           bigint  NOT NULL
);
CREATE INDEX report_vcf_days_day_idx ON report_vcf_days (day);

CREATE FUNCTION report_vcf_days_rows(lo timestamptz, hi timestamptz)
RETURNS SETOF report_vcf_days LANGUAGE sql STABLE AS $$
    SELECT day, pathway_version, user_ref, antiop, calcium, vitamin_d, count(*)
      FROM report_decision_facts(lo, hi)
     WHERE hook = 'order-sign' AND (antiop OR calcium OR vitamin_d)
     GROUP BY 1, 2, 3, 4, 5, 6
$$;

-- Order-sign calls with an MME/day finding, per highest MME/day value.
CREATE TABLE report_mme_days (
    day             date    NOT NULL,
    pathway_version text    NOT NULL,
    user_ref        text,
    mme             float8  NOT NULL,
    calls           bigint  NOT NULL
);
CREATE INDEX report_mme_days_day_idx ON report_mme_days (day);

CREATE FUNCTION report_mme_days_rows(lo timestamptz, hi timestamptz)
RETURNS SETOF report_mme_days LANGUAGE sql STABLE AS $$
    SELECT day, pathway_version, user_ref, mme, count(*)
      FROM report_decision_facts(lo, hi)
     WHERE hook = 'order-sign' AND mme IS NOT NULL
     GROUP BY 1, 2, 3, 4
$$;

-- Decisions per missing input and the rules that needed it. Counts decisions per element: the
-- engine lists each missing input once per decision (src/engine/emit.rs), so this equals the
-- raw report's count of distinct decisions.
CREATE TABLE report_missing_days (
    day             date    NOT NULL,
    pathway_version text    NOT NULL,
    user_ref        text,
    input           text,
    rules           jsonb,
    decisions       bigint  NOT NULL
);
CREATE INDEX report_missing_days_day_idx ON report_missing_days (day);

CREATE FUNCTION report_missing_days_rows(lo timestamptz, hi timestamptz)
RETURNS SETOF report_missing_days LANGUAGE sql STABLE AS $$
    SELECT (d.evaluated_at AT TIME ZONE 'UTC')::date, d.pathway_version, d.user_ref,
           e->>'input', e->'rules', count(DISTINCT d.decision_id)
      FROM decisions d, jsonb_array_elements(d.missing_inputs) e
     WHERE d.evaluated_at >= lo AND d.evaluated_at < hi
     GROUP BY 1, 2, 3, 4, 5
$$;

-- percentile_cont(p) of a multiset given as distinct values and their counts, computed exactly
-- as PostgreSQL's percentile_cont does over the expanded rows (orderedsetaggs.c: the rows at
-- floor and ceil of p * (n - 1), interpolated lo + (frac * (hi - lo))). NULL values are
-- ignored; no values give NULL.
CREATE FUNCTION report_percentile_cont(p float8, vals float8[], counts bigint[])
RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    WITH v AS (
        SELECT val, sum(cnt) OVER (ORDER BY val ROWS UNBOUNDED PRECEDING) AS upto,
               sum(cnt) OVER () AS n
          FROM unnest(vals, counts) AS u(val, cnt)
         WHERE val IS NOT NULL AND cnt > 0),
    pos AS (
        SELECT floor(p * (n - 1)::float8) AS first_row, ceil(p * (n - 1)::float8) AS second_row,
               p * (n - 1)::float8 AS at
          FROM v LIMIT 1),
    ends AS (
        SELECT (SELECT val FROM v WHERE upto > pos.first_row ORDER BY val LIMIT 1) AS first,
               (SELECT val FROM v WHERE upto > pos.second_row ORDER BY val LIMIT 1) AS second,
               pos.first_row, pos.second_row, pos.at
          FROM pos)
    SELECT CASE WHEN second_row = first_row THEN first
                ELSE first + ((at - first_row) * (second - first)) END
      FROM ends
$$;

-- Which days are folded, with their decision count at fold time.
CREATE TABLE report_rollup_days (
    day       date        PRIMARY KEY,
    decisions bigint      NOT NULL,
    folded_at timestamptz NOT NULL
);

-- Up to when feedback was looked at by the last refresh.
CREATE TABLE report_rollup_state (
    only_row             boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    feedback_seen_until  timestamptz NOT NULL
);

-- Folds the days [first_day, end_day): replaces their rows in every rollup table.
CREATE FUNCTION report_rollup_fold(first_day date, end_day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := end_day::timestamp AT TIME ZONE 'UTC';
BEGIN
    DELETE FROM report_card_days WHERE day >= first_day AND day < end_day;
    DELETE FROM report_decision_days WHERE day >= first_day AND day < end_day;
    DELETE FROM report_vcf_days WHERE day >= first_day AND day < end_day;
    DELETE FROM report_mme_days WHERE day >= first_day AND day < end_day;
    DELETE FROM report_missing_days WHERE day >= first_day AND day < end_day;
    INSERT INTO report_card_days SELECT * FROM report_card_days_rows(lo, hi);
    INSERT INTO report_decision_days SELECT * FROM report_decision_days_rows(lo, hi);
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

-- Folds what needs folding (see the top of this file); returns the number of days folded.
-- `settle`: how long after its end a day is folded; `in_flight`: how long a received feedback
-- row may take to commit (the refresher runs with 10 minutes). Must
-- run in a REPEATABLE READ transaction, so that the counts it checks and the rows it folds are
-- one snapshot; refreshers take turns on an advisory lock.
CREATE FUNCTION report_rollup_refresh(settle interval, in_flight interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    closed date := ((now() - settle) AT TIME ZONE 'UTC')::date;
    closed_at timestamptz := closed::timestamp AT TIME ZONE 'UTC';
    first_day date;
    seen timestamptz;
    folded integer := 0;
    run record;
BEGIN
    IF current_setting('transaction_isolation') <> 'repeatable read' THEN
        RAISE EXCEPTION 'report_rollup_refresh must run in a REPEATABLE READ transaction';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('orderguard.report_rollup'));
    -- A year of rows in one pass: give the joins memory rather than disk.
    SET LOCAL work_mem = '256MB';
    SELECT (min(evaluated_at) AT TIME ZONE 'UTC')::date INTO first_day FROM decisions;
    SELECT feedback_seen_until INTO seen FROM report_rollup_state;
    IF first_day IS NOT NULL AND first_day < closed THEN
        FOR run IN
            WITH counts AS (
                SELECT (evaluated_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
                  FROM decisions WHERE evaluated_at < closed_at GROUP BY 1),
            stale AS (
                SELECT g.day
                  FROM (SELECT s::date AS day
                          FROM generate_series(first_day, closed - 1, interval '1 day') s) g
                  LEFT JOIN report_rollup_days r ON r.day = g.day
                  LEFT JOIN counts c ON c.day = g.day
                 WHERE r.day IS NULL OR r.decisions <> coalesce(c.n, 0)
                UNION
                -- Cards answered since the last refresh (`in_flight` further back, for
                -- feedback that was received before it but committed after its snapshot).
                SELECT (f.evaluated_at AT TIME ZONE 'UTC')::date
                  FROM feedback fb JOIN findings f ON f.card_uuid = fb.card_uuid
                 WHERE seen IS NOT NULL AND fb.received_at >= seen - in_flight
                   AND f.evaluated_at < closed_at),
            islands AS (
                SELECT day, day - (row_number() OVER (ORDER BY day))::integer AS island
                  FROM stale)
            SELECT min(day) AS first_day, max(day) + 1 AS end_day
              FROM islands GROUP BY island ORDER BY 1
        LOOP
            PERFORM report_rollup_fold(run.first_day, run.end_day);
            folded := folded + (run.end_day - run.first_day);
        END LOOP;
    END IF;
    INSERT INTO report_rollup_state (only_row, feedback_seen_until) VALUES (true, now())
    ON CONFLICT (only_row) DO UPDATE SET feedback_seen_until = EXCLUDED.feedback_seen_until;
    RETURN folded;
END;
$$;

-- The longest run of folded days inside [win_from, win_to) that starts at the first folded day
-- on or after win_from's first whole day: the reports read the rollup for [lo, hi) and raw rows
-- for [win_from, lo) and [hi, win_to). No folded day: lo = hi = win_from (all raw).
CREATE FUNCTION report_rollup_span(win_from timestamptz, win_to timestamptz,
                                   OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE sql STABLE AS $$
    WITH bounds AS (
        SELECT (date_trunc('day', (win_from AT TIME ZONE 'UTC') - interval '1 microsecond')
                + interval '1 day')::date AS first_day,
               (win_to AT TIME ZONE 'UTC')::date AS end_day),
    folded AS (
        SELECT r.day, r.day - (row_number() OVER (ORDER BY r.day))::integer AS island
          FROM report_rollup_days r, bounds b
         WHERE r.day >= b.first_day AND r.day < b.end_day),
    first_island AS (
        SELECT min(day) AS first, max(day) + 1 AS last
          FROM folded GROUP BY island ORDER BY 1 LIMIT 1)
    SELECT coalesce((SELECT first FROM first_island)::timestamp AT TIME ZONE 'UTC', win_from),
           coalesce((SELECT last FROM first_island)::timestamp AT TIME ZONE 'UTC', win_from)
$$;
