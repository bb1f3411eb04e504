-- alertcast schema v6: who is inside a platform's interaction window. Portable SQL.
--
-- WeChat lets an account send customer-service messages (message/custom/send) to a follower
-- only for a while after the follower did something (facts §2.6): 5 messages within 48 h of
-- their last message, 3 within 1 minute of their last menu click, follow or QR scan. The
-- callback notes each of these; a correction's `custom` delivery reads who is still inside a
-- window, with how many sends they have left, and notes what it sent.
--
-- One row per (account, follower openid). `message_at` / `event_at`: the last message and the
-- last click, follow or scan (NULL: none yet); `sent_message` / `sent_event`: custom messages
-- sent since each; `seen_at`: the later of the two, so rows past every window are pruned by
-- one indexed range (the store prunes on every write).

CREATE TABLE interactions (
    account      TEXT NOT NULL,
    openid       TEXT NOT NULL,
    message_at   DOUBLE PRECISION,
    event_at     DOUBLE PRECISION,
    sent_message INTEGER NOT NULL DEFAULT 0,
    sent_event   INTEGER NOT NULL DEFAULT 0,
    seen_at      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (account, openid)
);
CREATE INDEX interactions_seen ON interactions (account, seen_at);
