//! Captures every log line and metric the end-to-end suite produces, for the R-J5 scan
//! (`src/bin/pii-scan.rs`, run by `tests/run` after the suite).
//!
//! With `OPTISYNC_CAPTURE_DIR` set, the first [`crate::Stack`] of a test process installs a JSON log
//! subscriber at `debug` (the most the template allows) for every crate but the test doubles, and the
//! metrics collector the functions use in Lambda; both write to `{dir}/{pid}.log`. Each stack, when
//! dropped, flushes the metrics there and writes the personal data it held (names, e-mails, attribute
//! values of the simulated OPTIGEM and the fake Brevo) to `{dir}/{pid}-{n}.pii.json`, which the scan looks
//! for in the log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The variable that names the capture folder.
pub const DIR_VAR: &str = "OPTISYNC_CAPTURE_DIR";

/// Targets that are test doubles, not the product: their logs are not the product's.
const DOUBLES: [&str; 3] = ["optisync_fakes::brevo", "optisync_fakes::cleverreach", "optisync_optigem_sim"];

struct Capture {
    dir: PathBuf,
    log: &'static Mutex<File>,
    metrics: &'static metrics_cloudwatch_embedded::Collector,
}

static CAPTURE: OnceLock<Option<Capture>> = OnceLock::new();
static STACKS: AtomicUsize = AtomicUsize::new(0);

fn capture() -> Option<&'static Capture> {
    CAPTURE
        .get_or_init(|| {
            let dir = PathBuf::from(std::env::var_os(DIR_VAR)?);
            std::fs::create_dir_all(&dir).expect("the capture folder");
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{}.log", std::process::id())))
                .expect("the capture file");
            let log: &'static Mutex<File> = Box::leak(Box::new(Mutex::new(file)));
            let mut filter = tracing_subscriber::EnvFilter::new("debug");
            for target in DOUBLES {
                filter = filter.add_directive(format!("{target}=off").parse().expect("a directive"));
            }
            tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(move || Shared(log)).init();
            let metrics =
                optisync_lambda::telemetry::collector(metrics_cloudwatch_embedded::Builder::new(), "optisync/e2e")
                    .expect("the metrics collector");
            Some(Capture { dir, log, metrics })
        })
        .as_ref()
}

/// Starts capturing, if asked to (once per process).
pub fn install() {
    let _ = capture();
}

/// Flushes the metrics into the log and writes `pii`, the personal data a stack held, beside it (gathered
/// only when capturing).
pub fn finish(pii: impl FnOnce() -> Vec<String>) {
    let Some(c) = capture() else { return };
    {
        let mut log = c.log.lock().unwrap_or_else(|e| e.into_inner());
        c.metrics.flush(&mut *log).expect("metrics written");
        log.flush().expect("log flushed");
    }
    let n = STACKS.fetch_add(1, Ordering::Relaxed);
    let path = c.dir.join(format!("{}-{n}.pii.json", std::process::id()));
    std::fs::write(path, serde_json::to_vec(&pii()).expect("json")).expect("the personal data file");
}

/// The log file, shared by the subscriber and the metrics flush (a line is one write).
struct Shared(&'static Mutex<File>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// What the scan of a capture folder found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Log lines read (metric documents included).
    pub lines: usize,
    /// Metric documents (EMF) among them.
    pub metric_documents: usize,
    /// The metric names the documents carried.
    pub metrics: std::collections::BTreeSet<String>,
    /// Personal values the stacks held.
    pub personal_values: usize,
    /// Findings: file, line number and what was found (masked), at most 20.
    pub findings: Vec<String>,
}

