//! The database: a SQLite file, created and migrated on first start.
//!
//! Alerts of the alert system and the product catalogue of the live search
//! live here. Every query is a constant string with bound parameters; user
//! input never becomes SQL.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{SqlSafeStr, Sqlite, Transaction};

/// The migrations, oldest first, compiled into the binary so the demo runs
/// from any working directory.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "alerts and products",
        include_str!("../migrations/0001_alerts_and_products.sql"),
    ),
    (
        2,
        "signed-out sessions",
        include_str!("../migrations/0002_signed_out_sessions.sql"),
    ),
];

/// The longest alert message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// The longest auto-dismiss delay, in seconds.
pub const MAX_DISMISS_SECONDS: u32 = 3600;

/// What can go wrong with the database.
#[derive(Debug)]
#[non_exhaustive]
pub enum DbError {
    /// Opening the file or running a query failed.
    Sqlx(sqlx::Error),
    /// A migration could not be applied.
    Migrate(sqlx::migrate::MigrateError),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlx(err) => write!(f, "database error: {err}"),
            Self::Migrate(err) => write!(f, "database migration failed: {err}"),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sqlx(err) => Some(err),
            Self::Migrate(err) => Some(err),
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        Self::Sqlx(err)
    }
}

impl From<sqlx::migrate::MigrateError> for DbError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(err)
    }
}

/// The three kinds of alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// Something to know.
    Info,
    /// Something to watch.
    Warning,
    /// Something broken.
    Error,
}

impl AlertKind {
    /// Every kind, in the order the form offers them.
    pub const ALL: [AlertKind; 3] = [AlertKind::Info, AlertKind::Warning, AlertKind::Error];

    /// The name stored in the database and sent by the form.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Info => "info",
            AlertKind::Warning => "warning",
            AlertKind::Error => "error",
        }
    }
}

impl FromStr for AlertKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    /// Its id, never reused.
    pub id: i64,
    /// Its kind.
    pub kind: AlertKind,
    /// The text as the user wrote it (escaped when rendered, never here).
    pub message: String,
    /// When it was created, in Unix milliseconds.
    pub created_at: i64,
    /// When it disappears, in Unix milliseconds, if it does.
    pub dismiss_at: Option<i64>,
}

/// A valid alert that is not stored yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// Its kind.
    pub kind: AlertKind,
    /// Its text: 1 to [`MAX_MESSAGE_CHARS`] characters.
    pub message: String,
    /// Remove it after this long, if set.
    pub dismiss_after: Option<Duration>,
}

/// A product of the search catalogue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Product {
    /// Its id.
    pub id: i64,
    /// Its name, e.g. "Rustic Walnut Desk Lamp".
    pub name: String,
    /// Its category, e.g. "Lighting".
    pub category: String,
    /// Its price in cents.
    pub price_cents: i64,
}

/// One page of search results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPage {
    /// The first matches, by name.
    pub products: Vec<Product>,
    /// How many products match in all.
    pub total: i64,
}

/// The most search terms that are used; later words are ignored.
pub const MAX_SEARCH_TERMS: usize = 4;

/// A pool of connections to the demo's SQLite file. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: SqlitePool,
}

type AlertRow = (i64, String, String, i64, Option<i64>);

