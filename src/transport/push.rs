//! Push: one task per `http` partner POSTs what waits for it in the
//! [`Outbox`], oldest first, as JSON arrays (what Warden's and n6's
//! receivers take), and removes a batch once the partner took it.
//!
//! Nothing is dropped on the way: an answer that says nothing about the
//! messages (no connection, a timeout, a 5xx, 429, 408, 425, a 3xx, or
//! 401/403/404/407, which say the endpoint or our credentials are wrong)
//! sends the same batch again after an exponential backoff, forever. Any
//! other 4xx refuses messages for good: a batch is then sent one message at
//! a time to find which, and each refused message goes to the dead letters
//! with the partner's answer. Delivery is at least once: a batch the
//! partner took but did not get to answer is sent again.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::config::PartnerConfig;
use crate::error::{Error, Result};
use crate::gateway::Gateway;
use crate::outbox::{self, Entry, Outbox};
use crate::telemetry::Counted;
use crate::transport::{or_stop, Partners};

/// The most of a partner's answer kept in a dead letter.
const MAX_ANSWER: usize = 4096;

/// What the partner's HTTP status means for the batch sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Taken: remove it from the outbox.
    Accepted,
    /// Says nothing about the messages: send them again later; the reason
    /// is the `push_failed_total` label.
    Retry(&'static str),
    /// Refused for good.
    Rejected,
}

/// The verdict of an HTTP status.
fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Accepted,
        300..=399 => Verdict::Retry("status_3xx"),
        401 => Verdict::Retry("status_401"),
        403 => Verdict::Retry("status_403"),
        404 => Verdict::Retry("status_404"),
        407 => Verdict::Retry("status_407"),
        408 => Verdict::Retry("status_408"),
        425 => Verdict::Retry("status_425"),
        429 => Verdict::Retry("status_429"),
        400..=499 => Verdict::Rejected,
        500..=599 => Verdict::Retry("status_5xx"),
        _ => Verdict::Retry("status_other"),
    }
}

/// Which messages of a batch of `count` a refusal names, when the answer
/// says so the way a Warden 3 server does: `{"errors": [{"error": 460,
/// "events": [0, 3], ...}]}`, indexes into the posted array. Warden stores
/// the other events of the batch, so they count as delivered and are not
/// sent again. `None` when any error names no events (it applies to them
/// all) or the answer is not of that shape.
fn refused_indexes(answer: &str, count: usize) -> Option<Vec<bool>> {
    let answer: Value = serde_json::from_str(answer).ok()?;
    let errors = answer.get("errors")?.as_array()?;
    let mut refused = vec![false; count];
    for error in errors {
        for index in error.get("events")?.as_array()? {
            let index = usize::try_from(index.as_u64()?).ok()?;
            *refused.get_mut(index)? = true;
        }
    }
    refused.contains(&true).then_some(refused)
}

/// The wait before the next attempt after `failures` failures in a row:
/// `initial`, doubling with each failure, never more than `max`.
pub fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
    initial.checked_mul(factor).unwrap_or(max).min(max)
}

/// The wait a `Retry-After` header asks for, from now.
fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    retry_after_at(value, chrono::Utc::now())
}

/// `Retry-After` as seconds, or as an HTTP date (`Wed, 21 Oct 2015
/// 07:28:00 GMT`), the wait from `now`; a date already past means at once.
fn retry_after_at(
    value: Option<&HeaderValue>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    Some((date.to_utc() - now).to_std().unwrap_or(Duration::ZERO))
}

/// What one request came to.
enum Answer {
    /// A 2xx.
    Accepted,
    /// Send again, after `after` if the partner said when.
    Retry {
        reason: &'static str,
        after: Option<Duration>,
    },
    /// A 4xx that refuses the messages, with the start of the answer's body.
    Rejected { status: u16, answer: String },
}

/// The definite answer to a batch, once transient failures are behind.
enum Settled {
    Accepted,
    Rejected { status: u16, answer: String },
}

/// Why a push worker stops what it is doing.
enum Halt {
    /// The service is shutting down.
    Stopped,
    /// The outbox or the dead-letter log failed; the batch stays and is
    /// sent again.
    Store(Error),
}

