-- The pharmacist dosing-alert queue (src/pharmacy/).
--
-- findings.labels: the text values a finding's message was filled with (ingredient, unit,
-- regimen, renal measure, ...). findings.numbers holds only the numbers, so without this a
-- queue row could say "4000 above 3000" but not "acetaminophen, mg/day". Written at record time
-- by the audit writer and covered by the hash chain whenever it is not empty (rows recorded
-- before this migration keep '{}' and their hashes). Adding a column with a constant default
-- rewrites no partition.
ALTER TABLE findings
    ADD COLUMN labels jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object');

-- The queue lists DOSE-* findings newest first: a partial index (cloned to every monthly
-- partition) lets "newest N" read N index entries per partition instead of every finding.
CREATE INDEX findings_dose_time_idx ON findings (evaluated_at DESC)
    WHERE rule_id LIKE 'DOSE-%';

-- A queue row's status is its latest dosing_alert.* event; events are looked up by decision.
CREATE INDEX events_dosing_alert_idx ON audit_events (decision_id, occurred_at DESC)
    WHERE kind LIKE 'dosing_alert.%';
