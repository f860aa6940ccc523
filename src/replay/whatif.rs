//! What-if replay: what a draft pathway would have said about past decisions.
//!
//! Each stored input is evaluated under the draft at the decision's own `evaluated_at` and its
//! findings compared with the stored ones. A card is identified by (rule id, order ref); several
//! cards of one rule about one order are paired in their stored order. A card only in the
//! replay *appears*, only in the store *disappears*, in both with another severity *changes
//! severity*. Alert burden: cards per 100 CDS Hooks order-sign calls in the window.

use super::{Examples, Job, RunStats, StoredDecision, Window};
use crate::decision::{PathwayRef, Severity};
use crate::pathway::Plan;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// The what-if job: the draft, an optional rule to look at alone, and whether to keep every
/// change (for `--changes FILE` and the tests) besides the counts.
pub struct WhatIf {
    pub draft: Arc<Plan>,
    pub rule: Option<String>,
    pub collect_changes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Appears,
    Disappears,
    SeverityChanges,
    Unchanged,
}

/// One card's fate under the draft.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CardChange {
    pub rule_id: String,
    pub order_ref: Option<String>,
    pub kind: ChangeKind,
    pub old: Option<Severity>,
    pub new: Option<Severity>,
}

/// A card's identity and severity, stored or replayed.
pub type Card = (String, Option<String>, Severity);

/// Pairs stored and replayed cards (see the module doc); includes the unchanged ones.
pub fn diff(old: &[Card], new: &[Card]) -> Vec<CardChange> {
    type Key = (String, Option<String>);
    let mut sides: BTreeMap<Key, (Vec<Severity>, Vec<Severity>)> = BTreeMap::new();
    for (rule, order, severity) in old {
        sides
            .entry((rule.clone(), order.clone()))
            .or_default()
            .0
            .push(*severity);
    }
    for (rule, order, severity) in new {
        sides
            .entry((rule.clone(), order.clone()))
            .or_default()
            .1
            .push(*severity);
    }
    let mut changes = Vec::new();
    for ((rule_id, order_ref), (was, now)) in sides {
        for i in 0..was.len().max(now.len()) {
            let (old, new) = (was.get(i).copied(), now.get(i).copied());
            let kind = match (old, new) {
                (Some(a), Some(b)) if a == b => ChangeKind::Unchanged,
                (Some(_), Some(_)) => ChangeKind::SeverityChanges,
                (None, _) => ChangeKind::Appears,
                (_, None) => ChangeKind::Disappears,
            };
            changes.push(CardChange {
                rule_id: rule_id.clone(),
                order_ref: order_ref.clone(),
                kind,
                old,
                new,
            });
        }
    }
    changes
}

/// One change with the decision it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DecisionChange {
    pub decision_id: Uuid,
    pub evaluated_at: DateTime<Utc>,
    #[serde(flatten)]
    pub change: CardChange,
}

#[derive(Debug, Clone, Default)]
struct RuleAcc {
    old_cards: u64,
    new_cards: u64,
    old_order_sign_cards: u64,
    new_order_sign_cards: u64,
    appears: u64,
    disappears: u64,
    severity_changes: u64,
    unchanged: u64,
    transitions: BTreeMap<String, u64>,
    appears_examples: Examples,
    disappears_examples: Examples,
    severity_examples: Examples,
}

impl RuleAcc {
    fn merge(&mut self, o: RuleAcc) {
        self.old_cards += o.old_cards;
        self.new_cards += o.new_cards;
        self.old_order_sign_cards += o.old_order_sign_cards;
        self.new_order_sign_cards += o.new_order_sign_cards;
        self.appears += o.appears;
        self.disappears += o.disappears;
        self.severity_changes += o.severity_changes;
        self.unchanged += o.unchanged;
        for (k, v) in o.transitions {
            *self.transitions.entry(k).or_default() += v;
        }
        self.appears_examples.merge(o.appears_examples);
        self.disappears_examples.merge(o.disappears_examples);
        self.severity_examples.merge(o.severity_examples);
    }
}

