-- Expand step: safe while v1.4 still runs.
CREATE TABLE IF NOT EXISTS audit_log (
    id bigserial PRIMARY KEY,
    actor text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_at ON audit_log (at);

ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN display_name text;

CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_verified
    ON users (email_verified);

CREATE FUNCTION touch() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();  -- a ';' inside the body must not split the statement
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
