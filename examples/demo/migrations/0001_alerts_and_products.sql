-- Alerts of the alert system, and the product catalogue of the live search.

CREATE TABLE alerts (
    -- AUTOINCREMENT: the id of a deleted alert is never given again, so a
    -- page that still shows it cannot delete a newer alert by mistake.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('info', 'warning', 'error')),
    message     TEXT    NOT NULL CHECK (length(message) BETWEEN 1 AND 500),
    -- Unix time in milliseconds.
    created_at  INTEGER NOT NULL,
    -- When the background task removes it; NULL keeps it until deleted.
    dismiss_at  INTEGER
);

CREATE INDEX alerts_by_dismiss_at ON alerts (dismiss_at) WHERE dismiss_at IS NOT NULL;

CREATE TABLE products (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    category     TEXT    NOT NULL,
    price_cents  INTEGER NOT NULL CHECK (price_cents > 0)
);
