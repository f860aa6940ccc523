//! The status model of a dosing alert. A status is never stored in place: it is derived from
//! the latest `dosing_alert.<status>` event of the finding (none: `open`).
//!
//! ```text
//!            acknowledge            resolve
//!   open ───────────────▶ acknowledged ───────▶ resolved (final)
//!    │  ╲ escalate          ▲      │ escalate      ▲
//!    │   ╲──────────▶ escalated ◀──┘               │
//!    │                 │  acknowledge (taken up)   │
//!    │                 └───────────────────────────┤ resolve
//!    └─────────────────────────────────────────────┘ resolve
//! ```
//!
//! Repeating the current status (acknowledging an acknowledged alert) and any action on a
//! resolved alert are refused: the log shows each change once, and a resolved alert stays closed
//! (a new order gives a new finding, hence a new alert).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Escalated,
    Resolved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertAction {
    Acknowledge,
    Escalate,
    Resolve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an alert that is {}", .action.as_str(), .from.as_str())]
pub struct TransitionError {
    pub from: AlertStatus,
    pub action: AlertAction,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 4] = [
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::Escalated,
        AlertStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Escalated => "escalated",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<AlertStatus> {
        AlertStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The `audit_events.kind` that puts an alert in this status.
    pub fn event_kind(self) -> String {
        format!("{}{}", super::EVENT_PREFIX, self.as_str())
    }

    pub fn from_event_kind(kind: &str) -> Option<AlertStatus> {
        kind.strip_prefix(super::EVENT_PREFIX)
            .and_then(AlertStatus::parse)
            .filter(|s| *s != AlertStatus::Open)
    }

    /// The status after `action`, or why the action is refused.
    pub fn after(self, action: AlertAction) -> Result<AlertStatus, TransitionError> {
        use AlertAction as A;
        use AlertStatus as S;
        let next = match (self, action) {
            (S::Resolved, _) => None,
            (S::Acknowledged, A::Acknowledge) | (S::Escalated, A::Escalate) => None,
            (_, A::Acknowledge) => Some(S::Acknowledged),
            (_, A::Escalate) => Some(S::Escalated),
            (_, A::Resolve) => Some(S::Resolved),
        };
        next.ok_or(TransitionError { from: self, action })
    }

    /// The actions a pharmacist may take from this status (the page's buttons).
    pub fn actions(self) -> Vec<AlertAction> {
        AlertAction::ALL
            .into_iter()
            .filter(|a| self.after(*a).is_ok())
            .collect()
    }
}

impl AlertAction {
    pub const ALL: [AlertAction; 3] = [
        AlertAction::Acknowledge,
        AlertAction::Escalate,
        AlertAction::Resolve,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertAction::Acknowledge => "acknowledge",
            AlertAction::Escalate => "escalate",
            AlertAction::Resolve => "resolve",
        }
    }

    pub fn parse(s: &str) -> Option<AlertAction> {
        AlertAction::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertAction as A;
    use AlertStatus as S;

    #[test]
    fn every_transition_of_the_table() {
        let table = [
            (S::Open, A::Acknowledge, Some(S::Acknowledged)),
            (S::Open, A::Escalate, Some(S::Escalated)),
            (S::Open, A::Resolve, Some(S::Resolved)),
            (S::Acknowledged, A::Acknowledge, None),
            (S::Acknowledged, A::Escalate, Some(S::Escalated)),
            (S::Acknowledged, A::Resolve, Some(S::Resolved)),
            (S::Escalated, A::Acknowledge, Some(S::Acknowledged)),
            (S::Escalated, A::Escalate, None),
            (S::Escalated, A::Resolve, Some(S::Resolved)),
            (S::Resolved, A::Acknowledge, None),
            (S::Resolved, A::Escalate, None),
            (S::Resolved, A::Resolve, None),
        ];
        for (from, action, to) in table {
            assert_eq!(from.after(action).ok(), to, "{from:?} {action:?}");
        }
        assert!(S::Resolved.actions().is_empty());
        assert_eq!(S::Open.actions().len(), 3);
    }

    #[test]
    fn event_kinds_round_trip_and_open_has_none() {
        for s in [S::Acknowledged, S::Escalated, S::Resolved] {
            assert_eq!(S::from_event_kind(&s.event_kind()), Some(s));
        }
        assert_eq!(S::from_event_kind("dosing_alert.open"), None);
        assert_eq!(S::from_event_kind("replay"), None);
        assert_eq!(S::parse("Open"), None);
        assert_eq!(A::parse("resolve"), Some(A::Resolve));
    }
}
