//! R-J5 over the whole end-to-end suite: reads what `capture` wrote while the suite ran (every log line at
//! `debug` and every metric document of the functions) and fails if any holds an e-mail address or a
//! name the suite's OPTIGEM and Brevo held. It also fails on an empty or implausible capture, so a scan
//! that saw nothing cannot pass.
//!
//! `cargo run -p optisync-e2e --bin pii-scan -- <capture folder>` (`tests/run` does this).

use optisync_e2e::capture::scan;
use std::process::ExitCode;

/// Metrics every run of the suite produces; missing ones mean the capture missed the functions.
const EXPECTED: [&str; 7] = [
    "WebhooksAccepted",
    "WebhooksRejected",
    "EventsProcessed",
    "EspCalls",
    "RecipientsActivated",
    "RecipientsDeactivated",
    "AssignmentsEnded",
];

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: pii-scan <capture folder>");
        return ExitCode::from(2);
    };
    let scan = match scan(std::path::Path::new(&dir)) {
        Ok(scan) => scan,
        Err(e) => {
            eprintln!("pii-scan: cannot read the capture: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "pii-scan (R-J5): {} log lines, {} metric documents, {} personal values looked for; metrics seen: {}",
        scan.lines,
        scan.metric_documents,
        scan.personal_values,
        scan.metrics.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    let missing: Vec<&str> = EXPECTED.iter().copied().filter(|m| !scan.metrics.contains(*m)).collect();
    let mut ok = true;
    if scan.lines < 1000 || scan.personal_values < 10 || !missing.is_empty() {
        eprintln!("pii-scan: the capture is too small to mean anything (missing metrics: {missing:?})");
        ok = false;
    }
    for finding in &scan.findings {
        eprintln!("pii-scan: personal data in {finding}");
        ok = false;
    }
    if ok {
        println!("pii-scan: no e-mail address and no name found");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
