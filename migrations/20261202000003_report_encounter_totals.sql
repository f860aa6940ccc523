-- Report rollups, third step: each encounter's totals, kept up to date by the fold, so the
-- by-encounter report reads one row per encounter instead of summing its days.
--
-- Measured at 10 million decisions (README, Performance, Reports): 30 days hold 731,495
-- encounters, and summing their 818,672 encounter-day rows took 1.1-1.5 s before any sorting;
-- the report took 2.8-4.0 s, a year 24.5 s. An encounter lasts days, not months, so most
-- encounters of a window lie wholly inside it, and for those the window's sum is the
-- encounter's total over every folded day. The report (src/reports/rollup.rs,
-- `by_encounter_totals`) reads those totals as they are, in the order of an index, and sums
-- days only for the few encounters that cross the window's edges or have rows not yet folded.

-- The days of one encounter, for summing an edge encounter's days within a window and for
-- recomputing an encounter's totals after a fold.
CREATE INDEX report_encounter_days_encounter_idx ON report_encounter_days (encounter_ref, day);

-- One row per encounter over every folded day (decisions that carried no encounter are not
-- here: the report sums their days, one row per day). `pathway_version` is the encounter's
-- version when all its decisions share one, NULL when they do not (then a report filtered by
-- version sums its days). The derived columns are stored so that sorting by them reads a
-- number, not a division per row.
CREATE TABLE report_encounter_totals (
    encounter_ref           text    PRIMARY KEY,
    pathway_version         text,
    first_day               date    NOT NULL,
    last_day                date    NOT NULL,
    decisions               bigint  NOT NULL CHECK (decisions > 0),
    cards                   bigint  NOT NULL,
    answered                bigint  NOT NULL,
    overridden              bigint  NOT NULL,
    critical                bigint  NOT NULL,
    days                    daterange GENERATED ALWAYS AS (daterange(first_day, last_day, '[]')) STORED,
    cards_per_100_decisions float8  GENERATED ALWAYS AS
                                    (round(100.0 * cards / decisions, 2)::float8) STORED,
    override_rate           float8  GENERATED ALWAYS AS
                                    (round(100.0 * overridden / NULLIF(answered, 0), 2)::float8) STORED,
    CHECK (first_day <= last_day)
);

-- The report's default order (most cards first, then by encounter), covering everything the
-- report and its window test read: the first rows of a window come from an index-only scan.
CREATE INDEX report_encounter_totals_cards_idx ON report_encounter_totals
    (cards DESC NULLS LAST, encounter_ref)
    INCLUDE (first_day, last_day, pathway_version, decisions, answered, overridden, critical,
             cards_per_100_decisions, override_rate);
-- The encounters wholly inside a window, for any other order (read in full, then sorted).
CREATE INDEX report_encounter_totals_first_day_idx ON report_encounter_totals (first_day)
    INCLUDE (encounter_ref, last_day, pathway_version, decisions, cards, answered, overridden, critical,
             cards_per_100_decisions, override_rate);
-- The encounters that cross a given day (`days @> daterange(d - 1, d + 1)`): a window's edges.
CREATE INDEX report_encounter_totals_days_idx ON report_encounter_totals USING gist (days);
-- Encounters of more than one pathway version, for a report filtered by version.
CREATE INDEX report_encounter_totals_mixed_idx ON report_encounter_totals USING gist (days)
    WHERE pathway_version IS NULL;

-- The totals of `encounters`, from their folded days.
CREATE FUNCTION report_encounter_totals_of(encounters text[])
RETURNS TABLE (encounter_ref text, pathway_version text, first_day date, last_day date,
               decisions bigint, cards bigint, answered bigint, overridden bigint,
               critical bigint)
LANGUAGE sql STABLE AS $$
    SELECT e.encounter_ref,
           CASE WHEN min(e.pathway_version) = max(e.pathway_version)
                THEN min(e.pathway_version) END,
           min(e.day), max(e.day), sum(e.decisions), sum(e.cards), sum(e.answered),
           sum(e.overridden), sum(e.critical)
      FROM report_encounter_days e
     WHERE e.encounter_ref = ANY (encounters)
     GROUP BY e.encounter_ref
$$;

-- Brings the totals up to date after `report_rollup_fold(lo_day, hi_day)` replaced those
-- days' encounter rows, in the same transaction: the encounters with rows in the days now,
-- and those whose totals reached into them before, are recomputed from all their days.
-- Nested loops on: each touched encounter is a few index lookups, where a hash join would read
-- every encounter's days (the fold itself plans with nested loops off).
CREATE FUNCTION report_encounter_totals_fold(lo_day date, hi_day date) RETURNS void
LANGUAGE plpgsql SET enable_nestloop = on AS $$
DECLARE
    touched text[];
BEGIN
    SELECT array_agg(DISTINCT t.encounter_ref) INTO touched
      FROM (SELECT e.encounter_ref FROM report_encounter_days e
             WHERE e.day >= lo_day AND e.day < hi_day AND e.encounter_ref IS NOT NULL
            UNION ALL
            SELECT o.encounter_ref FROM report_encounter_totals o
             WHERE o.days && daterange(lo_day, hi_day)) t;
    IF touched IS NULL THEN
        RETURN;
    END IF;
    DELETE FROM report_encounter_totals o WHERE o.encounter_ref = ANY (touched);
    INSERT INTO report_encounter_totals (encounter_ref, pathway_version, first_day, last_day,
                                         decisions, cards, answered, overridden, critical)
    SELECT * FROM report_encounter_totals_of(touched);
END;
$$;

-- A database folded before this migration: totals from the rows already folded.
INSERT INTO report_encounter_totals (encounter_ref, pathway_version, first_day, last_day,
                                     decisions, cards, answered, overridden, critical)
SELECT e.encounter_ref,
       CASE WHEN min(e.pathway_version) = max(e.pathway_version) THEN min(e.pathway_version) END,
       min(e.day), max(e.day), sum(e.decisions), sum(e.cards), sum(e.answered),
       sum(e.overridden), sum(e.critical)
  FROM report_encounter_days e
 WHERE e.encounter_ref IS NOT NULL
 GROUP BY e.encounter_ref;
