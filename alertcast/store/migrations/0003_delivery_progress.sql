-- alertcast schema v3: how far a multi-recipient delivery has got. Portable SQL.
--
-- One delivery may address many people (a WeChat template message to each subscriber). The
-- adapter reports its progress as JSON (a cursor over its recipients, never the list itself),
-- the dispatcher checkpoints it during a long send and stores it with every attempt, and the
-- next attempt resumes from it, so a retry or a crash never sends to the same person twice.

ALTER TABLE deliveries ADD COLUMN progress TEXT;
