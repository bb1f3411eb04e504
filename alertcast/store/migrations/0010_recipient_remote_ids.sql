-- alertcast schema v10: per-recipient corrections thread to each recipient's original.
--
-- `remote_id`: the id the platform gave this send (a receipt's remote id), so a correction can
-- name it. `reply_to`: on a correction's send, the remote id of the send that first reached
-- that recipient (NULL: the original reached them without an id, or never reached them and the
-- correction is their first message). A correction's sends are copied from the original's by
-- alertcast/store/followup_sql.py; `skipped` is the state of a send a follow-up withdrew.

ALTER TABLE recipient_sends ADD COLUMN remote_id TEXT;
ALTER TABLE recipient_sends ADD COLUMN reply_to TEXT;
