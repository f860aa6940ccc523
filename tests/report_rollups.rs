//! The rollup-backed reports give exactly the numbers of the raw report SQL: decisions seeded
//! through the real engine and audit writer (`demo seed`) into a real PostgreSQL, the rollups
//! folded (`db refresh-rollups`), then every report compared with its raw computation over
//! day-aligned and ragged windows and with each filter the rollup serves; again after late
//! feedback and a late decision (a spool replay) on folded days.

#[path = "common/demo.rs"]
mod demo_support;
use chrono::{DateTime, Duration, DurationRound, Utc};
use demo_support::demo_writer;
use orderguard::audit::{AuditWriter, FeedbackOutcome, FeedbackRecord};
use orderguard::reports::{self, Direction, ReportName, ReportQuery, SortKey, Source};
use sqlx::PgPool;
use uuid::Uuid;

async fn seed(pool: &PgPool, now: DateTime<Utc>) -> (AuditWriter, tempfile::TempDir) {
    let (writer, spool) = demo_writer(pool).await;
    let mut options = orderguard::demo::SeedOptions::new(1200, 40, now);
    // Few prescribers and encounters, so that per-prescriber rows add several decisions up.
    options.prescribers = 8;
    options.encounters = 200;
    demo_decisions(&writer, &options).await;
    (writer, spool)
}

/// Decisions by the real engine through `writer` (`demo seed`).
async fn demo_decisions(writer: &AuditWriter, options: &orderguard::demo::SeedOptions) {
    orderguard::demo::seed(
        orderguard::pathway::Plan::builtin(),
        writer,
        options,
        |_| {},
    )
    .await
    .unwrap();
}