#[derive(Debug, Default)]
pub struct WhatIfAcc {
    decisions: u64,
    order_sign: u64,
    unreadable: u64,
    unreadable_examples: Examples,
    rules: BTreeMap<String, RuleAcc>,
    changes: Vec<DecisionChange>,
}

fn parse_severity(s: &str) -> Option<Severity> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

impl Job for WhatIf {
    type Acc = WhatIfAcc;

    fn replay_one(&self, stored: StoredDecision, acc: &mut WhatIfAcc) {
        acc.decisions += 1;
        let order_sign = stored.is_order_sign();
        acc.order_sign += u64::from(order_sign);
        let mut prepared = match crate::decide::from_stored(&stored.canonical_input) {
            Ok(p) => p,
            Err(_) => {
                acc.unreadable += 1;
                acc.unreadable_examples.add(stored.decision_id);
                return;
            }
        };
        let replayed = crate::decide::decide(
            &self.draft,
            &mut prepared,
            stored.evaluated_at,
            stored.decision_id,
        );
        let wanted = |rule: &str| self.rule.as_deref().is_none_or(|r| r == rule);
        let old: Vec<Card> = stored
            .findings
            .iter()
            .filter(|f| wanted(&f.rule_id))
            .filter_map(|f| {
                Some((
                    f.rule_id.clone(),
                    f.order_ref.clone(),
                    parse_severity(&f.severity)?,
                ))
            })
            .collect();
        let new: Vec<Card> = replayed
            .evaluation
            .findings
            .iter()
            .filter(|f| wanted(&f.rule_id))
            .map(|f| {
                (
                    f.rule_id.to_string(),
                    f.order_ref.as_ref().map(|r| r.0.to_string()),
                    f.severity,
                )
            })
            .collect();
        for change in diff(&old, &new) {
            let rule = acc.rules.entry(change.rule_id.clone()).or_default();
            let id = stored.decision_id;
            if change.old.is_some() {
                rule.old_cards += 1;
                rule.old_order_sign_cards += u64::from(order_sign);
            }
            if change.new.is_some() {
                rule.new_cards += 1;
                rule.new_order_sign_cards += u64::from(order_sign);
            }
            match change.kind {
                ChangeKind::Unchanged => {
                    rule.unchanged += 1;
                    continue;
                }
                ChangeKind::Appears => {
                    rule.appears += 1;
                    rule.appears_examples.add(id);
                }
                ChangeKind::Disappears => {
                    rule.disappears += 1;
                    rule.disappears_examples.add(id);
                }
                ChangeKind::SeverityChanges => {
                    rule.severity_changes += 1;
                    rule.severity_examples.add(id);
                    if let (Some(a), Some(b)) = (change.old, change.new) {
                        *rule
                            .transitions
                            .entry(format!("{}->{}", a.as_str(), b.as_str()))
                            .or_default() += 1;
                    }
                }
            }
            if self.collect_changes {
                acc.changes.push(DecisionChange {
                    decision_id: id,
                    evaluated_at: stored.evaluated_at,
                    change,
                });
            }
        }
    }

    fn merge(into: &mut WhatIfAcc, other: WhatIfAcc) {
        into.decisions += other.decisions;
        into.order_sign += other.order_sign;
        into.unreadable += other.unreadable;
        into.unreadable_examples.merge(other.unreadable_examples);
        for (rule, acc) in other.rules {
            into.rules.entry(rule).or_default().merge(acc);
        }
        into.changes.extend(other.changes);
    }
}

/// One rule's impact, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleImpact {
    pub rule_id: String,
    pub old_cards: u64,
    pub new_cards: u64,
    pub appears: u64,
    pub disappears: u64,
    pub severity_changes: u64,
    pub unchanged: u64,
    /// e.g. `{"warning->critical": 3}`.
    pub severity_transitions: BTreeMap<String, u64>,
    /// Cards per 100 order-sign calls, stored and under the draft (absent: no order-sign call).
    pub old_per_100_order_sign: Option<f64>,
    pub new_per_100_order_sign: Option<f64>,
    pub examples: ImpactExamples,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImpactExamples {
    pub appears: Examples,
    pub disappears: Examples,
    pub severity_changes: Examples,
}

