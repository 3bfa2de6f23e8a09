//! What the service counts and logs, in one place: each counted event is
//! one variant of [`Counted`], recorded through [`Telemetry::record`], which
//! both bumps its Prometheus counter and writes a structured log line. The
//! logic that translates and transports never formats metrics itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::dead_letter::Stage;
use crate::identity::Verdict;
use crate::policy::Refusal;

/// One event the service counts.
#[derive(Debug, Clone, Copy)]
pub enum Counted<'a> {
    /// A message arrived on an input and was decoded as `format`
    /// (`unknown` when it could not be decoded).
    Received {
        /// The input's name.
        input: &'a str,
        /// The format it was decoded as.
        format: &'a str,
    },
    /// A decoded message was split into `events` linked events (more than one).
    Split {
        /// The input's name.
        input: &'a str,
        /// The format it was decoded as.
        format: &'a str,
        /// How many events it became.
        events: u64,
    },
    /// A message was dropped as a loop or a duplicate.
    Dropped {
        /// The input's name.
        input: &'a str,
        /// Why: [`Verdict::Loop`] or [`Verdict::Duplicate`].
        verdict: Verdict,
    },
    /// A message (or its encoding for one partner) went to the dead letters.
    DeadLettered {
        /// The input's name.
        input: &'a str,
        /// Where it failed.
        stage: Stage,
    },
    /// Messages were encoded for a partner.
    Translated {
        /// The partner's name.
        partner: &'a str,
        /// The partner's format.
        format: &'a str,
        /// How many native messages were written.
        messages: u64,
    },
    /// Messages were delivered to a partner (confirmed by the broker, or
    /// written and flushed).
    Published {
        /// The partner's name.
        partner: &'a str,
        /// The partner's format.
        format: &'a str,
        /// How many.
        messages: u64,
    },
    /// An event was not sent to a partner because the partner's egress
    /// policy does not allow its TLP level or n6 restriction.
    Withheld {
        /// The partner's name.
        partner: &'a str,
        /// Why (the level refused, never the event's contents).
        refusal: &'a Refusal,
    },
    /// An ingest request was refused before its body was read (token,
    /// rate, content type, declared format, size).
    Refused {
        /// The sending partner's name, empty when it is not known.
        partner: &'a str,
        /// Why: `unauthenticated`, `forbidden`, `rate_limited`,
        /// `unsupported_media_type`, `unknown_format` or `too_large`.
        reason: &'a str,
    },
    /// Records of an ingest request were answered, all of one `status`.
    Ingested {
        /// The sending partner's name, empty when the ingest is open.
        partner: &'a str,
        /// `accepted`, `rejected` or `dropped`.
        status: &'a str,
        /// How many records.
        records: u64,
    },
    /// A delivery to a partner failed (nack, unroutable, I/O); the input
    /// message is returned to its queue.
    PublishFailed {
        /// The partner's name, or the dead-letter queue.
        partner: &'a str,
    },
    /// A push to a partner's HTTP endpoint failed in a way that says
    /// nothing about the messages; the same batch is sent again later.
    PushFailed {
        /// The partner's name.
        partner: &'a str,
        /// Why: `connect`, `timeout`, `request`, `status_5xx`, `status_3xx`
        /// or `status_<code>` for a 4xx that is retried (401, 403, 404,
        /// 407, 408, 425, 429).
        reason: &'a str,
        /// How many messages the batch held.
        messages: u64,
        /// How long until the next attempt.
        retry_in: std::time::Duration,
    },
    /// A partner refused one message for good; it went to the dead letters
    /// with the partner's answer.
    PushRejected {
        /// The partner's name.
        partner: &'a str,
        /// The HTTP status the partner answered.
        status: u16,
    },
    /// A pull partner fetched messages from its outbox.
    Pulled {
        /// The partner's name.
        partner: &'a str,
        /// How many messages the page held.
        messages: u64,
    },
    /// A pull request was refused.
    PullRefused {
        /// The pull partner named in the path, empty when there is none
        /// of that name (so a stranger cannot mint label values).
        partner: &'a str,
        /// `unauthenticated`, `forbidden`, `not_found`, `bad_request` or
        /// `unavailable`.
        reason: &'a str,
    },
}

