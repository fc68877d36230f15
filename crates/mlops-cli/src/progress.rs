//! Progress on stderr for work longer than about a second: never in JSON mode, never when stderr
//! is not a terminal. Fed by the libraries' callbacks.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long work must run before a bar appears.
const DELAY: Duration = Duration::from_secs(1);

/// A bar that stays hidden for the first second.
pub(crate) struct Bar {
    bar: ProgressBar,
    enabled: bool,
    started: std::time::Instant,
}

impl Bar {
    /// A byte-and-object transfer bar; hidden entirely when `enabled` is false.
    pub(crate) fn transfer(enabled: bool, what: &str) -> Arc<Self> {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {prefix}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_owned());
        Arc::new(Self {
            bar,
            enabled,
            started: std::time::Instant::now(),
        })
    }

    /// A spinner for work without a known size.
    pub(crate) fn spinner(enabled: bool, what: &str) -> Arc<Self> {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(what.to_owned());
        let this = Arc::new(Self {
            bar,
            enabled,
            started: std::time::Instant::now(),
        });
        if enabled {
            let weak = Arc::downgrade(&this);
            std::thread::spawn(move || {
                std::thread::sleep(DELAY);
                if let Some(b) = weak.upgrade()
                    && !b.bar.is_finished()
                {
                    b.bar.set_draw_target(ProgressDrawTarget::stderr());
                    b.bar.enable_steady_tick(Duration::from_millis(120));
                }
            });
        }
        this
    }

    /// Updates a transfer bar from the library's counters.
    pub(crate) fn update(&self, p: &mlops_cas::Progress) {
        if !self.enabled {
            return;
        }
        if self.bar.is_hidden() && self.started.elapsed() >= DELAY {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.set_length(p.bytes_total);
        self.bar.set_position(p.bytes_done);
        self.bar
            .set_prefix(format!("{}/{} objects", p.objects_done, p.objects_total));
    }

    /// Removes the bar from the terminal.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
