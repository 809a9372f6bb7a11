//! What a client controls, made safe for the log: values escaped and cut
//! short, and a budget of warnings per connection so that one client cannot
//! flood the log.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest client-chosen value written to the log, in characters.
pub(crate) const MAX_LOGGED_CHARS: usize = 80;

/// Longest error or panic message written to the log, in characters: it
/// may quote client input, but the operator needs more of it.
pub(crate) const MAX_LOGGED_ERROR_CHARS: usize = 512;

/// Warnings one connection may cause per [`WARN_WINDOW`].
pub(crate) const WARNINGS_PER_WINDOW: u32 = 10;

/// The window of [`WARNINGS_PER_WINDOW`].
pub(crate) const WARN_WINDOW: Duration = Duration::from_secs(60);

/// A client-chosen value as the log shows it: control characters
/// (newlines, ANSI escapes) and quotes escaped, at most
/// [`MAX_LOGGED_CHARS`] characters, with the length of what was cut.
pub(crate) struct Escaped<'a>(&'a str, usize);

/// A client-chosen value (a name, a reason): up to [`MAX_LOGGED_CHARS`].
pub(crate) fn escaped(value: &str) -> Escaped<'_> {
    Escaped(value, MAX_LOGGED_CHARS)
}

impl<'a> Escaped<'a> {
    /// An error or panic message: up to [`MAX_LOGGED_ERROR_CHARS`].
    pub(crate) fn long(value: &'a str) -> Self {
        Escaped(value, MAX_LOGGED_ERROR_CHARS)
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.char_indices();
        for (_, ch) in chars.by_ref().take(self.1) {
            if ch.is_control() || matches!(ch, '"' | '\\') || is_invisible(ch) {
                write!(f, "{}", ch.escape_default())?;
            } else {
                write!(f, "{ch}")?;
            }
        }
        if let Some((at, _)) = chars.next() {
            write!(f, "…({} more bytes)", self.0.len() - at)?;
        }
        Ok(())
    }
}

/// Characters that reorder or hide text on a terminal.
fn is_invisible(ch: char) -> bool {
    matches!(ch, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// The warning budget of one connection.
#[derive(Debug)]
pub(crate) struct WarnLimit {
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    count: u32,
}

/// Whether to write a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Warn {
    /// Write it.
    Yes,
    /// Write it, and say that the next ones are held back.
    Last,
    /// Hold it back.
    No,
}

impl Default for WarnLimit {
    fn default() -> Self {
        Self {
            state: Mutex::new(Window {
                started: Instant::now(),
                count: 0,
            }),
        }
    }
}

impl WarnLimit {
    /// Count one warning at `now`.
    pub(crate) fn take(&self, now: Instant) -> Warn {
        let mut window = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(window.started) >= WARN_WINDOW {
            window.started = now;
            window.count = 0;
        }
        window.count = window.count.saturating_add(1);
        match window.count.cmp(&WARNINGS_PER_WINDOW) {
            std::cmp::Ordering::Less => Warn::Yes,
            std::cmp::Ordering::Equal => Warn::Last,
            std::cmp::Ordering::Greater => Warn::No,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_values_cut() {
        assert_eq!(escaped("say_hello").to_string(), "say_hello");
        assert_eq!(
            escaped("a\nINFO forged\u{1b}[31m\"").to_string(),
            "a\\nINFO forged\\u{1b}[31m\\\""
        );
        assert_eq!(escaped("\u{202e}x").to_string(), "\\u{202e}x");
        let long = "é".repeat(40_000);
        let shown = escaped(&long).to_string();
        assert!(shown.starts_with(&"é".repeat(MAX_LOGGED_CHARS)));
        assert!(shown.ends_with("…(79840 more bytes)"), "{shown}");
        assert!(shown.len() < 200);
    }

    #[test]
    fn a_connection_gets_a_budget_of_warnings_per_window() {
        let limit = WarnLimit::default();
        let start = Instant::now();
        let taken: Vec<Warn> = (0..WARNINGS_PER_WINDOW + 5)
            .map(|_| limit.take(start))
            .collect();
        assert!(
            taken[..WARNINGS_PER_WINDOW as usize - 1]
                .iter()
                .all(|w| *w == Warn::Yes)
        );
        assert_eq!(taken[WARNINGS_PER_WINDOW as usize - 1], Warn::Last);
        assert!(
            taken[WARNINGS_PER_WINDOW as usize..]
                .iter()
                .all(|w| *w == Warn::No)
        );
        assert_eq!(limit.take(start + WARN_WINDOW), Warn::Yes);
    }
}
