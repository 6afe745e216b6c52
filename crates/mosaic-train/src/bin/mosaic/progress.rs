//! Progress bars on a terminal, nothing when output goes elsewhere or `--quiet` is given.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether bars are drawn: on a terminal, unless `quiet`.
pub fn is_shown(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A byte-counting bar on stderr, hidden when stderr is not a terminal or `quiet`.
pub fn bytes_bar(message: &str, quiet: bool) -> ProgressBar {
    if !is_shown(quiet) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// A step-counting bar on stderr, hidden as [`bytes_bar`].
pub fn step_bar(len: u64, quiet: bool) -> ProgressBar {
    if !is_shown(quiet) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}
