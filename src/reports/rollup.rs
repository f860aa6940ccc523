//! Rollup-backed report SQL: the same reports as [`super::sql`], read from the daily rollup
//! tables for the folded days of the window and from the same rows computed raw for the rest
//! (migrations/20261202000001_report_rollups.sql and 20261202000002_report_rollup_fold.sql:
//! each table `T` is filled by the function `T_rows(lo, hi)`, which the live tail reads too, so
//! both give the same numbers).
//!
//! A report is read this way only when every filter it is given is one the rollup keeps
//! ([`serves`]); otherwise (a prescriber or encounter on a card report, a unit) the raw SQL
//! answers, and such filters are selective enough for the raw SQL to be fast.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use super::ReportName;
use super::query::{Filter, ReportQuery};

type Builder = QueryBuilder<Postgres>;

/// The folded part of a window: rollup rows for `[lo, hi)`, raw rows around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub lo: DateTime<Utc>,
    pub hi: DateTime<Utc>,
}

impl Span {
    fn lo_day(&self) -> NaiveDate {
        self.lo.date_naive()
    }

    fn hi_day(&self) -> NaiveDate {
        self.hi.date_naive()
    }
}

/// The filters the rollup can apply for `name`.
fn rollup_filters(name: ReportName) -> &'static [Filter] {
    use Filter::*;
    match name {
        ReportName::AlertBurden | ReportName::OverrideByRule | ReportName::SuggestionAcceptance => {
            &[Rule, Severity, PathwayVersion]
        }
        ReportName::OverrideByReason => &[Rule, Severity, Reason, PathwayVersion],
        ReportName::ByPrescriber | ReportName::VcfAdherence | ReportName::Mme => {
            &[User, PathwayVersion]
        }
        ReportName::ByEncounter => &[Encounter, PathwayVersion],
        ReportName::Augmentation => &[PathwayVersion],
        ReportName::MissingInputs => &[Rule, User, PathwayVersion],
    }
}

/// Whether the rollup can answer `query` for `name`.
pub(super) fn serves(name: ReportName, query: &ReportQuery) -> bool {
    let allowed = rollup_filters(name);
    query.filters.set().all(|(f, _)| allowed.contains(&f))
}

/// The folded span of `query`'s window (`report_rollup_span`).
pub(super) async fn span(
    conn: &mut sqlx::PgConnection,
    query: &ReportQuery,
) -> Result<Span, sqlx::Error> {
    let row = sqlx::query("SELECT lo, hi FROM report_rollup_span($1, $2)")
        .bind(query.from)
        .bind(query.to)
        .fetch_one(conn)
        .await?;
    Ok(Span {
        lo: row.try_get("lo")?,
        hi: row.try_get("hi")?,
    })
}

/// Days folded per transaction: a year's backfill commits as it goes (a failure loses at most
/// one chunk), and each transaction's snapshot and temporary memory stay small.
const FOLD_CHUNK_DAYS: i64 = 7;

/// Folds what needs folding (`report_rollup_stale`): days that ended more than `settle` ago,
/// days whose decisions changed, days with cards answered since the last refresh (looking
/// `in_flight` further back, for feedback committed after that refresh's snapshot). Returns the
/// number of days folded.
pub async fn refresh(
    pool: &PgPool,
    settle: std::time::Duration,
    in_flight: std::time::Duration,
) -> Result<i64, sqlx::Error> {
    refresh_with_progress(pool, settle, in_flight, |_, _| {}).await
}

/// Refreshes the rollups `first` from now, then every `every`, until aborted (the refresher
/// inside `serve`, which starts it a minute after start-up). A failed run is logged (the error
/// names no patient data) and retried at the next tick.
pub async fn run_refresher(
    pool: PgPool,
    first: std::time::Duration,
    every: std::time::Duration,
    settle: std::time::Duration,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let started = std::time::Instant::now();
        match refresh(&pool, settle, IN_FLIGHT).await {
            Ok(folded) => tracing::info!(
                folded_days = folded,
                ms = started.elapsed().as_millis() as u64,
                "report rollups refreshed"
            ),
            Err(error) => tracing::warn!(%error, "report rollup refresh failed"),
        }
    }
}