impl From<Error> for Halt {
    fn from(error: Error) -> Self {
        Halt::Store(error)
    }
}

/// The push worker of one `http` partner.
pub struct Pusher {
    gateway: Arc<Gateway>,
    outbox: Arc<Outbox>,
    wake: Arc<Notify>,
    index: usize,
    url: String,
    token: Option<String>,
    batch_size: usize,
    retry_initial: Duration,
    retry_max: Duration,
    client: reqwest::Client,
}

/// The partner's own TLS settings: the certificate authorities to trust
/// instead of the system's, and this instance's client certificate.
fn with_tls(
    mut client: reqwest::ClientBuilder,
    config: &PartnerConfig,
    key: &str,
) -> Result<reqwest::ClientBuilder> {
    let read = |field: &str, path: &Path| {
        std::fs::read(path)
            .map_err(|e| Error::Config(format!("{key}.{field}: {}: {e}", path.display())))
    };
    if let Some(path) = &config.push_ca {
        let authorities = reqwest::Certificate::from_pem_bundle(&read("push_ca", path)?)
            .map_err(|e| Error::Config(format!("{key}.push_ca: {}: {e}", path.display())))?;
        if authorities.is_empty() {
            return Err(Error::Config(format!(
                "{key}.push_ca: {}: no certificate in it",
                path.display()
            )));
        }
        client = authorities
            .into_iter()
            .fold(client.tls_built_in_root_certs(false), |client, ca| {
                client.add_root_certificate(ca)
            });
    }
    if let (Some(cert), Some(private)) = (&config.push_client_cert, &config.push_client_key) {
        let mut pem = read("push_client_cert", cert)?;
        pem.push(b'\n');
        pem.extend(read("push_client_key", private)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            Error::Config(format!(
                "{key}.push_client_cert: {} with {}: {e}",
                cert.display(),
                private.display()
            ))
        })?;
        client = client.identity(identity);
    }
    Ok(client)
}

