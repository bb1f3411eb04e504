-- alertcast schema v8: per-recipient accounts (issue 15 item 2). Portable SQL.
--
-- `recipients`: the people a per-recipient account addresses one by one (a webhook account with
-- `per_recipient = true`), loaded by `alertcast recipients import ACCOUNT FILE`. `region` is
-- the GB/T 2260 code of where they are (NULL: everywhere, they get every incident the account
-- takes); `data` is the JSON object of the channel's own columns of the CSV.
--
-- `recipient_sends`: one row per recipient of one delivery (the account's "parent" delivery of
-- an incident), written by the dispatcher's expansion step in chunks (INSERT … SELECT, ON
-- CONFLICT DO NOTHING: a chunk written twice after a crash changes nothing), then settled one
-- by one: `pending` -> `delivered` | `retrying` (at `next_attempt_at`) | `failed` | `dead`.
-- The parent's `progress` holds the expansion's cursor, never the list itself.

CREATE TABLE recipients (
    account TEXT NOT NULL,
    id      TEXT NOT NULL,
    region  TEXT,
    data    TEXT NOT NULL,
    PRIMARY KEY (account, id)
);
CREATE INDEX recipients_region ON recipients (account, region);

CREATE TABLE recipient_sends (
    delivery_id     TEXT NOT NULL,
    recipient_id    TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION,
    http_status     INTEGER,
    last_error      TEXT,
    updated_at      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (delivery_id, recipient_id)
);
CREATE INDEX recipient_sends_state ON recipient_sends (delivery_id, state);
-- The sends still due, in recipient order: a page of them is read without sorting (a settled
-- send leaves this index, so it shrinks as the delivery goes out).
CREATE INDEX recipient_sends_due ON recipient_sends (delivery_id, recipient_id)
    WHERE state IN ('pending', 'retrying');
