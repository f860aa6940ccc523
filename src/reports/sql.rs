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
    /// A column no two rows share (the prescriber, the encounter): ties are broken by it
    /// alone, so an index on (sort column, key) gives the whole order.
    pub key: Option<&'static str>,
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
    key: None,
    body: alert_burden,
};

const DECISION_FILTERS: &[Filter] = &[Filter::User, Filter::Encounter, Filter::PathwayVersion];
const CARD_FILTERS: &[Filter] = &[
    Filter::Rule,
    Filter::Severity,
    Filter::User,
    Filter::Encounter,
    Filter::PathwayVersion,
];

const OVERRIDE_BY_RULE: Definition = Definition {
    title: "Override rate by rule: of the cards answered, the share overridden",
    columns: &[
        ("rule_id", Text, "Rule"),
        ("cards", Integer, "Cards"),
        ("answered", Integer, "Cards with feedback"),
        ("accepted", Integer, "Accepted"),
        ("overridden", Integer, "Overridden"),
        ("override_rate", Percent, "Override rate (% of answered)"),
    ],
    filters: CARD_FILTERS,
    default_sort: &[("cards", Desc)],
    key: None,
    body: override_by_rule,
};

const OVERRIDE_BY_REASON: Definition = Definition {
    title: "Overrides by rule and override reason",
    columns: &[
        ("rule_id", Text, "Rule"),
        ("reason", Text, "Override reason"),
        ("overrides", Integer, "Overrides"),
        (
            "share_of_rule_overrides",
            Percent,
            "% of the rule's overrides",
        ),
    ],
    filters: &[
        Filter::Rule,
        Filter::Severity,
        Filter::Reason,
        Filter::User,
        Filter::Encounter,
        Filter::PathwayVersion,
    ],
    default_sort: &[("rule_id", Asc), ("overrides", Desc)],
    key: None,
    body: override_by_reason,
};

const SUGGESTION_ACCEPTANCE: Definition = Definition {
    title: "Suggestion acceptance by rule: of the cards answered, the share where a suggestion was taken",
    columns: &[
        ("rule_id", Text, "Rule"),
        ("cards", Integer, "Cards"),
        ("answered", Integer, "Cards with feedback"),
        ("suggestion_accepted", Integer, "A suggestion accepted"),
        (
            "acceptance_rate",
            Percent,
            "Acceptance rate (% of answered)",
        ),
    ],
    filters: CARD_FILTERS,
    default_sort: &[("cards", Desc)],
    key: None,
    body: suggestion_acceptance,
};

const BY_DIMENSION_COLUMNS: [(&str, ColumnKind, &str); 7] = [
    ("decisions", Integer, "Decisions"),
    ("cards", Integer, "Cards"),
    ("cards_per_100_decisions", Number, "Cards per 100 decisions"),
    ("answered", Integer, "Cards with feedback"),
    ("overridden", Integer, "Overridden"),
    ("override_rate", Percent, "Override rate (% of answered)"),
    ("critical_cards", Integer, "Critical cards"),
];

const BY_PRESCRIBER: Definition = Definition {
    title: "By prescriber (user reference): decisions, cards and overrides",
    columns: &[
        ("user_ref", Text, "Prescriber (user reference)"),
        BY_DIMENSION_COLUMNS[0],
        BY_DIMENSION_COLUMNS[1],
        BY_DIMENSION_COLUMNS[2],
        BY_DIMENSION_COLUMNS[3],
        BY_DIMENSION_COLUMNS[4],
        BY_DIMENSION_COLUMNS[5],
        BY_DIMENSION_COLUMNS[6],
    ],
    filters: CARD_FILTERS,
    default_sort: &[("cards", Desc)],
    key: Some("user_ref"),
    body: by_prescriber,
};