impl Pusher {
    /// The worker of partner `index`, an `http` partner of a checked
    /// configuration.
    pub fn new(gateway: Arc<Gateway>, partners: &Partners, index: usize) -> Result<Self> {
        let config = partners
            .configs
            .get(index)
            .ok_or_else(|| Error::Config(format!("partners[{index}]: no such partner")))?;
        let key = format!("partners[{index}]");
        let (Some(outbox), Some(wake), Some(url)) = (
            partners.outbox().cloned(),
            partners.waker(index),
            config.url.clone(),
        ) else {
            return Err(Error::Config(format!(
                "{key}: an http partner needs url and the outbox"
            )));
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            // A redirect of a POST would become a GET: a 3xx is retried
            // and logged instead, for the operator to fix the URL.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("intelmq-bridge/", env!("CARGO_PKG_VERSION")));
        let client = with_tls(client, config, &key)?
            .build()
            .map_err(|e| Error::Config(format!("{key}: the HTTP client: {e}")))?;
        Ok(Pusher {
            gateway,
            outbox,
            wake,
            index,
            url,
            token: config.push_token.clone(),
            batch_size: config.batch_size,
            retry_initial: Duration::from_millis(config.retry_initial_ms),
            retry_max: Duration::from_millis(config.retry_max_ms),
            client,
        })
    }

    fn name(&self) -> &str {
        self.gateway.partner_name(self.index)
    }

    /// Pushes until `shutdown` turns true; what is not yet taken stays in
    /// the outbox for the next start.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut store_failures = 0;
        loop {
            let name = self.name().to_owned();
            let limit = self.batch_size;
            let read = outbox::blocking(&self.outbox, move |o| o.read(&name, 0, limit)).await;
            let step = match read {
                Ok(batch) if batch.is_empty() => {
                    match or_stop(&mut shutdown, self.wake.notified()).await {
                        Some(()) => continue,
                        None => return,
                    }
                }
                Ok(batch) => self.push(&batch, &mut shutdown).await,
                Err(error) => Err(Halt::Store(error)),
            };
            match step {
                Ok(()) => store_failures = 0,
                Err(Halt::Stopped) => return,
                Err(Halt::Store(error)) => {
                    let wait = backoff(self.retry_initial, self.retry_max, store_failures);
                    store_failures = store_failures.saturating_add(1);
                    tracing::error!(
                        partner = self.name(),
                        %error,
                        retry_in_ms = wait.as_millis() as u64,
                        "push: the outbox or the dead letters failed; trying again"
                    );
                    if or_stop(&mut shutdown, tokio::time::sleep(wait))
                        .await
                        .is_none()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Settles one batch: delivered, or, when the partner refuses it, the
    /// messages its answer names are dead-lettered and the others count as
    /// delivered; when the answer names none, one message at a time, each
    /// delivered or dead-lettered.
    async fn push(
        &self,
        batch: &[Entry],
        shutdown: &mut watch::Receiver<bool>,
    ) -> std::result::Result<(), Halt> {
        let settled = self.settle(batch, shutdown).await?;
        match (settled, batch) {
            (Settled::Accepted, _) => self.delivered(batch).await,
            (Settled::Rejected { status, answer }, [entry]) => {
                self.dead_letter(entry, status, answer).await
            }
            (Settled::Rejected { status, answer }, _) => {
                if let Some(refused) = refused_indexes(&answer, batch.len()) {
                    for (entry, refused) in batch.iter().zip(refused) {
                        match refused {
                            true => self.dead_letter(entry, status, answer.clone()).await?,
                            false => self.delivered(std::slice::from_ref(entry)).await?,
                        }
                    }
                    return Ok(());
                }
                for entry in batch {
                    let one = std::slice::from_ref(entry);
                    match self.settle(one, shutdown).await? {
                        Settled::Accepted => self.delivered(one).await?,
                        Settled::Rejected { status, answer } => {
                            self.dead_letter(entry, status, answer).await?
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Sends `entries` as one request until the partner gives a definite
    /// answer, waiting between attempts.
    async fn settle(
        &self,
        entries: &[Entry],
        shutdown: &mut watch::Receiver<bool>,
    ) -> std::result::Result<Settled, Halt> {
        let body = outbox::json_array(entries);
        let mut failures = 0;
        loop {
            let answer = or_stop(shutdown, self.send(body.clone()))
                .await
                .ok_or(Halt::Stopped)?;
            let (reason, after) = match answer {
                Answer::Accepted => return Ok(Settled::Accepted),
                Answer::Rejected { status, answer } => {
                    return Ok(Settled::Rejected { status, answer })
                }
                Answer::Retry { reason, after } => (reason, after),
            };
            let wait = match after {
                // Never faster than the first wait, so a `Retry-After: 0`
                // does not make a busy loop.
                Some(after) => after.clamp(self.retry_initial, self.retry_max),
                None => backoff(self.retry_initial, self.retry_max, failures),
            };
            failures = failures.saturating_add(1);
            self.gateway.telemetry().record(Counted::PushFailed {
                partner: self.name(),
                reason,
                messages: entries.len() as u64,
                retry_in: wait,
            });
            or_stop(shutdown, tokio::time::sleep(wait))
                .await
                .ok_or(Halt::Stopped)?;
        }
    }

    /// One POST of a JSON array.
    async fn send(&self, body: Vec<u8>) -> Answer {
        let mut request = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let reason = if error.is_timeout() {
                    "timeout"
                } else if error.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                return Answer::Retry {
                    reason,
                    after: None,
                };
            }
        };
        let status = response.status().as_u16();
        match verdict(status) {
            Verdict::Accepted => Answer::Accepted,
            Verdict::Retry(reason) => Answer::Retry {
                reason,
                after: retry_after(response.headers().get(RETRY_AFTER)),
            },
            Verdict::Rejected => Answer::Rejected {
                status,
                answer: answer_text(response).await,
            },
        }
    }

    /// Removes what the partner took from the outbox and counts it.
    async fn delivered(&self, entries: &[Entry]) -> std::result::Result<(), Halt> {
        let Some(last) = entries.last().map(|entry| entry.seq) else {
            return Ok(());
        };
        self.remove_through(last).await?;
        self.gateway.telemetry().record(Counted::Published {
            partner: self.name(),
            format: self.gateway.partner_format(self.index),
            messages: entries.len() as u64,
        });
        Ok(())
    }

    /// Keeps a refused message in the dead letters with the partner's
    /// answer, then removes it from the outbox.
    async fn dead_letter(
        &self,
        entry: &Entry,
        status: u16,
        answer: String,
    ) -> std::result::Result<(), Halt> {
        let message = serde_json::from_slice::<Value>(&entry.message)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&entry.message).into()));
        let letter = json!({
            "stage": "push",
            "partner": self.name(),
            "status": status,
            "answer": answer,
            "message": message,
        });
        let gateway = self.gateway.clone();
        tokio::task::spawn_blocking(move || gateway.dead_letters().append(&[letter]))
            .await
            .map_err(|e| Error::Store(format!("dead-letter task: {e}")))?
            .map_err(Error::from)?;
        self.gateway.telemetry().record(Counted::PushRejected {
            partner: self.name(),
            status,
        });
        self.remove_through(entry.seq).await
    }

    async fn remove_through(&self, seq: u64) -> std::result::Result<(), Halt> {
        let name = self.name().to_owned();
        outbox::blocking(&self.outbox, move |o| o.remove_through(&name, seq)).await?;
        Ok(())
    }
}

/// The start of a refusing answer's body, as text: at most [`MAX_ANSWER`]
/// bytes are read, whatever the partner sends.
async fn answer_text(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ANSWER {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(MAX_ANSWER);
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warden_refusal_names_the_refused_events() {
        let answer = r#"{"method": "sendEvents", "req_id": 7, "errors": [
            {"error": 460, "message": "Validation error", "events": [0, 2]},
            {"error": 422, "message": "Node name mismatch", "events": [2]}]}"#;
        assert_eq!(
            refused_indexes(answer, 4),
            Some(vec![true, false, true, false])
        );
        // An error without events applies to all; an index out of the
        // batch, or any other shape, says nothing usable.
        let all = r#"{"errors": [{"error": 400, "message": "Deserialization error"}]}"#;
        for answer in [all, r#"{"errors": [{"events": [9]}]}"#, "Bad Request", "{}"] {
            assert_eq!(refused_indexes(answer, 4), None, "{answer}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let ms = Duration::from_millis;
        let waits: Vec<Duration> = (0..6).map(|n| backoff(ms(500), ms(5000), n)).collect();
        assert_eq!(
            waits,
            [ms(500), ms(1000), ms(2000), ms(4000), ms(5000), ms(5000)]
        );
        assert_eq!(backoff(ms(500), ms(300_000), 40), ms(300_000));
        assert_eq!(backoff(ms(500), ms(300_000), u32::MAX), ms(300_000));
        assert_eq!(
            backoff(Duration::MAX, Duration::MAX, 3),
            Duration::MAX,
            "no overflow"
        );
    }

    #[test]
    fn statuses_are_retried_unless_they_refuse_the_messages() {
        assert_eq!(verdict(200), Verdict::Accepted);
        assert_eq!(verdict(204), Verdict::Accepted);
        assert_eq!(verdict(503), Verdict::Retry("status_5xx"));
        assert_eq!(verdict(429), Verdict::Retry("status_429"));
        assert_eq!(verdict(408), Verdict::Retry("status_408"));
        assert_eq!(verdict(401), Verdict::Retry("status_401"));
        assert_eq!(verdict(302), Verdict::Retry("status_3xx"));
        assert_eq!(verdict(400), Verdict::Rejected);
        assert_eq!(verdict(413), Verdict::Rejected);
        assert_eq!(verdict(422), Verdict::Rejected);
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date() {
        let header = |text: &'static str| HeaderValue::from_static(text);
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .to_utc();
        let at = |text| retry_after_at(Some(&header(text)), now);
        assert_eq!(at("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            at("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::from_secs(60))
        );
        // A date past is at once; anything else says nothing.
        assert_eq!(at("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("-1"), None);
        assert_eq!(at("soon"), None);
        assert_eq!(retry_after(None), None);
    }
}
