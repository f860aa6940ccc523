//! The SQL of each report. Each body is a SELECT whose output columns are exactly the
//! definition's columns, in order and typed as [`ColumnKind`] decodes them (text, int8, float8,
//! date). [`build`] wraps it for sorting and the limit.

use sqlx::{Postgres, QueryBuilder};

use super::query::{Direction, Filter, ReportQuery};
use super::{ColumnKind, ReportName};

type Builder = QueryBuilder<Postgres>;

pub(super) struct Definition {
    pub title: &'static str,
    /// (name, kind, label).
    pub columns: &'static [(&'static str, ColumnKind, &'static str)],
    pub filters: &'static [Filter],
    pub default_sort: &'static [(&'static str, Direction)],
    pub body: fn(&mut Builder, &ReportQuery),
}

use ColumnKind::*;
use Direction::*;

const ALERT_BURDEN: Definition = Definition {
    title: "Alert burden: cards per 100 order-sign calls, by week, rule and severity",
    columns: &[
        ("week", Week, "Week (Monday, UTC)"),
        ("rule_id", Text, "Rule"),
        ("severity", Text, "Severity"),
        ("cards", Integer, "Cards"),
        ("order_sign_calls", Integer, "Order-sign calls that week"),
        (
            "cards_per_100_calls",
            Number,
            "Cards per 100 order-sign calls",
        ),
    ],
    filters: &[
        Filter::Rule,
        Filter::Severity,
        Filter::User,
        Filter::Encounter,
        Filter::PathwayVersion,
    ],
    default_sort: &[("week", Asc), ("cards", Desc)],
    body: alert_burden,
};

pub(super) fn definition(name: ReportName) -> &'static Definition {
    match name {
        ReportName::AlertBurden => &ALERT_BURDEN,
    }
}

/// `SELECT * FROM (<body>) ORDER BY <keys> LIMIT n`. Sort columns are written from the
/// definition's own static names (the query's are only compared to them); every column follows
/// as a tie-break so the order is total.
pub(super) fn build(definition: &Definition, query: &ReportQuery) -> Builder {
    let mut qb = Builder::new("SELECT * FROM (");
    (definition.body)(&mut qb, query);
    qb.push(") AS report ORDER BY ");
    let requested = query.sort.iter().filter_map(|key| {
        definition
            .columns
            .iter()
            .find(|(name, _, _)| *name == key.column)
            .map(|(name, _, _)| (*name, key.direction))
    });
    let keys: Vec<(&str, Direction)> = if query.sort.is_empty() {
        definition.default_sort.to_vec()
    } else {
        requested.collect()
    };
    let mut written: Vec<&str> = Vec::new();
    let ties = definition.columns.iter().map(|(name, _, _)| (*name, Asc));
    for (name, direction) in keys.into_iter().chain(ties) {
        if written.contains(&name) {
            continue;
        }
        if !written.is_empty() {
            qb.push(", ");
        }
        written.push(name);
        qb.push(format_args!(
            "\"{name}\" {}",
            match direction {
                Asc => "ASC NULLS LAST",
                Desc => "DESC NULLS LAST",
            }
        ));
    }
    qb.push(" LIMIT ").push_bind(i64::from(query.limit));
    qb
}

/// `AND <alias>.evaluated_at` in the window, and the decision-level filters that are set.
fn decision_conditions(qb: &mut Builder, alias: &str, query: &ReportQuery) {
    qb.push(format_args!(" AND {alias}.evaluated_at >= "))
        .push_bind(query.from)
        .push(format_args!(" AND {alias}.evaluated_at < "))
        .push_bind(query.to);
    let f = &query.filters;
    if let Some(user) = &f.user {
        qb.push(format_args!(" AND {alias}.user_ref = "))
            .push_bind(user.clone());
    }
    if let Some(encounter) = &f.encounter {
        qb.push(format_args!(" AND {alias}.encounter_ref = "))
            .push_bind(encounter.clone());
    }
    if let Some(version) = &f.pathway_version {
        qb.push(format_args!(" AND {alias}.pathway_version = "))
            .push_bind(version.clone());
    }
}

/// The window on a findings alias (for partition pruning: findings are partitioned by the
/// decision's evaluation time too), and the finding-level filters.
fn finding_conditions(qb: &mut Builder, alias: &str, query: &ReportQuery) {
    qb.push(format_args!(" AND {alias}.evaluated_at >= "))
        .push_bind(query.from)
        .push(format_args!(" AND {alias}.evaluated_at < "))
        .push_bind(query.to);
    if let Some(rule) = &query.filters.rule {
        qb.push(format_args!(" AND {alias}.rule_id = "))
            .push_bind(rule.clone());
    }
    if let Some(severity) = &query.filters.severity {
        qb.push(format_args!(" AND {alias}.severity = "))
            .push_bind(severity.clone());
    }
}

/// The UTC week (its Monday) of `<alias>.evaluated_at`, as a date.
fn week(alias: &str) -> String {
    format!("date_trunc('week', {alias}.evaluated_at AT TIME ZONE 'UTC')::date")
}

fn alert_burden(qb: &mut Builder, query: &ReportQuery) {
    qb.push(format_args!(
        "WITH calls AS (SELECT d.decision_id, d.evaluated_at, {} AS week \
         FROM decisions d WHERE d.hook = 'order-sign'",
        week("d")
    ));
    decision_conditions(qb, "d", query);
    qb.push(
        "), weekly AS (SELECT week, count(*) AS calls FROM calls GROUP BY week) \
         SELECT c.week, f.rule_id, f.severity, count(*)::int8 AS cards, \
                w.calls::int8 AS order_sign_calls, \
                round(100.0 * count(*) / w.calls, 2)::float8 AS cards_per_100_calls \
         FROM calls c \
         JOIN findings f ON f.decision_id = c.decision_id AND f.evaluated_at = c.evaluated_at \
         JOIN weekly w ON w.week = c.week \
         WHERE f.card_uuid IS NOT NULL",
    );
    finding_conditions(qb, "f", query);
    qb.push(" GROUP BY c.week, f.rule_id, f.severity, w.calls");
}
