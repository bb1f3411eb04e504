-- alertcast schema v4: which path carried a delivery. Portable SQL.
--
-- A correction reaches the people who saw the mistake by more than one way (see
-- alertcast/plan/corrections.py): a new entry in the followers' timelines or chat lists, a
-- comment on the original, the original withdrawn, a paired account, messages to the followers
-- inside the platform's interaction window, the fallback accounts, the next mass send. `path`
-- names the way of each delivery, so the status API and the demo say how each one went.

ALTER TABLE deliveries ADD COLUMN path TEXT;
