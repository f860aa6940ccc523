//! What a report is asked for: window, filters, sort, limit; read from `name=value` pairs (URL
//! query or CLI flags), each error naming the parameter.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use super::ReportName;

/// A filter a report may apply. Values compare exactly (bound parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// `findings.rule_id`, e.g. `ACT-BEDREST`.
    Rule,
    /// `info`, `warning` or `critical`.
    Severity,
    /// The prescriber: `decisions.user_ref`.
    User,
    /// `decisions.encounter_ref`.
    Encounter,
    /// The unit / location the request carried.
    Unit,
    /// `decisions.pathway_version`.
    PathwayVersion,
    /// An override reason code.
    Reason,
}

impl Filter {
    pub const ALL: &'static [Filter] = &[
        Filter::Rule,
        Filter::Severity,
        Filter::User,
        Filter::Encounter,
        Filter::Unit,
        Filter::PathwayVersion,
        Filter::Reason,
    ];

    /// The parameter name (`?rule=`, `--rule`).
    pub fn param(self) -> &'static str {
        match self {
            Filter::Rule => "rule",
            Filter::Severity => "severity",
            Filter::User => "user",
            Filter::Encounter => "encounter",
            Filter::Unit => "unit",
            Filter::PathwayVersion => "pathway_version",
            Filter::Reason => "reason",
        }
    }

    fn parse(param: &str) -> Option<Filter> {
        Self::ALL.iter().copied().find(|f| f.param() == param)
    }
}