/// Scans every `*.log` of `dir` for an e-mail address (any) and for the personal values of the
/// `*.pii.json` files (e-mails in any case, names and other texts as whole words).
pub fn scan(dir: &std::path::Path) -> std::io::Result<Scan> {
    let mut scan = Scan::default();
    let mut emails = std::collections::BTreeSet::new();
    let mut texts = std::collections::BTreeSet::new();
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.ends_with(".pii.json") {
            let values: Vec<String> = serde_json::from_slice(&std::fs::read(&path)?).map_err(std::io::Error::other)?;
            for value in values {
                let value = value.trim().to_owned();
                if value.contains('@') {
                    emails.insert(value.to_lowercase());
                } else if value.chars().filter(|c| c.is_alphabetic()).count() >= 3 {
                    texts.insert(value);
                }
            }
        } else if name.ends_with(".log") {
            logs.push(path);
        }
    }
    scan.personal_values = emails.len() + texts.len();
    let any_email =
        regex::Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}").expect("regex");
    let words: Vec<(String, regex::Regex)> = texts
        .iter()
        .map(|t| (t.clone(), regex::Regex::new(&format!(r"\b{}\b", regex::escape(t))).expect("regex")))
        .collect();
    logs.sort();
    for path in logs {
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        for (n, line) in std::fs::read_to_string(&path)?.lines().enumerate() {
            scan.lines += 1;
            if let Ok(doc) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(defs) = doc.pointer("/_aws/CloudWatchMetrics/0/Metrics").and_then(|m| m.as_array())
            {
                scan.metric_documents += 1;
                scan.metrics.extend(defs.iter().filter_map(|d| d["Name"].as_str().map(str::to_owned)));
            }
            let lower = line.to_lowercase();
            let mut found: Vec<String> = any_email.find_iter(line).map(|m| mask(m.as_str())).collect();
            found.extend(emails.iter().filter(|e| lower.contains(e.as_str())).map(|e| mask(e)));
            found.extend(words.iter().filter(|(_, re)| re.is_match(line)).map(|(t, _)| mask(t)));
            for what in found {
                if scan.findings.len() < 20 {
                    scan.findings.push(format!("{file}:{}: {what}", n + 1));
                }
            }
        }
    }
    Ok(scan)
}

/// A finding as the report shows it: first letter and length, never the value.
fn mask(value: &str) -> String {
    let first: String = value.chars().take(1).collect();
    format!("{first}… ({} characters)", value.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(log: &str, pii: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a folder");
        std::fs::write(dir.path().join("1.log"), log).expect("log");
        std::fs::write(dir.path().join("1-0.pii.json"), serde_json::to_vec(pii).expect("json")).expect("pii");
        dir
    }

    #[test]
    fn r_j5_scan_finds_an_email_a_name_and_a_known_address_in_another_case() {
        let log = concat!(
            r#"{"level":"INFO","fields":{"message":"recipient lena.schmidt@example.org added"}}"#,
            "\n",
            r#"{"level":"DEBUG","fields":{"message":"upsert","who":"Schmidt"}}"#,
            "\n",
            r#"{"level":"WARN","fields":{"message":"unknown","value":"ANNA@BEISPIEL.DE"}}"#,
            "\n",
        );
        let dir = folder(log, &["lena.schmidt@example.org", "Schmidt", "Lena", "anna@beispiel.de"]);
        let scan = scan(dir.path()).expect("scan");
        assert_eq!(scan.lines, 3);
        assert!(scan.findings.iter().any(|f| f.starts_with("1.log:1:")), "{:?}", scan.findings);
        assert!(scan.findings.iter().any(|f| f.starts_with("1.log:2: S…")), "{:?}", scan.findings);
        assert!(scan.findings.iter().any(|f| f.starts_with("1.log:3:")), "{:?}", scan.findings);
        assert!(scan.findings.iter().all(|f| !f.contains("chmidt") && !f.contains("example")), "values are masked");
    }

    #[test]
    fn r_j5_scan_passes_keys_counts_and_masked_forms_and_reads_metric_documents() {
        let log = concat!(
            r#"{"level":"INFO","fields":{"message":"inbox entry applied","applied":1},"span":{"entry":"brevo:acc:3fa9","name":"event"}}"#,
            "\n",
            r#"{"level":"INFO","fields":{"message":"skipped","email":"l…@e….org","first_name_hash":"9c1e"}}"#,
            "\n",
            r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"optisync","Dimensions":[["Source"]],"Metrics":[{"Name":"WebhooksAccepted","Unit":"Count"}]}]},"Source":"brevo","WebhooksAccepted":1}"#,
            "\n",
        );
        let dir = folder(log, &["lena.schmidt@example.org", "Lena", "Schmidt"]);
        let scan = scan(dir.path()).expect("scan");
        assert!(scan.findings.is_empty(), "{:?}", scan.findings);
        assert_eq!((scan.lines, scan.metric_documents, scan.personal_values), (3, 1, 3));
        assert!(scan.metrics.contains("WebhooksAccepted"));
    }
}