/// How long a received feedback row may take to commit: the refresh looks that far back
/// before the previous run's snapshot.
pub const IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(600);

/// [`refresh`], calling `progress(folded, to_fold)` (days) after each committed chunk.
///
/// Refreshers take turns on a session advisory lock held on one connection for the whole run.
/// The stale days are read in one REPEATABLE READ snapshot; each chunk is folded in its own
/// REPEATABLE READ transaction, which records its days' decision counts from the rows it folded,
/// so a decision committed between two chunks makes its day stale for the next refresh. The
/// feedback watermark moves to the time of the first snapshot only once every chunk committed.
pub async fn refresh_with_progress(
    pool: &PgPool,
    settle: std::time::Duration,
    in_flight: std::time::Duration,
    mut progress: impl FnMut(i64, i64),
) -> Result<i64, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(hashtext('orderguard.report_rollup'))")
        .execute(&mut *conn)
        .await?;
    let result = fold_stale(&mut conn, settle, in_flight, &mut progress).await;
    if result.is_ok() {
        sqlx::query("SELECT pg_advisory_unlock(hashtext('orderguard.report_rollup'))")
            .execute(&mut *conn)
            .await?;
    } else {
        // The session may still hold the lock (or an open transaction): close it, not pool it.
        drop(conn.detach());
    }
    result
}

async fn begin_repeatable_read(
    conn: &mut sqlx::PgConnection,
) -> Result<sqlx::Transaction<'_, Postgres>, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

