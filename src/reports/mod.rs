//! Reports over the audit tables for quality teams: SQL only, no HTTP. The service renders them
//! as JSON and CSV (`/v1/reports/{name}`), the CLI as a table, CSV or JSON (`orderguard report`),
//! and the `/reports` page as HTML tables and SVG charts.
//!
//! Every report has a time window (`from` inclusive, `to` exclusive, on the decision's
//! evaluation time), filters, a sort over any of its columns and a row limit. Filter values are
//! bound parameters (`QueryBuilder::push_bind`), never spliced into SQL; sort columns are matched
//! against the report's own column list and only that static name is written into the SQL.

mod query;
mod rollup;
mod sql;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

pub use query::{Direction, Filter, Filters, QueryError, ReportQuery, SortKey, parse_time};
pub use rollup::{IN_FLIGHT, refresh, refresh_with_progress, run_refresher};

/// The reports there are. `as_str` is the name in URLs and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportName {
    /// Cards per 100 order-sign calls, by week, rule and severity.
    AlertBurden,
    /// Of the cards answered, the share overridden, by rule.
    OverrideByRule,
    /// Overrides by rule and reason code.
    OverrideByReason,
    /// Of the cards answered, the share where a suggestion was accepted, by rule.
    SuggestionAcceptance,
    /// Decisions, cards and overrides by prescriber (user reference).
    ByPrescriber,
    /// Decisions, cards and overrides by encounter.
    ByEncounter,
    /// Order-sign calls flagged for missing anti-osteoporosis therapy, calcium, vitamin D.
    VcfAdherence,
    /// Vertebral augmentation before 90 days, and whether overridden.
    Augmentation,
    /// Opioid MME/day: distribution and the share of calls at ≥ 50 and ≥ 90.
    Mme,
    /// What the pathway could not check, by missing input.
    MissingInputs,
}

impl ReportName {
    pub const ALL: &'static [ReportName] = &[
        ReportName::AlertBurden,
        ReportName::OverrideByRule,
        ReportName::OverrideByReason,
        ReportName::SuggestionAcceptance,
        ReportName::ByPrescriber,
        ReportName::ByEncounter,
        ReportName::VcfAdherence,
        ReportName::Augmentation,
        ReportName::Mme,
        ReportName::MissingInputs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportName::AlertBurden => "alert-burden",
            ReportName::OverrideByRule => "override-by-rule",
            ReportName::OverrideByReason => "override-by-reason",
            ReportName::SuggestionAcceptance => "suggestion-acceptance",
            ReportName::ByPrescriber => "by-prescriber",
            ReportName::ByEncounter => "by-encounter",
            ReportName::VcfAdherence => "vcf-adherence",
            ReportName::Augmentation => "augmentation",
            ReportName::Mme => "mme",
            ReportName::MissingInputs => "missing-inputs",
        }
    }

    pub fn parse(name: &str) -> Option<ReportName> {
        Self::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    /// What the report shows, for page headings and `--help`.
    pub fn title(self) -> &'static str {
        self.definition().title
    }

    /// The columns, in order.
    pub fn columns(self) -> Vec<Column> {
        self.definition()
            .columns
            .iter()
            .map(|(name, kind, label)| Column {
                name: (*name).to_owned(),
                kind: *kind,
                label: (*label).to_owned(),
            })
            .collect()
    }

    /// The filters this report applies; any other given is refused (400), not ignored.
    pub fn filters(self) -> &'static [Filter] {
        self.definition().filters
    }

    fn definition(self) -> &'static sql::Definition {
        sql::definition(self)
    }
}

impl std::fmt::Display for ReportName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a column's values are typed, for rendering and charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Text,
    Integer,
    /// A decimal number.
    Number,
    /// A percentage, 0 to 100 (not a fraction), rounded to two decimals.
    Percent,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// The Monday (UTC) starting an ISO week, `YYYY-MM-DD`: the x axis of a trend.
    Week,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// The name to sort and filter by; stable.
    pub name: String,
    pub kind: ColumnKind,
    /// A heading for people.
    pub label: String,
}

/// A report's result: columns, then rows with one JSON value per column (`null` when absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportTable {
    pub name: ReportName,
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl ReportTable {
    /// The index of the column called `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// CSV with a header row of column names (RFC 4180 quoting by the `csv` crate). Cells that
    /// a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) are prefixed with `'`.
    pub fn to_csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(self.columns.iter().map(|c| c.name.as_str()))?;
        for row in &self.rows {
            out.write_record(row.iter().map(|v| match v {
                Value::Null => String::new(),
                Value::String(s) => spreadsheet_safe(s),
                other => other.to_string(),
            }))?;
        }
        out.into_inner().map_err(|e| e.into_error().into())
    }
}

fn spreadsheet_safe(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(
        "the report did not finish in its time limit and was cancelled; narrow the window or add filters"
    )]
    TooSlow,
    #[error("reading the audit database: {0}")]
    Database(#[from] sqlx::Error),
}