const BY_ENCOUNTER: Definition = Definition {
    title: "By encounter, where the request carried one: decisions, cards and overrides",
    columns: &[
        ("encounter_ref", Text, "Encounter"),
        BY_DIMENSION_COLUMNS[0],
        BY_DIMENSION_COLUMNS[1],
        BY_DIMENSION_COLUMNS[2],
        BY_DIMENSION_COLUMNS[3],
        BY_DIMENSION_COLUMNS[4],
        BY_DIMENSION_COLUMNS[5],
        BY_DIMENSION_COLUMNS[6],
    ],
    filters: CARD_FILTERS,
    default_sort: &[("cards", Desc)],
    key: Some("encounter_ref"),
    body: by_encounter,
};

const VCF_ADHERENCE: Definition = Definition {
    title: "VCF pathway adherence by week: order-sign calls flagged for missing anti-osteoporosis therapy, calcium or vitamin D (neither signed nor active)",
    columns: &[
        ("week", Week, "Week (Monday, UTC)"),
        ("order_sign_calls", Integer, "Order-sign calls"),
        (
            "antiop_missing",
            Integer,
            "Anti-osteoporosis therapy missing",
        ),
        ("calcium_missing", Integer, "Calcium missing"),
        ("vitamin_d_missing", Integer, "Vitamin D missing"),
        (
            "antiop_missing_pct",
            Percent,
            "% of calls: anti-osteoporosis missing",
        ),
        (
            "calcium_missing_pct",
            Percent,
            "% of calls: calcium missing",
        ),
        (
            "vitamin_d_missing_pct",
            Percent,
            "% of calls: vitamin D missing",
        ),
    ],
    filters: DECISION_FILTERS,
    default_sort: &[("week", Asc)],
    key: None,
    body: vcf_adherence,
};

const AUGMENTATION: Definition = Definition {
    title: "Vertebral augmentation ordered before 90 days of conservative care, by week, and whether overridden",
    columns: &[
        ("week", Week, "Week (Monday, UTC)"),
        ("early_augmentation", Integer, "Early augmentation cards"),
        ("answered", Integer, "With feedback"),
        ("overridden", Integer, "Overridden"),
        ("accepted", Integer, "Accepted"),
        ("override_rate", Percent, "Override rate (% of answered)"),
        ("median_fracture_days", Number, "Median days since fracture"),
    ],
    filters: DECISION_FILTERS,
    default_sort: &[("week", Asc)],
    key: None,
    body: augmentation,
};

const MME: Definition = Definition {
    title: "Opioid MME/day of flagged orders by week: distribution and share of order-sign calls at ≥ 50 and ≥ 90",
    columns: &[
        ("week", Week, "Week (Monday, UTC)"),
        ("order_sign_calls", Integer, "Order-sign calls"),
        (
            "calls_mme_50_plus",
            Integer,
            "Calls with an order ≥ 50 MME/day",
        ),
        (
            "calls_mme_90_plus",
            Integer,
            "Calls with an order ≥ 90 MME/day",
        ),
        ("share_mme_50_plus", Percent, "% of calls ≥ 50 MME/day"),
        ("share_mme_90_plus", Percent, "% of calls ≥ 90 MME/day"),
        ("mme_p50", Number, "Median MME/day (flagged calls)"),
        ("mme_p90", Number, "90th percentile MME/day (flagged calls)"),
        ("mme_max", Number, "Highest MME/day"),
    ],
    filters: DECISION_FILTERS,
    default_sort: &[("week", Asc)],
    key: None,
    body: mme,
};

const MISSING_INPUTS: Definition = Definition {
    title: "Decisions with missing inputs: what the pathway could not check",
    columns: &[
        ("input", Text, "Missing input"),
        ("rules", Text, "Rules that needed it"),
        ("decisions", Integer, "Decisions"),
        ("share_of_decisions", Percent, "% of decisions"),
    ],
    filters: &[
        Filter::Rule,
        Filter::User,
        Filter::Encounter,
        Filter::PathwayVersion,
    ],
    default_sort: &[("decisions", Desc)],
    key: None,
    body: missing_inputs,
};