async fn fold_stale(
    conn: &mut sqlx::PgConnection,
    settle: std::time::Duration,
    in_flight: std::time::Duration,
    progress: &mut impl FnMut(i64, i64),
) -> Result<i64, sqlx::Error> {
    let mut tx = begin_repeatable_read(conn).await?;
    let seen: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await?;
    let runs: Vec<(NaiveDate, NaiveDate)> = sqlx::query_as(
        "SELECT first_day, end_day FROM report_rollup_stale(\
         make_interval(secs => $1), make_interval(secs => $2))",
    )
    .bind(settle.as_secs_f64())
    .bind(in_flight.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;

    let to_fold: i64 = runs.iter().map(|(a, b)| (*b - *a).num_days()).sum();
    let mut folded = 0;
    for (first, end) in runs {
        let mut from = first;
        while from < end {
            let to = (from + chrono::Duration::days(FOLD_CHUNK_DAYS)).min(end);
            let mut tx = begin_repeatable_read(conn).await?;
            plan_for_whole_days(&mut tx).await?;
            for fold in [
                "SELECT report_rollup_fold($1, $2)",
                "SELECT report_encounter_totals_fold($1, $2)",
            ] {
                sqlx::query(fold)
                    .bind(from)
                    .bind(to)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            folded += (to - from).num_days();
            progress(folded, to_fold);
            from = to;
        }
    }
    if folded > 0 {
        // Fresh statistics for the report plans (a backfill adds millions of rows at once), and
        // the encounter totals vacuumed: their rows are rewritten by each fold, and the report
        // reads them by index only where the visibility map says a page is all visible.
        // (VACUUM runs alone: not in a transaction, nor in a query string of several.)
        for statement in [
            "ANALYZE report_card_days, report_decision_days, report_encounter_days, \
             report_vcf_days, report_mme_days, report_missing_days, report_rollup_days",
            "VACUUM (ANALYZE) report_encounter_totals",
        ] {
            sqlx::raw_sql(statement).execute(&mut *conn).await?;
        }
    }
    sqlx::query(
        "INSERT INTO report_rollup_state (only_row, feedback_seen_until) VALUES (true, $1) \
         ON CONFLICT (only_row) DO UPDATE SET feedback_seen_until = EXCLUDED.feedback_seen_until",
    )
    .bind(seen)
    .execute(&mut *conn)
    .await?;
    Ok(folded)
}

/// Plans the rest of the transaction for aggregating whole days: no nested-loop joins where
/// another join can do, no JIT, and room to hash in memory.
///
/// The rollup SQL joins findings to decisions on `(decision_id, evaluated_at)`, two columns
/// each nearly unique, and PostgreSQL multiplies their selectivities: it expects one card where
/// a day has 20,000, then joins the cards to their answers in a nested loop, 20,000 × 12,000
/// comparisons a day. At 10 million decisions that made one week's fold run for over 10
/// minutes; without nested loops it takes 18 s (README, Performance, Reports). Every join here
/// aggregates whole days, which hash joins serve well. The nested loops PostgreSQL cannot avoid
/// (a function scan per row) then carry its disable cost, which pushes the plan's cost past the
/// JIT threshold: compiling took 200–1,000 ms of a report of a few milliseconds, so JIT is off.
/// 64 MB lets a month's groups hash in memory instead of spilling (the by-encounter report has
/// one group per encounter).
pub(super) async fn plan_for_whole_days(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('enable_nestloop', 'off', true), set_config('jit', 'off', true), \
                set_config('work_mem', '64MB', true)",
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether [`body`] reads `name` from the encounter totals ([`by_encounter_totals`]).
fn reads_encounter_totals(name: ReportName, query: &ReportQuery) -> bool {
    name == ReportName::ByEncounter && query.filters.encounter.is_none()
}

/// `(SELECT * FROM <table> for the folded days UNION ALL <table>_rows for the rest)`. `table`
/// is one of this module's static names.
fn source(qb: &mut Builder, table: &'static str, span: &Span, query: &ReportQuery) {
    qb.push(format_args!("(SELECT * FROM {table} WHERE day >= "))
        .push_bind(span.lo_day())
        .push(" AND day < ")
        .push_bind(span.hi_day())
        .push(format_args!(" UNION ALL SELECT * FROM {table}_rows("))
        .push_bind(query.from)
        .push(", ")
        .push_bind(span.lo)
        .push(format_args!(") UNION ALL SELECT * FROM {table}_rows("))
        .push_bind(span.hi)
        .push(", ")
        .push_bind(query.to)
        .push("))");
}

/// `AND s.<column> = <value>` for each set filter among `filters` that the table has.
fn conditions(qb: &mut Builder, query: &ReportQuery, filters: &[Filter]) {
    for filter in filters {
        let Some(value) = query.filters.get(*filter) else {
            continue;
        };
        let column = match filter {
            Filter::Rule => "rule_id",
            Filter::Severity => "severity",
            Filter::User => "user_ref",
            Filter::Encounter => "encounter_ref",
            Filter::PathwayVersion => "pathway_version",
            Filter::Reason => "reason",
            // Never set here: `serves` refused them.
            Filter::Unit => continue,
        };
        qb.push(format_args!(" AND s.{column} = "))
            .push_bind(value.to_owned());
    }
}

const WEEK: &str = "date_trunc('week', s.day::timestamp)::date";

/// `weekly(week, calls)`: order-sign calls per week (decision filters: user, version).
fn weekly_calls(qb: &mut Builder, span: &Span, query: &ReportQuery) {
    qb.push(format_args!(
        "weekly AS (SELECT {WEEK} AS week, sum(s.decisions) AS calls FROM "
    ));
    source(qb, "report_decision_days", span, query);
    qb.push(" s WHERE s.hook = 'order-sign'");
    conditions(qb, query, &[Filter::User, Filter::PathwayVersion]);
    qb.push(" GROUP BY 1)");
}

/// Per rule: cards, answered, accepted, overridden, took (a suggestion accepted).
fn per_rule_answers(qb: &mut Builder, query: &ReportQuery, span: &Span) {
    qb.push(
        "SELECT s.rule_id, sum(s.cards) AS cards, \
                coalesce(sum(s.cards) FILTER (WHERE s.outcome IS NOT NULL), 0) AS answered, \
                coalesce(sum(s.cards) FILTER (WHERE s.outcome = 'accepted'), 0) AS accepted, \
                coalesce(sum(s.cards) FILTER (WHERE s.outcome = 'overridden'), 0) AS overridden, \
                coalesce(sum(s.cards) FILTER (WHERE s.took_suggestion), 0) AS took FROM ",
    );
    source(qb, "report_card_days", span, query);
    qb.push(" s WHERE true");
    conditions(qb, query, CARD_FILTERS);
    qb.push(" GROUP BY s.rule_id");
}

/// One row per prescriber or encounter (`dimension`: rollup table and column) of the rollup
/// that keeps decisions and card counts by that column.
fn by_dimension(
    qb: &mut Builder,
    span: &Span,
    query: &ReportQuery,
    (table, column): (&'static str, &'static str),
    filters: &[Filter],
) {
    qb.push(format_args!(
        "SELECT coalesce(dim, '(not carried)'), decisions::int8, cards::int8, \
                round(100.0 * cards / decisions, 2)::float8, answered::int8, \
                overridden::int8, \
                round(100.0 * overridden / NULLIF(answered, 0), 2)::float8, \
                critical::int8 \
         FROM (SELECT s.{column} AS dim, sum(s.decisions) AS decisions, sum(s.cards) AS cards, \
                sum(s.answered) AS answered, sum(s.overridden) AS overridden, \
                sum(s.critical) AS critical FROM "
    ));
    source(qb, table, span, query);
    qb.push(" s WHERE true");
    conditions(qb, query, filters);
    qb.push(format_args!(" GROUP BY s.{column}) t"));
}

/// The by-encounter report from each encounter's totals (`report_encounter_totals`,
/// migrations/20261202000003_report_encounter_totals.sql), for every encounter of the window.
///
/// An encounter whose folded days all lie in the span, with nothing in the raw tails, has the
/// window's numbers in its totals row: those rows are read in the report's order and limit from
/// an index, not summed (*inside*). The others are summed from their days (*edges*): encounters
/// that cross the span's first or last day (a GiST lookup on the day pair; a short stay's days
/// are read from the edge's first or last week, a long one's looked up or, when there are many,
/// hash-joined with the whole span's), those of more than one version when filtered by version, those with rows in the raw tails (their totals when inside, plus the
/// tail rows), and the decisions that carried no encounter. Both parts are sorted and limited
/// by the report's own order, then merged by [`super::sql::build_with`]'s.
/// A stay that crosses a window's edge and ends (or began) within this many days of it has its
/// window rows in that edge's first (or last) days.
const EDGE_DAYS: i32 = 7;

/// Up to this many long crossing encounters are looked up one by one (about 10 µs each);
/// more are hash-joined with all the span's encounter rows. 20,000 unless the database or
/// session sets `orderguard.report_lookup_limit` (tests set 0 to take the other branch).
const LOOKUP_LIMIT_SQL: &str =
    "coalesce(nullif(current_setting('orderguard.report_lookup_limit', true), '')::int8, 20000)";

fn by_encounter_totals(qb: &mut Builder, span: &Span, query: &ReportQuery) {
    let definition = super::sql::definition(ReportName::ByEncounter);
    let version = query.filters.pathway_version.clone();
    let (lo, hi) = (span.lo_day(), span.hi_day());
    let measures = "decisions, cards, answered, overridden, critical";
    // The raw tails, filtered by version; an empty one is not computed at all.
    qb.push(format_args!(
        "WITH tail AS MATERIALIZED (SELECT s.encounter_ref, {measures} FROM ("
    ));
    qb.push("SELECT * FROM report_encounter_days WHERE false");
    for (from, to) in [(query.from, span.lo), (span.hi, query.to)] {
        if from < to {
            qb.push(" UNION ALL SELECT * FROM report_encounter_days_rows(")
                .push_bind(from)
                .push(", ")
                .push_bind(to)
                .push(")");
        }
    }
    qb.push(") s WHERE true");
    conditions(qb, query, &[Filter::PathwayVersion]);
    // Whether totals row `t` holds its encounter's numbers for the window (its rows in the
    // tails aside).
    let inside = |qb: &mut Builder| {
        qb.push("t.first_day >= ")
            .push_bind(lo)
            .push(" AND t.last_day < ")
            .push_bind(hi);
        if let Some(v) = &version {
            qb.push(" AND t.pathway_version = ").push_bind(v.clone());
        }
    };
    // `t.days @> daterange(day - 1, day + 1)`: the encounter has folded days before `day` and
    // from `day` on.
    let crosses = |qb: &mut Builder, day: NaiveDate| {
        qb.push("t.days @> daterange(")
            .push_bind(day)
            .push(" - 1, ")
            .push_bind(day)
            .push(" + 1)");
    };
    // The span's days of the encounter rows `s`, filtered by version.
    let span_days = |qb: &mut Builder| {
        qb.push(" s.day >= ")
            .push_bind(lo)
            .push(" AND s.day < ")
            .push_bind(hi);
        conditions(qb, query, &[Filter::PathwayVersion]);
    };
    // The encounters to sum by day, by where their rows in the span can be: crossing its
    // first day and ending within a week (1: rows in its first week), crossing its last day
    // and beginning within a week of it (2: rows in its last week), the rest (3: long stays,
    // and those of several versions when filtered by version: rows anywhere in the span).
    qb.push("), crossing AS MATERIALIZED (SELECT t.encounter_ref, CASE");
    if version.is_some() {
        qb.push(" WHEN t.pathway_version IS NULL THEN 3");
    }
    qb.push(" WHEN ");
    crosses(qb, lo);
    qb.push(" AND t.last_day < ")
        .push_bind(lo)
        .push(format_args!(" + {EDGE_DAYS} THEN 1 WHEN "));
    crosses(qb, hi);
    qb.push(" AND t.first_day >= ")
        .push_bind(hi)
        .push(format_args!(
            " - {EDGE_DAYS} THEN 2 ELSE 3 END AS kind FROM report_encounter_totals t WHERE "
        ));
    crosses(qb, lo);
    qb.push(" OR ");
    crosses(qb, hi);
    if version.is_some() {
        qb.push(" OR (t.pathway_version IS NULL AND t.days && daterange(")
            .push_bind(lo)
            .push(", ")
            .push_bind(hi)
            .push("))");
    }
    // Kinds 1 and 2: the week's rows, hash-joined. Kind 3: each encounter's rows looked up
    // while they are few (OFFSET 0 keeps the lookup a lookup), else the span's rows
    // hash-joined; the count decides at run time, one branch runs.
    // The span's rows of the crossing encounters of `kind`, hash-joined, with `bound` (a
    // condition on `s.day`) appended.
    let joined = |qb: &mut Builder, kind: u8, bound: &dyn Fn(&mut Builder)| {
        qb.push(format_args!(
            "SELECT s.encounter_ref, {measures} FROM report_encounter_days s \
             JOIN crossing c ON c.encounter_ref = s.encounter_ref AND c.kind = {kind} WHERE"
        ));
        span_days(qb);
        bound(qb);
    };
    qb.push("), edge_rows AS (");
    joined(qb, 1, &|qb| {
        qb.push(" AND s.day < ")
            .push_bind(lo)
            .push(format_args!(" + {EDGE_DAYS}"));
    });
    qb.push(" UNION ALL ");
    joined(qb, 2, &|qb| {
        qb.push(" AND s.day >= ")
            .push_bind(hi)
            .push(format_args!(" - {EDGE_DAYS}"));
    });
    qb.push(format_args!(
        " UNION ALL SELECT x.* FROM crossing c, LATERAL (SELECT s.encounter_ref, {measures} \
         FROM report_encounter_days s WHERE s.encounter_ref = c.encounter_ref AND"
    ));
    span_days(qb);
    qb.push(format_args!(
        " OFFSET 0) x WHERE c.kind = 3 \
         AND (SELECT count(*) FROM crossing WHERE kind = 3) <= {LOOKUP_LIMIT_SQL}"
    ));
    qb.push(" UNION ALL ");
    joined(qb, 3, &|qb| {
        qb.push(format_args!(
            " AND (SELECT count(*) FROM crossing WHERE kind = 3) > {LOOKUP_LIMIT_SQL}"
        ));
    });
    // Inside encounters that also have tail rows: their totals, looked up one by one (a tail
    // is at most a day or two of encounters; OFFSET 0 keeps the lookup from becoming a hash
    // join over every encounter's totals). None when nothing of the window is folded.
    if lo < hi {
        qb.push(format_args!(
            " UNION ALL SELECT x.* FROM (SELECT DISTINCT encounter_ref FROM tail \
                                         WHERE encounter_ref IS NOT NULL) e, \
               LATERAL (SELECT t.encounter_ref, {measures} FROM report_encounter_totals t \
                         WHERE t.encounter_ref = e.encounter_ref AND "
        ));
        inside(qb);
        qb.push(" OFFSET 0) x");
    }
    qb.push(format_args!(
        " UNION ALL SELECT s.encounter_ref, {measures} FROM report_encounter_days s \
          WHERE s.encounter_ref IS NULL AND"
    ));
    span_days(qb);
    qb.push(format_args!(
        " UNION ALL SELECT encounter_ref, {measures} FROM tail), \
         edges AS (SELECT coalesce(encounter_ref, '(not carried)') AS encounter_ref, \
                sum(decisions)::int8 AS decisions, sum(cards)::int8 AS cards, \
                sum(answered)::int8 AS answered, sum(overridden)::int8 AS overridden, \
                sum(critical)::int8 AS critical FROM edge_rows GROUP BY 1) "
    ));
    // Inside: one totals row each, read in the report's order.
    qb.push(
        "(SELECT t.encounter_ref AS encounter_ref, t.decisions AS decisions, t.cards AS cards, \
                t.cards_per_100_decisions AS cards_per_100_decisions, t.answered AS answered, \
                t.overridden AS overridden, t.override_rate AS override_rate, \
                t.critical AS critical_cards \
         FROM report_encounter_totals t WHERE ",
    );
    inside(qb);
    qb.push(
        " AND t.encounter_ref NOT IN (SELECT encounter_ref FROM tail \
                                       WHERE encounter_ref IS NOT NULL) ",
    );
    super::sql::order_and_limit(qb, definition, query);
    qb.push(
        ") UNION ALL (SELECT encounter_ref, decisions, cards, \
                round(100.0 * cards / decisions, 2)::float8 AS cards_per_100_decisions, \
                answered, overridden, \
                round(100.0 * overridden / NULLIF(answered, 0), 2)::float8 AS override_rate, \
                critical AS critical_cards FROM edges ",
    );
    super::sql::order_and_limit(qb, definition, query);
    qb.push(")");
}

const CARD_FILTERS: &[Filter] = &[
    Filter::Rule,
    Filter::Severity,
    Filter::Reason,
    Filter::PathwayVersion,
];

/// The rollup body of `name` (only called when [`serves`] holds).
pub(super) fn body(name: ReportName, qb: &mut Builder, query: &ReportQuery, span: &Span) {
    match name {
        ReportName::AlertBurden => {
            qb.push("WITH ");
            weekly_calls(qb, span, query);
            qb.push(format_args!(
                ", cards AS (SELECT {WEEK} AS week, s.rule_id, s.severity, sum(s.cards) AS cards \
                 FROM "
            ));
            source(qb, "report_card_days", span, query);
            qb.push(" s WHERE s.hook = 'order-sign'");
            conditions(qb, query, CARD_FILTERS);
            qb.push(
                " GROUP BY 1, 2, 3) \
                 SELECT c.week, c.rule_id, c.severity, c.cards::int8, w.calls::int8, \
                        round(100.0 * c.cards / w.calls, 2)::float8 \
                 FROM cards c JOIN weekly w ON w.week = c.week",
            );
        }
        ReportName::OverrideByRule => {
            qb.push(
                "SELECT rule_id, cards::int8, answered::int8, accepted::int8, overridden::int8, \
                        round(100.0 * overridden / NULLIF(answered, 0), 2)::float8 FROM (",
            );
            per_rule_answers(qb, query, span);
            qb.push(") t");
        }
        ReportName::SuggestionAcceptance => {
            qb.push(
                "SELECT rule_id, cards::int8, answered::int8, took::int8, \
                        round(100.0 * took / NULLIF(answered, 0), 2)::float8 FROM (",
            );
            per_rule_answers(qb, query, span);
            qb.push(") t");
        }
        ReportName::OverrideByReason => {
            qb.push(
                "SELECT rule_id, coalesce(reason, '(no reason given)'), overrides::int8, \
                        round(100.0 * overrides / sum(overrides) OVER (PARTITION BY rule_id), 2)::float8 \
                 FROM (SELECT s.rule_id, s.reason, sum(s.cards) AS overrides FROM ",
            );
            source(qb, "report_card_days", span, query);
            qb.push(" s WHERE s.outcome = 'overridden'");
            conditions(qb, query, CARD_FILTERS);
            qb.push(" GROUP BY s.rule_id, s.reason) t");
        }
        ReportName::ByPrescriber => by_dimension(
            qb,
            span,
            query,
            ("report_decision_days", "user_ref"),
            &[Filter::User, Filter::PathwayVersion],
        ),
        // One encounter asked for: its days are few.
        ReportName::ByEncounter if !reads_encounter_totals(name, query) => by_dimension(
            qb,
            span,
            query,
            ("report_encounter_days", "encounter_ref"),
            &[Filter::Encounter, Filter::PathwayVersion],
        ),
        ReportName::ByEncounter => by_encounter_totals(qb, span, query),
        ReportName::VcfAdherence => {
            qb.push("WITH ");
            weekly_calls(qb, span, query);
            qb.push(format_args!(
                ", flagged AS (SELECT {WEEK} AS week, \
                        sum(s.calls) FILTER (WHERE s.antiop) AS antiop, \
                        sum(s.calls) FILTER (WHERE s.calcium) AS calcium, \
                        sum(s.calls) FILTER (WHERE s.vitamin_d) AS vitamin_d FROM "
            ));
            source(qb, "report_vcf_days", span, query);
            qb.push(" s WHERE true");
            conditions(qb, query, &[Filter::User, Filter::PathwayVersion]);
            qb.push(" GROUP BY 1) SELECT w.week, w.calls::int8");
            for column in ["antiop", "calcium", "vitamin_d"] {
                qb.push(format_args!(", coalesce(f.{column}, 0)::int8"));
            }
            for column in ["antiop", "calcium", "vitamin_d"] {
                qb.push(format_args!(
                    ", round(100.0 * coalesce(f.{column}, 0) / w.calls, 2)::float8"
                ));
            }
            qb.push(" FROM weekly w LEFT JOIN flagged f ON f.week = w.week");
        }
        ReportName::Augmentation => {
            qb.push(
                "SELECT week, cards::int8, answered::int8, overridden::int8, accepted::int8, \
                        round(100.0 * overridden / NULLIF(answered, 0), 2)::float8, \
                        report_percentile_cont(0.5, vals, counts) \
                 FROM (SELECT ",
            );
            qb.push(format_args!(
                "{WEEK} AS week, sum(s.cards) AS cards, \
                        coalesce(sum(s.cards) FILTER (WHERE s.outcome IS NOT NULL), 0) AS answered, \
                        coalesce(sum(s.cards) FILTER (WHERE s.outcome = 'overridden'), 0) AS overridden, \
                        coalesce(sum(s.cards) FILTER (WHERE s.outcome = 'accepted'), 0) AS accepted, \
                        array_agg(s.fracture_days) AS vals, array_agg(s.cards) AS counts FROM "
            ));
            source(qb, "report_card_days", span, query);
            qb.push(" s WHERE s.rule_id = 'VCF-AUGMENT-TIMING'");
            conditions(qb, query, &[Filter::PathwayVersion]);
            qb.push(" GROUP BY 1) t");
        }
        ReportName::Mme => {
            qb.push("WITH ");
            weekly_calls(qb, span, query);
            // Each week's distinct MME values with their calls first: the percentiles then sort
            // a few hundred values a week, not one per prescriber and day.
            qb.push(format_args!(
                ", m AS (SELECT week, sum(calls) FILTER (WHERE mme >= 50) AS c50, \
                        sum(calls) FILTER (WHERE mme >= 90) AS c90, \
                        array_agg(mme) AS vals, array_agg(calls) AS counts, \
                        max(mme) AS mme_max \
                 FROM (SELECT {WEEK} AS week, s.mme, sum(s.calls)::int8 AS calls FROM "
            ));
            source(qb, "report_mme_days", span, query);
            qb.push(" s WHERE true");
            conditions(qb, query, &[Filter::User, Filter::PathwayVersion]);
            qb.push(
                " GROUP BY 1, 2) w GROUP BY week) \
                 SELECT w.week, w.calls::int8, coalesce(m.c50, 0)::int8, coalesce(m.c90, 0)::int8, \
                        round(100.0 * coalesce(m.c50, 0) / w.calls, 2)::float8, \
                        round(100.0 * coalesce(m.c90, 0) / w.calls, 2)::float8, \
                        report_percentile_cont(0.5, m.vals, m.counts), \
                        report_percentile_cont(0.9, m.vals, m.counts), m.mme_max \
                 FROM weekly w LEFT JOIN m ON m.week = w.week",
            );
        }
        ReportName::MissingInputs => {
            // Summed per input and rule list first: the rule lists are then taken apart once
            // per distinct list, not once per prescriber and day.
            qb.push("WITH m AS (SELECT s.input, s.rules, sum(s.decisions) AS decisions FROM ");
            source(qb, "report_missing_days", span, query);
            qb.push(" s WHERE true");
            conditions(qb, query, &[Filter::User, Filter::PathwayVersion]);
            if let Some(rule) = &query.filters.rule {
                qb.push(" AND s.rules ? ").push_bind(rule.clone());
            }
            qb.push(" GROUP BY s.input, s.rules), total AS (SELECT sum(s.decisions) AS n FROM ");
            source(qb, "report_decision_days", span, query);
            qb.push(" s WHERE true");
            conditions(qb, query, &[Filter::User, Filter::PathwayVersion]);
            qb.push(
                "), r AS (SELECT input, string_agg(DISTINCT rule, ', ' ORDER BY rule) AS rules \
                 FROM m, jsonb_array_elements_text(m.rules) rule GROUP BY input) \
                 SELECT m.input, r.rules, sum(m.decisions)::int8, \
                        round(100.0 * sum(m.decisions) \
                              / NULLIF((SELECT n FROM total), 0), 2)::float8 \
                 FROM m LEFT JOIN r ON r.input = m.input GROUP BY m.input, r.rules",
            );
        }
    }
}
