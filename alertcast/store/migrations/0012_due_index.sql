-- alertcast schema v12: the due queue as its own small indexes. Portable SQL.
--
-- A claim reads the due deliveries in the order it sends them (priority first, then the
-- oldest due) and stops at what it can take; expiry marks the due ones whose `expires_at`
-- passed. Over `deliveries_state` both read every due row each time (a sort for the order), so
-- a claim cost grew with the queue behind it. These partial indexes hold only the rows still
-- to be sent (pending or retrying; for the claim, not held for approval): a claim reads, for
-- each priority level, the range due by now, oldest first, and stops at what it can take
-- (rows due later are not read); an expiry check reads only the expired; the settled millions
-- are in neither. On PostgreSQL building them locks `deliveries` against writes while they
-- scan it once (CREATE INDEX takes a SHARE lock): upgrade in a quiet moment.

CREATE INDEX deliveries_due ON deliveries (priority DESC, next_attempt_at)
    WHERE state IN ('pending', 'retrying') AND next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_expiring ON deliveries (expires_at)
    WHERE state IN ('pending', 'retrying') AND expires_at IS NOT NULL;
