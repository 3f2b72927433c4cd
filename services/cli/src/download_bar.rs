//! The progress bar of `etl trigger`: while the extractor downloads, its progress reports
//! (`etl.<env>.progress.<source>`) are drawn on stderr, one bar per file, when stderr is a
//! terminal. Reports are best-effort: a missing one only makes the bar jump.

use std::future::Future;
use std::io::{IsTerminal, Write};

use futures::StreamExt;
use shared::Env;
use shared::events::DownloadProgress;

/// Width of the bar itself, in characters.
const BAR_WIDTH: usize = 30;

/// Runs `work` while drawing the downloads of `env` on stderr (unless `quiet`, or stderr is not a
/// terminal), and returns its result.
pub async fn show_while<T>(
    client: &async_nats::Client,
    env: &Env,
    quiet: bool,
    work: impl Future<Output = T>,
) -> T {
    if quiet || !std::io::stderr().is_terminal() {
        return work.await;
    }
    let subject = format!("etl.{env}.progress.*");
    let Ok(mut reports) = client.subscribe(subject).await else {
        return work.await;
    };
    tokio::pin!(work);
    let mut drawing = false;
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            Some(message) = reports.next() => {
                let Ok(report) = serde_json::from_slice::<DownloadProgress>(&message.payload) else {
                    continue;
                };
                let whole = report.received_bytes >= report.total_bytes;
                let mut stderr = std::io::stderr().lock();
                let _ = write!(stderr, "\r{}", bar_line(&report));
                if whole {
                    let _ = writeln!(stderr);
                }
                let _ = stderr.flush();
                drawing = !whole;
            }
        }
    };
    if drawing {
        eprintln!();
    }
    result
}

/// One bar: `nyt  [###########-------------------]  37%   3.4 of 9.2 MB`.
pub fn bar_line(report: &DownloadProgress) -> String {
    let total = report.total_bytes.max(1);
    let received = report.received_bytes.min(total);
    let filled = usize::try_from(received * BAR_WIDTH as u64 / total).unwrap_or(BAR_WIDTH);
    format!(
        "{:<4} [{}{}] {:>3}%  {} of {}",
        report.source.as_str(),
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled),
        received * 100 / total,
        megabytes(received),
        megabytes(report.total_bytes),
    )
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Source;

    fn report(received_bytes: u64, total_bytes: u64) -> DownloadProgress {
        DownloadProgress {
            source: Source::NYT,
            commit: "abc".into(),
            received_bytes,
            total_bytes,
        }
    }

    #[test]
    fn the_bar_fills_in_proportion_to_the_bytes_received() {
        assert_eq!(
            bar_line(&report(0, 9_200_000)),
            format!("nyt  [{}]   0%  0.0 MB of 9.2 MB", "-".repeat(30))
        );
        assert_eq!(
            bar_line(&report(3_400_000, 9_200_000)),
            format!(
                "nyt  [{}{}]  36%  3.4 MB of 9.2 MB",
                "#".repeat(11),
                "-".repeat(19)
            )
        );
        assert_eq!(
            bar_line(&report(9_200_000, 9_200_000)),
            format!("nyt  [{}] 100%  9.2 MB of 9.2 MB", "#".repeat(30))
        );
    }

    #[test]
    fn odd_reports_draw_a_full_or_empty_bar_without_panicking() {
        assert!(bar_line(&report(10, 0)).contains("100%"));
        assert!(bar_line(&report(20, 10)).contains("100%"));
    }
}
