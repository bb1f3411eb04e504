-- alertcast schema v11: an account's failed correction, kept with its pause. Portable SQL.
--
-- `correction_failed` names a correction that reached no one on the account ("<delivery>
-- (<incident>): why"): the account shows unhealthy until the correction is re-driven and
-- delivered, or an operator resumes the account. Stored so that every replica of a shared
-- PostgreSQL and a restarted daemon show it, not only the process that sent it.
-- `correction_failed_at` is when the flag was last set or cleared (NULL: never): a write
-- replaces the stored flag only with a newer one (alertcast/store/account_sql.py), so a
-- replica that had not yet heard of a failure does not clear it by writing its pause.

ALTER TABLE account_state ADD COLUMN correction_failed TEXT;
ALTER TABLE account_state ADD COLUMN correction_failed_at DOUBLE PRECISION;
