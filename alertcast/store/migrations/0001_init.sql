-- alertcast schema v1. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Times are Unix seconds (double precision); JSON is stored as text.

CREATE TABLE incidents (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    msg_type    TEXT NOT NULL,
    state       TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    source      TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    expires_at  DOUBLE PRECISION,
    refs        TEXT REFERENCES incidents(id),
    reason      TEXT
);
CREATE INDEX incidents_created ON incidents (created_at);
CREATE INDEX incidents_refs ON incidents (refs);

CREATE TABLE deliveries (
    id                 TEXT PRIMARY KEY,
    incident_id        TEXT NOT NULL REFERENCES incidents(id),
    account            TEXT NOT NULL,
    channel            TEXT NOT NULL,
    state              TEXT NOT NULL,
    reason             TEXT,
    payload            TEXT NOT NULL,
    idempotency_key    TEXT NOT NULL,
    action             TEXT NOT NULL DEFAULT 'post',
    target_delivery_id TEXT,
    wait_for           TEXT,
    priority           INTEGER NOT NULL DEFAULT 0,
    attempts           INTEGER NOT NULL DEFAULT 0,
    max_attempts       INTEGER NOT NULL,
    next_attempt_at    DOUBLE PRECISION,
    expires_at         DOUBLE PRECISION,
    claimed_by         TEXT,
    lease_until        DOUBLE PRECISION,
    last_error         TEXT,
    remote_id          TEXT,
    delivered_at       DOUBLE PRECISION,
    created_at         DOUBLE PRECISION NOT NULL,
    updated_at         DOUBLE PRECISION NOT NULL
);
CREATE INDEX deliveries_incident ON deliveries (incident_id);
CREATE INDEX deliveries_state ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_account ON deliveries (account, state);

CREATE TABLE attempts (
    delivery_id     TEXT NOT NULL REFERENCES deliveries(id),
    number          INTEGER NOT NULL,
    started_at      DOUBLE PRECISION NOT NULL,
    duration_ms     DOUBLE PRECISION NOT NULL,
    outcome         TEXT NOT NULL,
    http_status     INTEGER,
    error_code      TEXT,
    error           TEXT,
    next_attempt_at DOUBLE PRECISION,
    PRIMARY KEY (delivery_id, number)
);

CREATE TABLE idempotency_keys (
    issuer      TEXT NOT NULL,
    key         TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (issuer, key)
);

CREATE TABLE audit (
    at          DOUBLE PRECISION NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    incident_id TEXT,
    delivery_id TEXT,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_incident ON audit (incident_id, at);
