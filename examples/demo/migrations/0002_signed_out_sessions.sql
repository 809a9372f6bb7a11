-- Sessions ended by signing out, kept until their cookie would have
-- expired anyway. Every process sharing the database refuses them, and
-- closes the connections it has of those signed out elsewhere.

CREATE TABLE signed_out_sessions (
    -- AUTOINCREMENT: processes follow new sign-outs by id, which only grows.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The user id a sign-in made (a fresh one each time).
    session     TEXT    NOT NULL UNIQUE,
    -- Unix time in milliseconds.
    expires_at  INTEGER NOT NULL
);

CREATE INDEX signed_out_sessions_by_expiry ON signed_out_sessions (expires_at);
