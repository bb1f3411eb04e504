-- alertcast schema v7: the sends rate windows and daily quotas count, shared by every replica
-- and kept across restarts. Portable SQL.
--
-- One row per (account, budget, slot): a send (`id`) recorded under the account's key (its
-- id, or the platform app whose quota several accounts share) in each budget it spends (`minute`,
-- `second`, `hour:post,repost`, `mass`, ...). `ends_at` is the start plus a lease while the send
-- is in flight (`finished` = 0): a slot of a replica that died mid-send counts as finished
-- then, so it never blocks a window for ever; once finished, the moment it finished. A take
-- counts, in one transaction, the slots of each window ending after the window's start
-- (`ends_at > now - window_s`, or the local midnight of a daily quota) and inserts the new
-- slot in every budget only when each has room (PostgreSQL serialises the takes of one account
-- with an advisory lock; SQLite's single writer already does). Rows no window counts any more
-- are pruned by the takes, one indexed range each.

CREATE TABLE limit_slots (
    account    TEXT NOT NULL,
    budget     TEXT NOT NULL,
    id         TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    ends_at    DOUBLE PRECISION NOT NULL,
    finished   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, budget, id)
);
CREATE INDEX limit_slots_ends ON limit_slots (account, budget, ends_at);
CREATE INDEX limit_slots_id ON limit_slots (account, id);
