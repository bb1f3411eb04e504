-- alertcast schema v9: a per-recipient delivery's sends in parts any replica may take (issue 15
-- item 4). Portable SQL.
--
-- The expansion of a parent delivery (migration 0008) writes its sends a chunk at a time; each
-- chunk is now also a *part*: the recipient ids in (after_id, last_id], written in the same
-- transaction as its sends, so the parts are the expansion's cursor (the next chunk starts
-- after the highest last_id) and a crash between two chunks loses nothing and repeats nothing.
--
-- A part is taken like a delivery: `worker` and `lease_until`, claimed with FOR UPDATE SKIP
-- LOCKED on PostgreSQL, renewed while its sends go out, taken by anyone once the lease has run
-- out. `done_at` is set, in the transaction recording its last outcome, once every send of it
-- has been tried; `worker` then says who held it last. The replica holding the parent takes
-- parts too, waits for the others' to be done, then retries and decides the parent's verdict.

CREATE TABLE recipient_parts (
    delivery_id TEXT NOT NULL,
    after_id    TEXT NOT NULL,
    last_id     TEXT NOT NULL,
    size        INTEGER NOT NULL,
    worker      TEXT,
    lease_until DOUBLE PRECISION,
    done_at     DOUBLE PRECISION,
    PRIMARY KEY (delivery_id, after_id)
);
-- The parts still to do: what a replica looks for when it has room.
CREATE INDEX recipient_parts_open ON recipient_parts (delivery_id, after_id)
    WHERE done_at IS NULL;