pub(super) fn definition(name: ReportName) -> &'static Definition {
    match name {
        ReportName::AlertBurden => &ALERT_BURDEN,
        ReportName::OverrideByRule => &OVERRIDE_BY_RULE,
        ReportName::OverrideByReason => &OVERRIDE_BY_REASON,
        ReportName::SuggestionAcceptance => &SUGGESTION_ACCEPTANCE,
        ReportName::ByPrescriber => &BY_PRESCRIBER,
        ReportName::ByEncounter => &BY_ENCOUNTER,
        ReportName::VcfAdherence => &VCF_ADHERENCE,
        ReportName::Augmentation => &AUGMENTATION,
        ReportName::Mme => &MME,
        ReportName::MissingInputs => &MISSING_INPUTS,
    }
}

/// `SELECT * FROM (<body>) ORDER BY <keys> LIMIT n`. Sort columns are written from the
/// definition's own static names (the query's are only compared to them); every column follows
/// as a tie-break so the order is total.
pub(super) fn build(definition: &Definition, query: &ReportQuery) -> Builder {
    build_with(definition, query, |qb| (definition.body)(qb, query))
}

/// [`build`] around another body with the same columns (the rollup's, src/reports/rollup.rs).
pub(super) fn build_with(
    definition: &Definition,
    query: &ReportQuery,
    body: impl FnOnce(&mut Builder),
) -> Builder {
    let mut qb = Builder::new("SELECT * FROM (");
    body(&mut qb);
    // The body's columns are named here, by position, from the definition.
    let names: Vec<String> = definition
        .columns
        .iter()
        .map(|(name, _, _)| format!("\"{name}\""))
        .collect();
    qb.push(format_args!(") AS report({}) ", names.join(", ")));
    order_and_limit(&mut qb, definition, query);
    qb
}

