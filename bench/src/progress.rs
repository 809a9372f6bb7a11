//! What a run is measuring, as it goes: a progress bar on a terminal
//! (`indicatif`), one line per step elsewhere (CI's log).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static BAR: OnceLock<ProgressBar> = OnceLock::new();

/// Whether a step has begun (the next one completes it).
static IN_STEP: AtomicBool = AtomicBool::new(false);

/// The run's bar; hidden until [`start`] gives it a length.
fn bar() -> &'static ProgressBar {
    BAR.get_or_init(ProgressBar::hidden)
}

/// Start showing progress over `steps` steps. On a terminal a bar with the
/// elapsed time and the step being measured; elsewhere nothing until
/// [`step`] prints its line.
pub(crate) fn start(steps: u64) {
    let bar = bar();
    bar.set_length(steps);
    bar.set_position(0);
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(250));
}

/// A new step: `what` is being measured now.
pub(crate) fn step(what: &str) {
    let bar = bar();
    if IN_STEP.swap(true, Ordering::Relaxed) {
        bar.inc(1);
    }
    say(&format!("== {what}"), |bar| {
        bar.set_message(what.to_owned())
    });
}

/// A detail of the current step (a slice, a subscriber count).
pub(crate) fn detail(what: &str) {
    say(&format!("  {what}"), |bar| bar.set_message(what.to_owned()));
}

/// A line that stays (a problem, a result), above the bar.
pub(crate) fn line(text: &str) {
    say(text, |bar| bar.println(text));
}

/// `text` on its own line when there is no bar, else `on_bar`.
fn say(text: &str, on_bar: impl FnOnce(&ProgressBar)) {
    let bar = bar();
    if bar.is_hidden() {
        eprintln!("{text}");
    } else {
        on_bar(bar);
    }
}

/// The run is over: the bar goes.
pub(crate) fn finish() {
    let bar = bar();
    bar.set_position(bar.length().unwrap_or(0));
    bar.finish_and_clear();
}
