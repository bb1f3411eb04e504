-- alertcast schema v2: what each feed knows of each real event. Portable SQL (SQLite, PostgreSQL).
--
-- One row per real event per [[feeds]] entry, unique on (feed, event_id): the event id it was
-- first seen under. `known` is KnownEvent.to_json(); `pending` is an action (raise, update,
-- cancel) claimed by the writer of this version and not yet confirmed done, so a replica or a
-- restarted daemon finishes it under the same idempotency key instead of acting twice.
-- `version` grows by one on every write: a write names the version it read, and loses (changes
-- nothing) when another writer got there first.

CREATE TABLE feed_events (
    feed        TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    known       TEXT NOT NULL,
    ids         TEXT NOT NULL,
    incident_id TEXT,
    live        INTEGER NOT NULL DEFAULT 0,
    event_time  DOUBLE PRECISION NOT NULL,
    pending     TEXT,
    version     INTEGER NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (feed, event_id)
);
CREATE INDEX feed_events_time ON feed_events (feed, event_time);
CREATE INDEX feed_events_live ON feed_events (feed, live, event_time);

-- Every id an event went by (USGS `ids`), each pointing at exactly one event of the feed.
CREATE TABLE feed_event_ids (
    feed     TEXT NOT NULL,
    id       TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (feed, id)
);
CREATE INDEX feed_event_ids_event ON feed_event_ids (feed, event_id);
