-- alertcast schema v13: who took each per-recipient send for sending, and how often. Portable
-- SQL.
--
-- `taken`: a pass's take (`part_sql.START`) adds one; a live pass that stopped and gives a
-- send back unmade, by id (`Store.give_back_recipients`), takes one away. So a send whose
-- `taken` is 0 after such a give-back, never recorded (`attempts` 0) and with no remote id, is
-- known never to have left: every take of it was given back unmade. A take released after its
-- pass died keeps its count (the request may have left before the pass died). A correction's
-- cancellation is withdrawn only from a recipient whose send is known so
-- (`followup_sql.NEVER_REACHED`). `taken_by`: the pass (its sweep's own token) that took it
-- last; a give-back touches only the sends its own pass took and still has `sending` (a part
-- whose lease ran out may have been taken since, by another replica or another pass of this
-- one, and its send be on the wire).
--
-- Every send not delivered counts as taken once when the schema is upgraded: one may have been
-- left on the wire by a pass that died before, and then given back (due again, or withdrawn
-- with its parent), with nothing to tell it from one never taken. Stop every replica before
-- upgrading: an older one would take sends without counting. (On PostgreSQL the UPDATE
-- rewrites those rows: upgrade in a quiet moment if a large fan-out is under way.)

ALTER TABLE recipient_sends ADD COLUMN taken INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipient_sends ADD COLUMN taken_by TEXT;
UPDATE recipient_sends SET taken = 1 WHERE state <> 'delivered';
