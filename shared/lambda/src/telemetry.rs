//! Logs and metrics of a function: JSON log lines through `tracing` (Lambda's `LogFormat: JSON` sets
//! `AWS_LAMBDA_LOG_FORMAT`, `RUST_LOG` the level) and the product's metrics
//! (`optisync_ports::metrics`) as CloudWatch Embedded Metric Format lines, written to stdout after each
//! invocation. The namespace comes from `METRICS_NAMESPACE` (the template sets `optisync/{Stage}`).
//!
//! Neither carries an e-mail address or a name (R-J5): the handlers log keys, counts and fixed words, and
//! metric dimensions are fixed words.

use metrics_cloudwatch_embedded::Collector;

/// The namespace when `METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "optisync";

/// Sets up logging and the metrics collector once per process; the collector then goes to [`run`] or
/// [`run_http`], which flush it after every invocation.
pub fn init() -> Result<&'static Collector, lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    collector(metrics_cloudwatch_embedded::Builder::new(), &crate::env_or("METRICS_NAMESPACE", DEFAULT_NAMESPACE))
}

/// The process's metrics collector, built from `builder` with `namespace` and the request id as a
/// property of each document (installed as the global `metrics` recorder).
pub fn collector(
    builder: metrics_cloudwatch_embedded::Builder,
    namespace: &str,
) -> Result<&'static Collector, lambda_http::Error> {
    let collector = builder.cloudwatch_namespace(namespace.to_owned()).with_lambda_request_id("RequestId").init()?;
    optisync_ports::metrics::describe();
    Ok(collector)
}

/// Runs an event function: `lambda_runtime::run` with the invocation's span and a metrics flush after
/// each invocation.
pub use metrics_cloudwatch_embedded::lambda::handler::run;

/// Runs an HTTP function: `lambda_http::run` with the invocation's span and a metrics flush after each
/// invocation.
pub use metrics_cloudwatch_embedded::lambda::handler::run_http;

/// The span of one HTTP request: the function and the path (ids only; query strings, bodies and
/// headers stay out, they may hold personal data).
pub fn request_span(function: &'static str, req: &lambda_http::Request) -> tracing::Span {
    tracing::info_span!("event", function, method = %req.method(), path = %req.uri().path())
}

/// Counts a webhook answered with `status` from `source`: 2xx accepted, 4xx (but 429, "try again")
/// rejected, 429 and 5xx failed (nothing stored; the sender retries, M7).
pub fn count_webhook(source: &'static str, status: u16) {
    match status {
        200..=299 => optisync_ports::metrics::webhook(source, true),
        400..=499 if status != 429 => optisync_ports::metrics::webhook(source, false),
        // M7: a handled 429 or 5xx is no Lambda error, so only this count shows that nothing was stored.
        429 | 500..=599 => optisync_ports::metrics::webhook_failed(source),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use optisync_ports::metrics;
    use serde_json::Value;

    /// The only test of this binary that records metrics: the recorder is global.
    #[test]
    fn the_metrics_come_out_as_embedded_metric_format_documents_in_the_namespace() {
        let collector =
            super::collector(metrics_cloudwatch_embedded::Builder::new(), "optisync/test").expect("a collector");
        metrics::webhook("brevo", true);
        metrics::webhook("brevo", true);
        metrics::webhook("optigem", false);
        super::count_webhook("cleverreach", 429);
        super::count_webhook("cleverreach", 500);
        super::count_webhook("cleverreach", 202);
        metrics::esp_call("cleverreach", true);
        metrics::recipients("brevo", false, 3);
        metrics::recipients("brevo", true, 0);
        metrics::approvals(4, 90_000);
        metrics::reconcile(Some("failed"), 1_250);
        let mut out = Vec::new();
        collector.flush(&mut out).expect("flushed");

        let docs: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON document a line"))
            .collect();
        let find = |name: &str, dimension: Option<(&str, &str)>| {
            docs.iter()
                .find(|d| {
                    d.get(name).is_some() && dimension.is_none_or(|(k, v)| d.get(k).and_then(Value::as_str) == Some(v))
                })
                .unwrap_or_else(|| panic!("{name} {dimension:?} in {docs:#?}"))
        };
        let accepted = find(metrics::WEBHOOKS_ACCEPTED, Some(("Source", "brevo")));
        let definition = &accepted["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(definition["Namespace"], "optisync/test");
        assert_eq!(definition["Dimensions"], serde_json::json!([["Source"]]));
        assert_eq!(accepted[metrics::WEBHOOKS_ACCEPTED], 2);
        assert_eq!(find(metrics::WEBHOOKS_REJECTED, Some(("Source", "optigem")))[metrics::WEBHOOKS_REJECTED], 1);
        // M7: the 429 and the 500 are counted as failed, the 202 as accepted.
        let cleverreach = find(metrics::WEBHOOKS_FAILED, Some(("Source", "cleverreach")));
        assert_eq!(
            (cleverreach[metrics::WEBHOOKS_FAILED].as_u64(), cleverreach[metrics::WEBHOOKS_ACCEPTED].as_u64()),
            (Some(2), Some(1))
        );
        let calls = find(metrics::ESP_CALLS, Some(("Provider", "cleverreach")));
        assert_eq!((calls[metrics::ESP_CALLS].as_u64(), calls[metrics::ESP_RATE_LIMITED].as_u64()), (Some(1), Some(1)));
        assert_eq!(
            find(metrics::RECIPIENTS_DEACTIVATED, Some(("Provider", "brevo")))[metrics::RECIPIENTS_DEACTIVATED],
            3
        );
        assert!(docs.iter().all(|d| d.get(metrics::RECIPIENTS_ACTIVATED).is_none()), "a zero count is not sent");
        let gauges = find(metrics::APPROVALS_OLDEST_AGE, None);
        assert_eq!(gauges["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([[]]));
        assert_eq!(gauges[metrics::APPROVALS_PENDING], 4.0);
        let units: Vec<(String, String)> = gauges["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap().to_owned(), m["Unit"].as_str().unwrap_or_default().to_owned()))
            .collect();
        assert!(units.contains(&(metrics::APPROVALS_OLDEST_AGE.into(), "Seconds".into())), "{units:?}");
        assert!(units.contains(&(metrics::RECONCILE_DURATION.into(), "Milliseconds".into())), "{units:?}");
        assert_eq!(find(metrics::RECONCILE_RUNS, Some(("Outcome", "failed")))[metrics::RECONCILE_RUNS], 1);
    }
}
