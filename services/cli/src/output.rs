//! Everything `etl` prints on stdout goes through here, so that a reader that goes away
//! (`etl status | head -1`) ends the output quietly instead of a panic: once stdout is closed
//! (`EPIPE`), later writes are dropped and the command finishes with its own exit code.
//!
//! With `--json` a command prints one JSON document ([`json`]) and nothing else on stdout;
//! progress and logs go to stderr.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether stdout's reader went away.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Writes `bytes` to stdout; a closed pipe (or any other write error: there is nowhere left to
/// report it) stops all further output.
pub fn bytes(bytes: &[u8]) {
    if closed() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::debug!(error = %err, "stdout is not writable; dropping the rest of the output");
        }
    }
}

/// One line of text on stdout.
pub fn line(text: impl AsRef<str>) {
    let mut text = text.as_ref().to_owned();
    text.push('\n');
    bytes(text.as_bytes());
}

/// `value` as one pretty-printed JSON document on stdout.
pub fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_vec_pretty(value) {
        Ok(mut text) => {
            text.push(b'\n');
            bytes(&text);
        }
        // Only a map with non-string keys fails, which no output type has.
        Err(err) => eprintln!("etl: could not encode the output as JSON: {err}"),
    }
}

/// `println!` through [`line`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::line(format!($($arg)*))
    };
}