/// `ORDER BY <keys> LIMIT n` over columns named as the definition's: the query's sort, or the
/// definition's default, then every column (up to the key column, if there is one) as a
/// tie-break so the order is total. Also for a body that limits its parts before the union.
pub(super) fn order_and_limit(qb: &mut Builder, definition: &Definition, query: &ReportQuery) {
    qb.push("ORDER BY ");
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
        if definition.key.is_some_and(|key| written.contains(&key)) {
            break;
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

/// `cards`: the window's cards with their decision's references (`c.card_uuid`, `c.rule_id`,
/// `c.severity`, `c.user_ref`, `c.encounter_ref`); `answers`: each card's latest feedback
/// (`a.outcome`, `a.reason`, `a.took_suggestion`). Feedback comes after its decision, so its
/// window starts at `from` too (partition pruning).
fn cards_and_answers(qb: &mut Builder, query: &ReportQuery, extra_finding_condition: &str) {
    qb.push(
        "WITH cards AS (SELECT f.card_uuid, f.rule_id, f.severity, d.user_ref, d.encounter_ref, \
                f.numbers, d.evaluated_at \
         FROM decisions d JOIN findings f \
           ON f.decision_id = d.decision_id AND f.evaluated_at = d.evaluated_at \
         WHERE f.card_uuid IS NOT NULL",
    );
    qb.push(extra_finding_condition);
    decision_conditions(qb, "d", query);
    finding_conditions(qb, "f", query);
    qb.push(
        "), answers AS (SELECT DISTINCT ON (fb.card_uuid) fb.card_uuid, fb.outcome, \
                fb.override_reason_code AS reason, \
                jsonb_array_length(fb.accepted_suggestions) > 0 AS took_suggestion \
         FROM feedback fb WHERE fb.received_at >= ",
    )
    .push_bind(query.from)
    .push(
        " AND fb.card_uuid IN (SELECT card_uuid FROM cards) \
         ORDER BY fb.card_uuid, fb.outcome_at DESC, fb.received_at DESC, fb.feedback_id DESC)",
    );
}

fn override_by_rule(qb: &mut Builder, query: &ReportQuery) {
    cards_and_answers(qb, query, "");
    qb.push(
        " SELECT c.rule_id, count(*)::int8, count(a.card_uuid)::int8, \
                count(*) FILTER (WHERE a.outcome = 'accepted')::int8, \
                count(*) FILTER (WHERE a.outcome = 'overridden')::int8, \
                round(100.0 * count(*) FILTER (WHERE a.outcome = 'overridden') \
                      / NULLIF(count(a.card_uuid), 0), 2)::float8 \
         FROM cards c LEFT JOIN answers a ON a.card_uuid = c.card_uuid \
         GROUP BY c.rule_id",
    );
}

fn override_by_reason(qb: &mut Builder, query: &ReportQuery) {
    cards_and_answers(qb, query, "");
    qb.push(
        " SELECT c.rule_id, coalesce(a.reason, '(no reason given)'), count(*)::int8, \
                round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY c.rule_id), 2)::float8 \
         FROM cards c JOIN answers a ON a.card_uuid = c.card_uuid \
         WHERE a.outcome = 'overridden'",
    );
    if let Some(reason) = &query.filters.reason {
        qb.push(" AND a.reason = ").push_bind(reason.clone());
    }
    qb.push(" GROUP BY c.rule_id, a.reason");
}

fn suggestion_acceptance(qb: &mut Builder, query: &ReportQuery) {
    cards_and_answers(qb, query, "");
    qb.push(
        " SELECT c.rule_id, count(*)::int8, count(a.card_uuid)::int8, \
                count(*) FILTER (WHERE a.took_suggestion)::int8, \
                round(100.0 * count(*) FILTER (WHERE a.took_suggestion) \
                      / NULLIF(count(a.card_uuid), 0), 2)::float8 \
         FROM cards c LEFT JOIN answers a ON a.card_uuid = c.card_uuid \
         GROUP BY c.rule_id",
    );
}

/// Decisions, cards and overrides grouped by a decision reference column (`user_ref`,
/// `encounter_ref`); decisions that did not carry it are one row, `(not carried)`.
fn by_dimension(qb: &mut Builder, query: &ReportQuery, column: &'static str) {
    // One GROUP BY over decision rows and card rows: a join of per-decision and per-card counts
    // would have to match on IS NOT DISTINCT FROM (the dimension may be NULL), which only a
    // nested loop can do, and the encounters of a month are hundreds of thousands.
    cards_and_answers(qb, query, "");
    qb.push(format_args!(
        ", counted AS (SELECT d.{column} AS dim, 1 AS decisions, 0 AS cards, 0 AS answered, \
                0 AS overridden, 0 AS critical FROM decisions d WHERE true"
    ));
    decision_conditions(qb, "d", query);
    qb.push(format_args!(
        " UNION ALL SELECT c.{column}, 0, 1, (a.card_uuid IS NOT NULL)::int, \
                (a.outcome IS NOT DISTINCT FROM 'overridden')::int, \
                (c.severity = 'critical')::int \
         FROM cards c LEFT JOIN answers a ON a.card_uuid = c.card_uuid) \
         SELECT coalesce(dim, '(not carried)'), sum(decisions)::int8, sum(cards)::int8, \
                round(100.0 * sum(cards) / sum(decisions), 2)::float8, sum(answered)::int8, \
                sum(overridden)::int8, \
                round(100.0 * sum(overridden) / NULLIF(sum(answered), 0), 2)::float8, \
                sum(critical)::int8 \
         FROM counted GROUP BY dim"
    ));
    // With a card filter, a prescriber none of whose cards match is not a row.
    if query.filters.rule.is_some() || query.filters.severity.is_some() {
        qb.push(" HAVING sum(cards) > 0");
    }
}

fn by_prescriber(qb: &mut Builder, query: &ReportQuery) {
    by_dimension(qb, query, "user_ref");
}

fn by_encounter(qb: &mut Builder, query: &ReportQuery) {
    by_dimension(qb, query, "encounter_ref");
}

/// Per week of order-sign calls: calls, and calls with a card of each of `rules`, as counts
/// then percentages. `rules` are the pathway's fixed rule ids (pathway-spec.md).
fn weekly_calls_with_rules(qb: &mut Builder, query: &ReportQuery, rules: &[&'static str]) {
    qb.push(format_args!(
        "WITH calls AS (SELECT d.decision_id, d.evaluated_at, {} AS week \
         FROM decisions d WHERE d.hook = 'order-sign'",
        week("d")
    ));
    decision_conditions(qb, "d", query);
    qb.push("), flagged AS (SELECT c.week");
    for (i, rule) in rules.iter().enumerate() {
        qb.push(format_args!(", bool_or(f.rule_id = '{rule}') AS r{i}"));
    }
    qb.push(
        " FROM calls c LEFT JOIN findings f \
           ON f.decision_id = c.decision_id AND f.evaluated_at = c.evaluated_at",
    );
    qb.push(" AND f.evaluated_at >= ")
        .push_bind(query.from)
        .push(" AND f.evaluated_at < ")
        .push_bind(query.to);
    qb.push(" GROUP BY c.week, c.decision_id) SELECT week, count(*)::int8");
    for i in 0..rules.len() {
        qb.push(format_args!(", count(*) FILTER (WHERE r{i})::int8"));
    }
    for i in 0..rules.len() {
        qb.push(format_args!(
            ", round(100.0 * count(*) FILTER (WHERE r{i}) / count(*), 2)::float8"
        ));
    }
    qb.push(" FROM flagged GROUP BY week");
}

fn vcf_adherence(qb: &mut Builder, query: &ReportQuery) {
    weekly_calls_with_rules(
        qb,
        query,
        &[
            "VCF-ANTIOP-MISSING",
            "VCF-CALCIUM-MISSING",
            "VCF-VITD-MISSING",
        ],
    );
}

fn augmentation(qb: &mut Builder, query: &ReportQuery) {
    cards_and_answers(qb, query, " AND f.rule_id = 'VCF-AUGMENT-TIMING'");
    qb.push(format_args!(
        " SELECT {} AS week, count(*)::int8, count(a.card_uuid)::int8, \
                count(*) FILTER (WHERE a.outcome = 'overridden')::int8, \
                count(*) FILTER (WHERE a.outcome = 'accepted')::int8, \
                round(100.0 * count(*) FILTER (WHERE a.outcome = 'overridden') \
                      / NULLIF(count(a.card_uuid), 0), 2)::float8, \
                percentile_cont(0.5) WITHIN GROUP \
                  (ORDER BY (c.numbers->>'fracture_days')::float8)::float8 \
         FROM cards c LEFT JOIN answers a ON a.card_uuid = c.card_uuid \
         GROUP BY 1",
        week("c")
    ));
}

fn mme(qb: &mut Builder, query: &ReportQuery) {
    qb.push(format_args!(
        "WITH calls AS (SELECT d.decision_id, d.evaluated_at, {} AS week \
         FROM decisions d WHERE d.hook = 'order-sign'",
        week("d")
    ));
    decision_conditions(qb, "d", query);
    qb.push(
        "), per_call AS (SELECT c.week, c.decision_id, \
                max((f.numbers->>'mme_per_day')::float8) AS mme \
         FROM calls c LEFT JOIN findings f \
           ON f.decision_id = c.decision_id AND f.evaluated_at = c.evaluated_at \
          AND f.rule_id IN ('DOSE-MME-50', 'DOSE-MME-90') \
          AND f.numbers ? 'mme_per_day'",
    );
    qb.push(" AND f.evaluated_at >= ")
        .push_bind(query.from)
        .push(" AND f.evaluated_at < ")
        .push_bind(query.to);
    qb.push(
        " GROUP BY c.week, c.decision_id) \
         SELECT week, count(*)::int8, \
                count(*) FILTER (WHERE mme >= 50)::int8, \
                count(*) FILTER (WHERE mme >= 90)::int8, \
                round(100.0 * count(*) FILTER (WHERE mme >= 50) / count(*), 2)::float8, \
                round(100.0 * count(*) FILTER (WHERE mme >= 90) / count(*), 2)::float8, \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY mme)::float8, \
                percentile_cont(0.9) WITHIN GROUP (ORDER BY mme)::float8, \
                max(mme)::float8 \
         FROM per_call GROUP BY week",
    );
}

fn missing_inputs(qb: &mut Builder, query: &ReportQuery) {
    qb.push("WITH d AS (SELECT d.decision_id, d.missing_inputs FROM decisions d WHERE true");
    decision_conditions(qb, "d", query);
    qb.push(
        "), m AS (SELECT d.decision_id, e->>'input' AS input, e->'rules' AS rules \
         FROM d, jsonb_array_elements(d.missing_inputs) e WHERE true",
    );
    if let Some(rule) = &query.filters.rule {
        qb.push(" AND e->'rules' ? ").push_bind(rule.clone());
    }
    qb.push(
        "), r AS (SELECT input, string_agg(DISTINCT rule, ', ' ORDER BY rule) AS rules \
         FROM m, jsonb_array_elements_text(m.rules) rule GROUP BY input) \
         SELECT m.input, r.rules, count(DISTINCT m.decision_id)::int8, \
                round(100.0 * count(DISTINCT m.decision_id) \
                      / NULLIF((SELECT count(*) FROM d), 0), 2)::float8 \
         FROM m LEFT JOIN r ON r.input = m.input GROUP BY m.input, r.rules",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::query::SortKey;

    fn order_by(name: ReportName, sort: &[(&str, Direction)]) -> String {
        let mut query = ReportQuery::last_days(chrono::Utc::now());
        query.sort = sort
            .iter()
            .map(|(column, direction)| SortKey {
                column: (*column).to_owned(),
                direction: *direction,
            })
            .collect();
        let mut qb = Builder::new("");
        order_and_limit(&mut qb, definition(name), &query);
        qb.sql().as_str().to_owned()
    }

    #[test]
    fn ties_are_broken_by_every_column_or_up_to_the_key() {
        // No key column: every column follows the sort, so the order is total.
        assert_eq!(
            order_by(ReportName::OverrideByRule, &[("overridden", Desc)]),
            "ORDER BY \"overridden\" DESC NULLS LAST, \"rule_id\" ASC NULLS LAST, \
             \"cards\" ASC NULLS LAST, \"answered\" ASC NULLS LAST, \"accepted\" ASC NULLS LAST, \
             \"override_rate\" ASC NULLS LAST LIMIT $1"
        );
        // The encounter is unique per row: nothing after it (an index on (cards, encounter)
        // then gives the whole order).
        assert_eq!(
            order_by(ReportName::ByEncounter, &[]),
            "ORDER BY \"cards\" DESC NULLS LAST, \"encounter_ref\" ASC NULLS LAST LIMIT $1"
        );
        assert_eq!(
            order_by(
                ReportName::ByPrescriber,
                &[("user_ref", Desc), ("cards", Asc)]
            ),
            "ORDER BY \"user_ref\" DESC NULLS LAST LIMIT $1"
        );
        // Unknown columns are not written (the query check refuses them before this).
        assert_eq!(
            order_by(
                ReportName::ByEncounter,
                &[("nope", Asc), ("critical_cards", Desc)]
            ),
            "ORDER BY \"critical_cards\" DESC NULLS LAST, \"encounter_ref\" ASC NULLS LAST LIMIT $1"
        );
    }
}
