-- alertcast schema v13: how often each per-recipient send was taken for sending. Portable SQL.
--
-- `taken`: a pass's take (`part_sql.START`) adds one; a live pass that stopped and gives a
-- send back unmade, by id (`Store.unstart_recipients(ids=...)`), takes one away. So a send whose
-- `taken` is 0 after such a give-back, never recorded (`attempts` 0) and with no remote id, is
-- known never to have left: every take of it was given back unmade. A take released after its
-- pass died keeps its count (the request may have left before the pass died). A correction's
-- cancellation is withdrawn only from a recipient whose send is known so
-- (`followup_sql.NEVER_REACHED`).
--
-- The sends still to go or on the wire when the schema is upgraded count as taken once: one of
-- them may have been left on the wire by a pass that died before the upgrade. (On PostgreSQL
-- that UPDATE rewrites those rows: upgrade in a quiet moment if a large fan-out is under way.)

ALTER TABLE recipient_sends ADD COLUMN taken INTEGER NOT NULL DEFAULT 0;
UPDATE recipient_sends SET taken = 1 WHERE state IN ('pending', 'sending');