/// Every report, over each window and filter given, Auto (rollup) against Raw.
async fn compare_all(pool: &PgPool, now: DateTime<Utc>) -> usize {
    let day = now.duration_trunc(Duration::days(1)).unwrap();
    let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = vec![
        // The default: the last 30 days up to now (folded days, then today raw).
        (now - Duration::days(30), now),
        // Whole days, all folded.
        (day - Duration::days(41), day - Duration::days(1)),
        // Ragged ends: partial first and last days read raw.
        (
            day - Duration::days(20) + Duration::hours(9),
            day - Duration::days(3) + Duration::minutes(13 * 60 + 7),
        ),
        // Inside one day.
        (
            day - Duration::days(5) + Duration::hours(8),
            day - Duration::days(5) + Duration::hours(15),
        ),
    ];
    let user = first(pool, "SELECT user_ref FROM decisions ORDER BY 1 LIMIT 1").await;
    let encounter = first(
        pool,
        "SELECT encounter_ref FROM decisions GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    )
    .await;
    let rule = first(
        pool,
        "SELECT rule_id FROM findings GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    .await;
    let missing_rule = first(
        pool,
        "SELECT r FROM decisions, jsonb_array_elements(missing_inputs) e, \
         jsonb_array_elements_text(e->'rules') r GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    .await;
    let reason = first(
        pool,
        "SELECT override_reason_code FROM feedback WHERE override_reason_code IS NOT NULL \
         GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    .await;
    let versions: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT pathway_version FROM decisions ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut compared = 0;
    for name in ReportName::ALL {
        let mut filter_sets: Vec<Vec<(&str, String)>> = vec![vec![]];
        for (param, value) in [
            ("rule", &rule),
            ("severity", &"warning".to_owned()),
            ("user", &user),
            ("encounter", &encounter),
            ("reason", &reason),
        ]
        .into_iter()
        .chain(versions.iter().map(|v| ("pathway_version", v)))
        {
            let filter = reports::Filter::ALL
                .iter()
                .find(|f| f.param() == param)
                .unwrap();
            if name.filters().contains(filter) {
                let value = if *name == ReportName::MissingInputs && param == "rule" {
                    missing_rule.clone()
                } else {
                    value.clone()
                };
                filter_sets.push(vec![(param, value)]);
            }
        }
        for (from, to) in &windows {
            for filters in &filter_sets {
                let mut query = ReportQuery::last_days(now);
                query.from = *from;
                query.to = *to;
                query.limit = ReportQuery::MAX_LIMIT;
                for (param, value) in filters {
                    let filter = reports::Filter::ALL
                        .iter()
                        .find(|f| f.param() == *param)
                        .unwrap();
                    *query.filters.slot(*filter) = Some(value.clone());
                }
                let raw = assert_rollup_is_raw(
                    pool,
                    *name,
                    &query,
                    format!("{name} from {from} to {to} with {filters:?}"),
                )
                .await;
                compared += usize::from(!raw.rows.is_empty());
                // The per-encounter and per-prescriber reports limit parts of their answer
                // before merging them: each column's order, both ways, a few rows.
                if matches!(name, ReportName::ByEncounter | ReportName::ByPrescriber) {
                    for column in name.columns() {
                        for direction in [Direction::Asc, Direction::Desc] {
                            let mut sorted = query.clone();
                            sorted.limit = 7;
                            sorted.sort = vec![SortKey {
                                column: column.name.clone(),
                                direction,
                            }];
                            assert_rollup_is_raw(
                                pool,
                                *name,
                                &sorted,
                                format!(
                                    "{name} from {from} to {to} with {filters:?} sorted by {} \
                                     {direction:?}",
                                    column.name
                                ),
                            )
                            .await;
                        }
                    }
                }
            }
        }
    }
    compared
}

/// Runs `name` over `query` from the rollup and raw, asserts the rows are equal (`what` names
/// the case), and returns the raw table.
async fn assert_rollup_is_raw(
    pool: &PgPool,
    name: ReportName,
    query: &ReportQuery,
    what: String,
) -> reports::ReportTable {
    let rollup = reports::run_from(pool, name, query, Source::Auto)
        .await
        .unwrap();
    let raw = reports::run_from(pool, name, query, Source::Raw)
        .await
        .unwrap();
    assert_eq!(
        rollup.rows, raw.rows,
        "{what}: rollup (left) and raw differ"
    );
    raw
}

async fn first(pool: &PgPool, sql: &'static str) -> String {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn refresh(pool: &PgPool) -> i64 {
    reports::refresh(pool, std::time::Duration::ZERO, std::time::Duration::ZERO)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn rollup_backed_reports_equal_the_raw_computation(pool: PgPool) {
    let now = Utc::now();
    let (writer, _spool) = seed(&pool, now).await;

    // Nothing folded yet: every report reads the raw rows through the rollup functions.
    assert!(compare_all(&pool, now).await > 40);

    // Fold every closed day; today stays raw.
    let folded = refresh(&pool).await;
    assert!(folded >= 30, "folded {folded} days");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM report_card_days")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(rows > 0);
    assert_eq!(refresh(&pool).await, 0, "nothing changed, nothing to fold");
    assert!(compare_all(&pool, now).await > 40);

    // Late feedback on a folded day: a card of ten days ago overridden now (its latest answer).
    let (card, decision_id, evaluated_at): (Uuid, Uuid, DateTime<Utc>) = sqlx::query_as(
        "SELECT card_uuid, decision_id, evaluated_at FROM findings \
         WHERE card_uuid IS NOT NULL AND severity = 'warning' AND evaluated_at < now() - interval '10 days' \
         ORDER BY evaluated_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    writer
        .record_feedback(FeedbackRecord {
            card_uuid: card,
            decision_id: Some(decision_id),
            outcome: FeedbackOutcome::Overridden,
            accepted_suggestions: vec![],
            override_reason_code: Some("patient-declined".into()),
            override_comment: None,
            outcome_at: Utc::now(),
            client_id: None,
        })
        .await
        .unwrap();
    // A late decision on a folded day (as a spool replay after an outage writes it).
    let (late_writer, _late_spool) = demo_writer(&pool).await;
    let mut options = orderguard::demo::SeedOptions::new(3, 1, evaluated_at);
    options.seed = 7;
    demo_decisions(&late_writer, &options).await;
    late_writer.shutdown().await;
    writer.shutdown().await;
    let refolded = refresh(&pool).await;
    assert!(
        (1..=3).contains(&refolded),
        "the late rows' days are refolded: {refolded}"
    );
    assert!(compare_all(&pool, now).await > 40);

    // Another pathway version on folded days of some encounters (as after a pathway update),
    // copied from their decisions: those encounters are of two versions now, and a report
    // filtered by either version sums their days.
    let copied = sqlx::query(
        "INSERT INTO decisions SELECT (jsonb_populate_record(NULL::decisions, to_jsonb(d) \
             || jsonb_build_object('decision_id', gen_random_uuid(), \
                                   'pathway_version', 'test-next'))).* \
           FROM (SELECT * FROM decisions WHERE evaluated_at < now() - interval '2 days' \
                 ORDER BY evaluated_at DESC LIMIT 12) d",
    )
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(copied, 12);
    // Long stays: decisions of some encounters copied 12 days earlier, so those encounters
    // span more than a week and cross the windows' edges far from their ends.
    let stretched = sqlx::query(
        "INSERT INTO decisions SELECT (jsonb_populate_record(NULL::decisions, to_jsonb(d) \
             || jsonb_build_object('decision_id', gen_random_uuid(), \
                                   'evaluated_at', d.evaluated_at - interval '12 days'))).* \
           FROM (SELECT * FROM decisions WHERE evaluated_at < now() - interval '3 days' \
                   AND evaluated_at > now() - interval '10 days' \
                 ORDER BY decision_id LIMIT 40) d",
    )
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(stretched, 40);
    assert!(refresh(&pool).await >= 1);
    let long: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM report_encounter_totals WHERE last_day - first_day > 7",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(long >= 5, "only {long} encounters longer than a week");
    let mixed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM report_encounter_totals WHERE pathway_version IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(mixed >= 1, "no encounter of two versions");
    // Long crossing stays looked up one by one (few), then hash-joined with the span's rows
    // (as when there are many).
    assert!(compare_all(&pool, now).await > 40);
    sqlx::query(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET orderguard.report_lookup_limit = %L', \
                                    current_database(), '0'); END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    let hashing = PgPool::connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    let limit: String =
        sqlx::query_scalar("SELECT current_setting('orderguard.report_lookup_limit')")
            .fetch_one(&hashing)
            .await
            .unwrap();
    assert_eq!(limit, "0");
    assert!(compare_all(&hashing, now).await > 40);
    hashing.close().await;
}

/// The refresher `serve` runs folds the closed days by itself, and a refresh that finds its
/// lock taken waits its turn rather than folding beside it.
#[sqlx::test(migrations = "./migrations")]
async fn the_service_refresher_folds_closed_days_and_takes_turns(pool: PgPool) {
    let now = Utc::now();
    let (writer, _spool) = demo_writer(&pool).await;
    let options = orderguard::demo::SeedOptions::new(60, 10, now);
    demo_decisions(&writer, &options).await;
    writer.shutdown().await;

    // Another refresher holds the lock: nothing is folded while it does.
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('orderguard.report_rollup'))")
        .execute(&mut *holder)
        .await
        .unwrap();
    let refresher = tokio::spawn(reports::run_refresher(
        pool.clone(),
        std::time::Duration::ZERO,
        std::time::Duration::from_millis(200),
        std::time::Duration::ZERO,
    ));
    let folded_days = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM report_rollup_days")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(
        folded_days().await,
        0,
        "folded while another refresher held the lock"
    );
    sqlx::query("SELECT pg_advisory_unlock(hashtext('orderguard.report_rollup'))")
        .execute(&mut *holder)
        .await
        .unwrap();

    // Every day from the first decision's to yesterday, days without decisions included.
    let closed_days: i64 = sqlx::query_scalar(
        "SELECT ((now() AT TIME ZONE 'UTC')::date - (min(evaluated_at) AT TIME ZONE 'UTC')::date)::int8 \
         FROM decisions",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(closed_days >= 5, "the seed spans {closed_days} closed days");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while folded_days().await < closed_days {
        assert!(
            std::time::Instant::now() < deadline,
            "the refresher folded {} days in 30 s",
            folded_days().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    refresher.abort();
    // Everything before today is folded, nothing of today.
    let last: chrono::NaiveDate = sqlx::query_scalar("SELECT max(day) FROM report_rollup_days")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(last, now.date_naive() - Duration::days(1));
    assert_eq!(folded_days().await, closed_days);
}