fn alert_from_row((id, kind, message, created_at, dismiss_at): AlertRow) -> Alert {
    Alert {
        id,
        // The CHECK constraint keeps other kinds out of the table.
        kind: kind.parse().unwrap_or(AlertKind::Info),
        message,
        created_at,
        dismiss_at,
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Db {
    /// Open (creating it if needed) the SQLite file at `path` and apply the
    /// migrations it has not seen yet.
    pub async fn open(path: &Path) -> Result<Self, DbError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let db = Self { pool };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), DbError> {
        let migrations = MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// Fill the product catalogue with `count` generated products, unless
    /// it has some already. Returns whether it did.
    pub async fn seed_products(&self, count: usize) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM products")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            return Ok(false);
        }
        insert_products(&mut tx, &crate::catalogue::generate(count)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Store a new alert, created at `now` (Unix milliseconds).
    pub async fn insert_alert(&self, alert: &NewAlert, now: i64) -> Result<Alert, DbError> {
        let dismiss_at = alert
            .dismiss_after
            .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO alerts (kind, message, created_at, dismiss_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(alert.kind.as_str())
        .bind(&alert.message)
        .bind(now)
        .bind(dismiss_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(Alert {
            id,
            kind: alert.kind,
            message: alert.message.clone(),
            created_at: now,
            dismiss_at,
        })
    }

    /// Up to `limit` alerts older than the alert `before` (all when `None`),
    /// newest first, leaving out those due to be dismissed by `now`.
    pub async fn alerts(
        &self,
        before: Option<i64>,
        limit: u32,
        now: i64,
    ) -> Result<Vec<Alert>, DbError> {
        let rows: Vec<AlertRow> = sqlx::query_as(
            "SELECT id, kind, message, created_at, dismiss_at FROM alerts \
             WHERE id < ? AND (dismiss_at IS NULL OR dismiss_at > ?) \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(alert_from_row).collect())
    }

    /// The alert with this id, if it exists.
    pub async fn alert(&self, id: i64) -> Result<Option<Alert>, DbError> {
        let row: Option<AlertRow> = sqlx::query_as(
            "SELECT id, kind, message, created_at, dismiss_at FROM alerts WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(alert_from_row))
    }

    /// Delete an alert; whether it existed.
    pub async fn delete_alert(&self, id: i64) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM alerts WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Delete the alerts due to be dismissed by `now`; their ids.
    pub async fn delete_due_alerts(&self, now: i64) -> Result<Vec<i64>, DbError> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "DELETE FROM alerts WHERE dismiss_at IS NOT NULL AND dismiss_at <= ? RETURNING id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// When the next alert is due to be dismissed, if any is.
    pub async fn next_dismissal(&self) -> Result<Option<i64>, DbError> {
        let (next,): (Option<i64>,) =
            sqlx::query_as("SELECT MIN(dismiss_at) FROM alerts WHERE dismiss_at IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(next)
    }

    /// How many alerts are stored.
    pub async fn alert_count(&self) -> Result<i64, DbError> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM alerts")
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }

    /// How many products the catalogue has.
    pub async fn product_count(&self) -> Result<i64, DbError> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM products")
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }

    /// The first `limit` products, by name, whose name or category contains
    /// every one of `terms` (case-insensitively), and how many match in
    /// all. At most [`MAX_SEARCH_TERMS`] terms are used.
    pub async fn search_products(
        &self,
        terms: &[String],
        limit: u32,
    ) -> Result<SearchPage, DbError> {
        let mut patterns = terms
            .iter()
            .take(MAX_SEARCH_TERMS)
            .map(|term| format!("%{}%", escape_like(term)));
        let mut next = || patterns.next().unwrap_or_else(|| "%".to_owned());
        // An unused slot is '%', which matches everything.
        let rows: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, name, category, price_cents, COUNT(*) OVER () FROM products \
             WHERE (name || ' ' || category) LIKE ?1 ESCAPE '\\' \
               AND (name || ' ' || category) LIKE ?2 ESCAPE '\\' \
               AND (name || ' ' || category) LIKE ?3 ESCAPE '\\' \
               AND (name || ' ' || category) LIKE ?4 ESCAPE '\\' \
             ORDER BY name, id LIMIT ?5",
        )
        .bind(next())
        .bind(next())
        .bind(next())
        .bind(next())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let total = rows.first().map_or(0, |row| row.4);
        let products = rows
            .into_iter()
            .map(|(id, name, category, price_cents, _)| Product {
                id,
                name,
                category,
                price_cents,
            })
            .collect();
        Ok(SearchPage { products, total })
    }

    /// Remember `session` as signed out until `expires_at` (Unix
    /// milliseconds), and forget the sessions whose time is over by `now`.
    pub async fn sign_out(&self, session: &str, expires_at: i64, now: i64) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM signed_out_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signed_out_sessions (session, expires_at) VALUES (?, ?) \
             ON CONFLICT (session) DO NOTHING",
        )
        .bind(session)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether `session` was signed out (and its time is not over by
    /// `now`).
    pub async fn is_signed_out(&self, session: &str, now: i64) -> Result<bool, DbError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM signed_out_sessions WHERE session = ? AND expires_at > ?",
        )
        .bind(session)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The sessions signed out after the sign-out numbered `after`, oldest
    /// first, each with its number (numbers only grow; `0` is before the
    /// first).
    pub async fn signed_out_since(&self, after: i64) -> Result<Vec<(i64, String)>, DbError> {
        Ok(
            sqlx::query_as("SELECT id, session FROM signed_out_sessions WHERE id > ? ORDER BY id")
                .bind(after)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The number of the latest sign-out (`0` before the first).
    pub async fn last_sign_out(&self) -> Result<i64, DbError> {
        let (last,): (Option<i64>,) = sqlx::query_as("SELECT MAX(id) FROM signed_out_sessions")
            .fetch_one(&self.pool)
            .await?;
        Ok(last.unwrap_or(0))
    }

    /// Close the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn insert_products(
    tx: &mut Transaction<'_, Sqlite>,
    products: &[Product],
) -> Result<(), DbError> {
    for product in products {
        sqlx::query("INSERT INTO products (id, name, category, price_cents) VALUES (?, ?, ?, ?)")
            .bind(product.id)
            .bind(&product.name)
            .bind(&product.category)
            .bind(product.price_cents)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// `%`, `_` and `\` match themselves in a `LIKE ... ESCAPE '\'` pattern.
fn escape_like(term: &str) -> String {
    let mut out = String::with_capacity(term.len());
    for ch in term.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(escape_like("lamp"), "lamp");
    }

    #[test]
    fn kinds_round_trip() {
        for kind in AlertKind::ALL {
            assert_eq!(kind.as_str().parse::<AlertKind>(), Ok(kind));
        }
        assert!("critical".parse::<AlertKind>().is_err());
        assert!("Info".parse::<AlertKind>().is_err());
    }
}