/// The what-if report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIfReport {
    pub draft: PathwayRef,
    pub window: Window,
    pub rule: Option<String>,
    pub decisions: u64,
    pub order_sign_calls: u64,
    /// Stored inputs this orderguard could not read back (not counted in any rule).
    pub unreadable: u64,
    pub unreadable_examples: Examples,
    /// Rules with at least one card stored or replayed, by rule id.
    pub rules: Vec<RuleImpact>,
    /// All rules together.
    pub total: RuleImpact,
    pub run: RunStats,
    /// Every change, sorted, when asked for (`collect_changes`).
    #[serde(skip)]
    pub changes: Vec<DecisionChange>,
}

fn per_100(cards: u64, calls: u64) -> Option<f64> {
    (calls > 0).then(|| (cards as f64 * 100.0 / calls as f64 * 100.0).round() / 100.0)
}

fn impact(rule_id: String, r: RuleAcc, order_sign: u64) -> RuleImpact {
    RuleImpact {
        rule_id,
        old_cards: r.old_cards,
        new_cards: r.new_cards,
        appears: r.appears,
        disappears: r.disappears,
        severity_changes: r.severity_changes,
        unchanged: r.unchanged,
        severity_transitions: r.transitions,
        old_per_100_order_sign: per_100(r.old_order_sign_cards, order_sign),
        new_per_100_order_sign: per_100(r.new_order_sign_cards, order_sign),
        examples: ImpactExamples {
            appears: r.appears_examples,
            disappears: r.disappears_examples,
            severity_changes: r.severity_examples,
        },
    }
}

impl WhatIf {
    pub fn report(&self, window: Window, acc: WhatIfAcc, run: RunStats) -> WhatIfReport {
        let mut total = RuleAcc::default();
        for r in acc.rules.values() {
            total.merge(r.clone());
        }
        let mut changes = acc.changes;
        changes.sort();
        WhatIfReport {
            draft: self.draft.reference.clone(),
            window,
            rule: self.rule.clone(),
            decisions: acc.decisions,
            order_sign_calls: acc.order_sign,
            unreadable: acc.unreadable,
            unreadable_examples: acc.unreadable_examples,
            total: impact("(all rules)".into(), total, acc.order_sign),
            rules: acc
                .rules
                .into_iter()
                .map(|(id, r)| impact(id, r, acc.order_sign))
                .collect(),
            run,
            changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(rule: &str, order: Option<&str>, s: Severity) -> Card {
        (rule.into(), order.map(str::to_owned), s)
    }

    #[test]
    fn cards_pair_by_rule_and_order() {
        use Severity::*;
        let old = vec![
            card("DOSE-MME-50", Some("o1"), Warning),
            card("VCF-BEDREST", None, Warning),
            card("DOSE-MAX-DAILY", Some("o2"), Warning),
            card("DOSE-MAX-DAILY", Some("o2"), Warning),
        ];
        let new = vec![
            card("DOSE-MME-90", Some("o1"), Critical),
            card("VCF-BEDREST", None, Critical),
            card("DOSE-MAX-DAILY", Some("o2"), Warning),
            card("DOSE-MAX-DAILY", Some("o3"), Info),
        ];
        let kinds: Vec<(String, Option<String>, ChangeKind)> = diff(&old, &new)
            .into_iter()
            .map(|c| (c.rule_id, c.order_ref, c.kind))
            .collect();
        use ChangeKind::*;
        let o = |s: &str| Some(s.to_owned());
        assert_eq!(
            kinds,
            vec![
                ("DOSE-MAX-DAILY".into(), o("o2"), Unchanged),
                ("DOSE-MAX-DAILY".into(), o("o2"), Disappears),
                ("DOSE-MAX-DAILY".into(), o("o3"), Appears),
                ("DOSE-MME-50".into(), o("o1"), Disappears),
                ("DOSE-MME-90".into(), o("o1"), Appears),
                ("VCF-BEDREST".into(), None, SeverityChanges),
            ]
        );
    }

    #[test]
    fn burden_is_per_100_order_sign_calls() {
        assert_eq!(per_100(3, 12), Some(25.0));
        assert_eq!(per_100(1, 3), Some(33.33));
        assert_eq!(per_100(5, 0), None);
    }
}