/// How long one report query may run in PostgreSQL. Rollup-backed reports take well under a
/// second at 10 million decisions (README, Performance); this bounds the raw ones (filters the
/// rollup does not keep, `--raw`, no refresher).
pub const STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `query_canceled` (57014), which a statement timeout raises, is [`ReportError::TooSlow`].
fn too_slow(error: sqlx::Error) -> ReportError {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => ReportError::TooSlow,
        _ => ReportError::Database(error),
    }
}

/// A pool on a read replica (`REPORTS_DATABASE_URL`): no migrations (a replica cannot take
/// them; its schema follows the primary's), connected lazily, small.
pub fn connect_read_pool(url: &str) -> Result<PgPool, sqlx::Error> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_lazy(url)
}

/// Where a report's numbers are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The daily rollups for the window's folded days and raw rows for the rest, when the
    /// rollup keeps every filter given; else raw. The service, the CLI and the page use this.
    Auto,
    /// The audit tables only (tests compare the two; `orderguard report --raw`).
    Raw,
}

/// Runs report `name` over `query` against `pool` (the reports read pool), rollup-backed where
/// it can be ([`Source::Auto`]).
pub async fn run(
    pool: &PgPool,
    name: ReportName,
    query: &ReportQuery,
) -> Result<ReportTable, ReportError> {
    run_from(pool, name, query, Source::Auto).await
}

/// [`run`], reading from `source`.
pub async fn run_from(
    pool: &PgPool,
    name: ReportName,
    query: &ReportQuery,
    source: Source,
) -> Result<ReportTable, ReportError> {
    run_within(pool, name, query, source, STATEMENT_TIMEOUT).await
}

/// [`run_from`], cancelled in PostgreSQL after `time_limit` ([`ReportError::TooSlow`]).
pub async fn run_within(
    pool: &PgPool,
    name: ReportName,
    query: &ReportQuery,
    source: Source,
    time_limit: std::time::Duration,
) -> Result<ReportTable, ReportError> {
    let definition = name.definition();
    query.check(name)?;
    // One read-only snapshot for the folded span and the report, with a time limit: a report
    // too heavy for the database is cancelled there (not left running after its caller gave
    // up) and answered as such.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await?;
    // SET LOCAL, as a bindable call.
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(time_limit.as_millis().max(1).to_string())
        .execute(&mut *tx)
        .await?;
    let mut builder = if source == Source::Auto && rollup::serves(name, query) {
        // The raw parts are whole-day aggregations, planned as the fold's are.
        rollup::plan_for_whole_days(&mut tx).await?;
        let span = rollup::span(&mut tx, query).await.map_err(too_slow)?;
        sql::build_with(definition, query, |qb| rollup::body(name, qb, query, &span))
    } else {
        sql::build(definition, query)
    };
    let rows = builder
        .build()
        .fetch_all(&mut *tx)
        .await
        .map_err(too_slow)?;
    tx.commit().await?;
    let columns = name.columns();
    let rows = rows
        .iter()
        .map(|row| decode_row(row, &columns))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReportTable {
        name,
        title: definition.title.to_owned(),
        columns,
        rows,
    })
}

fn decode_row(row: &PgRow, columns: &[Column]) -> Result<Vec<Value>, sqlx::Error> {
    columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            Ok(match column.kind {
                ColumnKind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::from),
                ColumnKind::Integer => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
                ColumnKind::Number | ColumnKind::Percent => row
                    .try_get::<Option<f64>, _>(i)?
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number),
                ColumnKind::Date | ColumnKind::Week => row
                    .try_get::<Option<NaiveDate>, _>(i)?
                    .map(|d| Value::String(d.to_string())),
            }
            .unwrap_or(Value::Null))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let table = ReportTable {
            name: ReportName::AlertBurden,
            title: String::new(),
            columns: vec![
                Column {
                    name: "a".into(),
                    kind: ColumnKind::Text,
                    label: "A".into(),
                },
                Column {
                    name: "b".into(),
                    kind: ColumnKind::Number,
                    label: "B".into(),
                },
            ],
            rows: vec![
                vec![Value::from("x, \"y\""), Value::from(1.5)],
                vec![Value::from("=HYPERLINK(1)"), Value::Null],
            ],
        };
        let text = String::from_utf8(table.to_csv().unwrap()).unwrap();
        assert_eq!(text, "a,b\n\"x, \"\"y\"\"\",1.5\n'=HYPERLINK(1),\n");
    }

    #[test]
    fn every_report_name_round_trips() {
        for name in ReportName::ALL {
            assert_eq!(ReportName::parse(name.as_str()), Some(*name));
            assert!(!name.columns().is_empty());
        }
        assert_eq!(ReportName::parse("alert_burden"), None);
    }
}
