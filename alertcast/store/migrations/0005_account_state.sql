-- alertcast schema v5: every account's pause, so a restart keeps it. Portable SQL.
--
-- One row per configured account that was ever paused. `paused_for` says why it is held:
-- `quota` (the platform's quota is spent until `paused_until`, WeChat's next midnight in
-- Asia/Shanghai; its alerts go to the account's fallback at once meanwhile) or `credentials`
-- (the platform rejected them: held until they are replaced or an operator resumes it);
-- NULL when it is not paused any more. `paused_credentials` is a salted digest of the
-- rejected credentials' fingerprint, never the credentials: a daemon that starts with other
-- credentials does not restore that pause. `updated_at` orders the writes of several replicas:
-- each adopts the rows written after the ones it knows.

CREATE TABLE account_state (
    account            TEXT PRIMARY KEY,
    paused_for         TEXT,
    paused_reason      TEXT,
    paused_until       DOUBLE PRECISION,
    paused_credentials TEXT,
    updated_at         DOUBLE PRECISION NOT NULL
);