/// The filter values given. Absent = no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pathway_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Filters {
    pub fn get(&self, filter: Filter) -> Option<&str> {
        match filter {
            Filter::Rule => self.rule.as_deref(),
            Filter::Severity => self.severity.as_deref(),
            Filter::User => self.user.as_deref(),
            Filter::Encounter => self.encounter.as_deref(),
            Filter::Unit => self.unit.as_deref(),
            Filter::PathwayVersion => self.pathway_version.as_deref(),
            Filter::Reason => self.reason.as_deref(),
        }
    }

    pub fn slot(&mut self, filter: Filter) -> &mut Option<String> {
        match filter {
            Filter::Rule => &mut self.rule,
            Filter::Severity => &mut self.severity,
            Filter::User => &mut self.user,
            Filter::Encounter => &mut self.encounter,
            Filter::Unit => &mut self.unit,
            Filter::PathwayVersion => &mut self.pathway_version,
            Filter::Reason => &mut self.reason,
        }
    }

    /// The filters that are set.
    pub fn set(&self) -> impl Iterator<Item = (Filter, &str)> {
        Filter::ALL
            .iter()
            .filter_map(|f| self.get(*f).map(|v| (*f, v)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SortKey {
    pub column: String,
    pub direction: Direction,
}

/// A report request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportQuery {
    /// Inclusive.
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    pub filters: Filters,
    /// Applied in order; empty = the report's default order. Ties are broken by every column
    /// in order (up to the report's key column, which no two rows share), so equal queries
    /// give equal row orders.
    pub sort: Vec<SortKey>,
    /// Most rows returned.
    pub limit: u32,
}

/// A parameter that cannot be used; `param` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct QueryError {
    pub param: String,
    pub message: String,
}

impl QueryError {
    fn new(param: &str, message: impl Into<String>) -> Self {
        QueryError {
            param: param.to_owned(),
            message: message.into(),
        }
    }
}

impl ReportQuery {
    pub const DEFAULT_LIMIT: u32 = 10_000;
    pub const MAX_LIMIT: u32 = 100_000;
    pub const DEFAULT_DAYS: i64 = 30;
    /// The longest filter value accepted (references are short; this bounds the cost).
    const MAX_VALUE: usize = 256;

    /// The last [`Self::DEFAULT_DAYS`] days up to `now`, no filter, default order.
    pub fn last_days(now: DateTime<Utc>) -> Self {
        ReportQuery {
            from: now - Duration::days(Self::DEFAULT_DAYS),
            to: now,
            filters: Filters::default(),
            sort: Vec::new(),
            limit: Self::DEFAULT_LIMIT,
        }
    }

    /// Reads `from`, `to` (RFC 3339, or a date: `from` = its start, `to` = the end of that day),
    /// `sort` (comma-separated column names, `-` before a name for descending), `limit`, and the
    /// filters ([`Filter::param`]). Defaults: the 30 days before `to`, `to` = `now`. Any other
    /// parameter, an empty or repeated one, is an error naming it.
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: DateTime<Utc>,
    ) -> Result<Self, QueryError> {
        let mut from = None;
        let mut to = None;
        let mut query = ReportQuery::last_days(now);
        let mut seen = std::collections::BTreeSet::new();
        for (name, value) in params {
            if !seen.insert(name) {
                return Err(QueryError::new(name, "given more than once"));
            }
            if value.len() > Self::MAX_VALUE {
                return Err(QueryError::new(
                    name,
                    format!("longer than {} characters", Self::MAX_VALUE),
                ));
            }
            match name {
                "from" => from = Some(parse_time(name, value, false)?),
                "to" => to = Some(parse_time(name, value, true)?),
                "limit" => {
                    query.limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=Self::MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            QueryError::new(
                                name,
                                format!("a whole number from 1 to {}", Self::MAX_LIMIT),
                            )
                        })?;
                }
                "sort" => query.sort = parse_sort(value)?,
                _ => match Filter::parse(name) {
                    Some(filter) => {
                        if value.is_empty() {
                            return Err(QueryError::new(name, "empty: leave the filter out"));
                        }
                        *query.filters.slot(filter) = Some(value.to_owned());
                    }
                    None => return Err(QueryError::new(name, "not a report parameter")),
                },
            }
        }
        query.to = to.unwrap_or(now);
        query.from = from.unwrap_or(query.to - Duration::days(Self::DEFAULT_DAYS));
        if query.from >= query.to {
            return Err(QueryError::new("from", "must be before to"));
        }
        Ok(query)
    }

    /// The parameters that give this query back (for the CLI, links and the audit event).
    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut params = vec![
            ("from".to_owned(), self.from.to_rfc3339()),
            ("to".to_owned(), self.to.to_rfc3339()),
        ];
        for (filter, value) in self.filters.set() {
            params.push((filter.param().to_owned(), value.to_owned()));
        }
        if !self.sort.is_empty() {
            let keys: Vec<String> = self
                .sort
                .iter()
                .map(|k| match k.direction {
                    Direction::Asc => k.column.clone(),
                    Direction::Desc => format!("-{}", k.column),
                })
                .collect();
            params.push(("sort".to_owned(), keys.join(",")));
        }
        params.push(("limit".to_owned(), self.limit.to_string()));
        params
    }

    /// Whether `report` can answer this query: its filters only, its columns only.
    pub fn check(&self, report: ReportName) -> Result<(), QueryError> {
        for (filter, _) in self.filters.set() {
            if !report.filters().contains(&filter) {
                let allowed: Vec<&str> = report.filters().iter().map(|f| f.param()).collect();
                return Err(QueryError::new(
                    filter.param(),
                    format!(
                        "report {report} does not filter by {}; it filters by: {}",
                        filter.param(),
                        allowed.join(", ")
                    ),
                ));
            }
        }
        let columns = report.columns();
        for key in &self.sort {
            if !columns.iter().any(|c| c.name == key.column) {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                return Err(QueryError::new(
                    "sort",
                    format!(
                        "report {report} has no column {:?}; columns: {}",
                        key.column,
                        names.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// RFC 3339, or a date: the start of that day, or with `end_of_day` the start of the next (UTC).
pub fn parse_time(param: &str, value: &str, end_of_day: bool) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let date = if end_of_day {
            date.succ_opt()
                .ok_or_else(|| QueryError::new(param, "date out of range"))?
        } else {
            date
        };
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(QueryError::new(
        param,
        "an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)",
    ))
}

fn parse_sort(value: &str) -> Result<Vec<SortKey>, QueryError> {
    value
        .split(',')
        .map(|key| {
            let key = key.trim();
            let (column, direction) = match key.strip_prefix('-') {
                Some(rest) => (rest, Direction::Desc),
                None => (key.strip_prefix('+').unwrap_or(key), Direction::Asc),
            };
            if column.is_empty() {
                return Err(QueryError::new("sort", "an empty column name"));
            }
            Ok(SortKey {
                column: column.to_owned(),
                direction,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-20T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn dates_cover_whole_days_and_defaults_are_the_last_30_days() {
        let q = ReportQuery::from_params([("from", "2026-11-01"), ("to", "2026-11-07")], now())
            .unwrap();
        assert_eq!(q.from.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        assert_eq!(q.to.to_rfc3339(), "2026-11-08T00:00:00+00:00");
        let q = ReportQuery::from_params([], now()).unwrap();
        assert_eq!(q.to, now());
        assert_eq!(q.to - q.from, Duration::days(30));
        assert_eq!(q.limit, ReportQuery::DEFAULT_LIMIT);
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let err = |params: &[(&str, &str)]| {
            ReportQuery::from_params(params.iter().copied(), now())
                .unwrap_err()
                .param
        };
        assert_eq!(err(&[("from", "yesterday")]), "from");
        assert_eq!(err(&[("to", "2026-13-01")]), "to");
        assert_eq!(err(&[("from", "2026-11-10"), ("to", "2026-11-01")]), "from");
        assert_eq!(err(&[("limit", "0")]), "limit");
        assert_eq!(err(&[("limit", "1000001")]), "limit");
        assert_eq!(err(&[("colour", "red")]), "colour");
        assert_eq!(err(&[("rule", "")]), "rule");
        assert_eq!(err(&[("rule", "A"), ("rule", "B")]), "rule");
        assert_eq!(err(&[("sort", "a,,b")]), "sort");
    }

    #[test]
    fn sort_reads_directions_and_the_query_round_trips() {
        let q = ReportQuery::from_params(
            [
                ("sort", "-cards,rule_id"),
                ("rule", "ACT-BEDREST"),
                ("from", "2026-11-01T00:00:00Z"),
                ("to", "2026-11-08T00:00:00Z"),
            ],
            now(),
        )
        .unwrap();
        assert_eq!(q.sort[0].direction, Direction::Desc);
        assert_eq!(q.sort[1].column, "rule_id");
        let params = q.to_params();
        let again =
            ReportQuery::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())), now())
                .unwrap();
        assert_eq!(again, q);
    }
}