type Labels = Vec<(&'static str, String)>;

/// The counters and gauges of one running service, rendered for Prometheus.
#[derive(Debug, Default)]
pub struct Telemetry {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    connected: Mutex<BTreeMap<String, bool>>,
    /// Messages waiting in the outbox, by partner.
    pending: Mutex<BTreeMap<String, u64>>,
}

/// Metric name prefix.
const PREFIX: &str = "intelmq_bridge_";

/// Help text per counter, in the order they are rendered.
const HELP: &[(&str, &str)] = &[
    (
        "received_total",
        "Messages received, by input and decoded format.",
    ),
    (
        "split_events_total",
        "Events produced by splitting multi-value messages.",
    ),
    ("dropped_total", "Messages dropped as loops or duplicates."),
    (
        "dead_lettered_total",
        "Messages sent to the dead letters, by stage.",
    ),
    (
        "translated_total",
        "Native messages encoded, by partner and format.",
    ),
    (
        "published_total",
        "Messages delivered and confirmed, by partner and format.",
    ),
    (
        "withheld_total",
        "Events not sent to a partner by its egress policy, by reason.",
    ),
    (
        "ingest_refused_total",
        "Ingest requests refused before their body was read, by reason.",
    ),
    (
        "ingested_total",
        "Ingest records answered, by sending partner and status.",
    ),
    (
        "publish_failed_total",
        "Deliveries that failed and were retried.",
    ),
    (
        "push_failed_total",
        "Pushes to a partner's HTTP endpoint that failed and are retried, by reason.",
    ),
    (
        "push_rejected_total",
        "Messages a partner refused for good, sent to the dead letters.",
    ),
    ("pulled_total", "Messages fetched by pull partners."),
    (
        "pull_refused_total",
        "Pull requests refused, by the partner named and the reason.",
    ),
];

impl Telemetry {
    /// A service's telemetry, all counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts (and logs) one event.
    pub fn record(&self, event: Counted<'_>) {
        let (name, labels, amount): (&'static str, Labels, u64) = match event {
            Counted::Received { input, format } => {
                tracing::debug!(input, format, "received");
                (
                    "received_total",
                    vec![("input", input.into()), ("format", format.into())],
                    1,
                )
            }
            Counted::Split {
                input,
                format,
                events,
            } => {
                tracing::debug!(input, format, events, "split");
                (
                    "split_events_total",
                    vec![("input", input.into()), ("format", format.into())],
                    events,
                )
            }
            Counted::Dropped { input, verdict } => {
                let reason = match verdict {
                    Verdict::Loop => "loop",
                    Verdict::Duplicate => "duplicate",
                    Verdict::New => "new",
                };
                tracing::info!(input, reason, "dropped");
                (
                    "dropped_total",
                    vec![("input", input.into()), ("reason", reason.into())],
                    1,
                )
            }
            Counted::DeadLettered { input, stage } => (
                "dead_lettered_total",
                vec![("input", input.into()), ("stage", stage.name().into())],
                1,
            ),
            Counted::Translated {
                partner,
                format,
                messages,
            } => (
                "translated_total",
                vec![("partner", partner.into()), ("format", format.into())],
                messages,
            ),
            Counted::Published {
                partner,
                format,
                messages,
            } => (
                "published_total",
                vec![("partner", partner.into()), ("format", format.into())],
                messages,
            ),
            Counted::Withheld { partner, refusal } => {
                let reason = refusal.reason();
                tracing::info!(
                    partner,
                    reason,
                    level = refusal.level(),
                    "withheld by egress policy"
                );
                (
                    "withheld_total",
                    vec![("partner", partner.into()), ("reason", reason.into())],
                    1,
                )
            }
            Counted::Refused { partner, reason } => {
                tracing::info!(partner, reason, "ingest request refused");
                (
                    "ingest_refused_total",
                    vec![("partner", partner.into()), ("reason", reason.into())],
                    1,
                )
            }
            Counted::Ingested {
                partner,
                status,
                records,
            } => (
                "ingested_total",
                vec![("partner", partner.into()), ("status", status.into())],
                records,
            ),
            Counted::PublishFailed { partner } => {
                tracing::warn!(partner, "delivery failed; the input message is requeued");
                ("publish_failed_total", vec![("partner", partner.into())], 1)
            }
            Counted::PushFailed {
                partner,
                reason,
                messages,
                retry_in,
            } => {
                tracing::warn!(
                    partner,
                    reason,
                    messages,
                    retry_in_ms = retry_in.as_millis() as u64,
                    "push failed; the batch stays in the outbox and is sent again"
                );
                (
                    "push_failed_total",
                    vec![("partner", partner.into()), ("reason", reason.into())],
                    1,
                )
            }
            Counted::PushRejected { partner, status } => {
                tracing::warn!(
                    partner,
                    status,
                    "the partner refused a message for good; it went to the dead letters"
                );
                ("push_rejected_total", vec![("partner", partner.into())], 1)
            }
            Counted::Pulled { partner, messages } => {
                tracing::debug!(partner, messages, "pulled");
                ("pulled_total", vec![("partner", partner.into())], messages)
            }
            Counted::PullRefused { partner, reason } => {
                tracing::info!(partner, reason, "pull request refused");
                (
                    "pull_refused_total",
                    vec![("partner", partner.into()), ("reason", reason.into())],
                    1,
                )
            }
        };
        if let Ok(mut counters) = self.counters.lock() {
            *counters.entry((name, labels)).or_default() += amount;
        }
    }

    /// Notes whether an input is connected to its broker (for `/healthz`
    /// and the `input_up` gauge).
    pub fn set_connected(&self, input: &str, up: bool) {
        if let Ok(mut connected) = self.connected.lock() {
            connected.insert(input.to_owned(), up);
        }
    }

    /// Notes how many messages wait in the outbox for `partner` (the
    /// `outbox_pending` gauge).
    pub fn set_outbox_pending(&self, partner: &str, messages: u64) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(partner.to_owned(), messages);
        }
    }

    /// The `outbox_pending` gauge of `partner`, if it was set.
    pub fn outbox_pending(&self, partner: &str) -> Option<u64> {
        self.pending
            .lock()
            .ok()
            .and_then(|pending| pending.get(partner).copied())
    }

    /// Whether every input that reported is connected.
    pub fn healthy(&self) -> bool {
        self.connected
            .lock()
            .map(|connected| connected.values().all(|up| *up))
            .unwrap_or(false)
    }

    /// The value of a counter, summed over the series that carry `labels`.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let Ok(counters) = self.counters.lock() else {
            return 0;
        };
        counters
            .iter()
            .filter(|((metric, metric_labels), _)| {
                *metric == name
                    && labels.iter().all(|(key, value)| {
                        metric_labels.iter().any(|(k, v)| k == key && v == value)
                    })
            })
            .map(|(_, value)| value)
            .sum()
    }

    /// Every counter and gauge in Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(counters) = self.counters.lock() {
            for (name, help) in HELP {
                let _ = writeln!(out, "# HELP {PREFIX}{name} {help}");
                let _ = writeln!(out, "# TYPE {PREFIX}{name} counter");
                for ((metric, labels), value) in counters.iter() {
                    if metric == name {
                        let _ = writeln!(out, "{PREFIX}{name}{} {value}", label_text(labels));
                    }
                }
            }
        }
        if let Ok(connected) = self.connected.lock() {
            let _ = writeln!(
                out,
                "# HELP {PREFIX}input_up Whether an input is connected to its broker."
            );
            let _ = writeln!(out, "# TYPE {PREFIX}input_up gauge");
            for (input, up) in connected.iter() {
                let labels = vec![("input", input.clone())];
                let _ = writeln!(
                    out,
                    "{PREFIX}input_up{} {}",
                    label_text(&labels),
                    u8::from(*up)
                );
            }
        }
        if let Ok(pending) = self.pending.lock() {
            let _ = writeln!(
                out,
                "# HELP {PREFIX}outbox_pending Messages held in the outbox for a partner."
            );
            let _ = writeln!(out, "# TYPE {PREFIX}outbox_pending gauge");
            for (partner, messages) in pending.iter() {
                let labels = vec![("partner", partner.clone())];
                let _ = writeln!(
                    out,
                    "{PREFIX}outbox_pending{} {messages}",
                    label_text(&labels)
                );
            }
        }
        out
    }
}

/// `{key="value",...}` with Prometheus's escapes.
fn label_text(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(key, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{key}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let telemetry = Telemetry::new();
        let received = Counted::Received {
            input: "in\"1",
            format: "intelmq",
        };
        telemetry.record(received);
        telemetry.record(received);
        telemetry.record(Counted::Published {
            partner: "p",
            format: "idea",
            messages: 3,
        });
        telemetry.set_connected("in\"1", true);
        let text = telemetry.render();
        assert!(
            text.contains("intelmq_bridge_received_total{input=\"in\\\"1\",format=\"intelmq\"} 2"),
            "{text}"
        );
        assert!(text.contains("intelmq_bridge_published_total{partner=\"p\",format=\"idea\"} 3"));
        assert!(text.contains("intelmq_bridge_input_up{input=\"in\\\"1\"} 1"));
        assert_eq!(telemetry.count("published_total", &[("partner", "p")]), 3);
        assert!(telemetry.healthy());
        telemetry.set_connected("other", false);
        assert!(!telemetry.healthy());
    }
}
