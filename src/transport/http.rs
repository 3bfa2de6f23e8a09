//! The HTTP side of `serve` (warp): `/metrics` for Prometheus, `/healthz`,
//! and, when an `http` input is configured, `POST /v1/events`, which takes
//! one message, a JSON array or JSON Lines and answers per record.
//!
//! Before a body is read, the ingest checks, in this order: the sender's
//! bearer token (401, 403), its rate (429), the `Content-Type` (415), a
//! declared `?format=` (400) and the body's size (413). Each refusal is a
//! JSON `{"error": ...}` naming what was wrong.
//!
//! An admitted body is translated whole before anything leaves; then its
//! rejected records go to the dead-letter log, each partner gets all of its
//! messages in one delivery, and only then is the request answered.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures_util::{Stream, StreamExt as _};
use warp::http::{HeaderMap, HeaderValue};
use warp::hyper::body::Buf;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::auth::{Denied, Tokens};
use crate::config::Config;
use crate::dead_letter::{self, DeadInput, Stage};
use crate::error::{Error, Result};
use crate::gateway::{Declared, Failure, Gateway, Outcome};
use crate::identity::Verdict;
use crate::input::Records;
use crate::rate_limit::TokenBucket;
use crate::telemetry::Counted;
use crate::transport::{pull, tls, Partners};

/// The `Content-Type`s the ingest takes (besides none at all): every one
/// is read the same way, as one document, an array or JSON Lines.
const ACCEPTED_TYPES: [&str; 4] = [
    "application/json",
    "application/x-ndjson",
    "application/jsonl",
    "text/plain",
];

/// The HTTP input: which input it is, who may send and how much.
pub struct Ingest {
    input: usize,
    tokens: Tokens,
    /// One bucket per partner (by index), for the partners' own requests.
    buckets: Vec<Mutex<TokenBucket>>,
    max_body: u64,
}

impl Ingest {
    /// The ingest of input `input` under a checked configuration.
    pub fn new(config: &Config, input: usize) -> Result<Self> {
        let now = Instant::now();
        Ok(Ingest {
            input,
            tokens: Tokens::from_config(config)?,
            buckets: config
                .partners
                .iter()
                .map(|p| Mutex::new(TokenBucket::new(p.rate_limit, p.rate_burst, now)))
                .collect(),
            max_body: config.http.max_body_bytes,
        })
    }

    /// Whether partner `index` may make one more request now.
    fn within_rate(&self, index: usize) -> bool {
        self.buckets.get(index).is_none_or(|bucket| {
            bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_take(Instant::now())
        })
    }
}

/// Serves until `shutdown` turns true, over TLS when `tls` is given.
/// `ingest` is the `http` input, if there is one.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    gateway: Arc<Gateway>,
    partners: Arc<Partners>,
    ingest: Option<Ingest>,
    mut shutdown: watch::Receiver<bool>,
) {
    let routes = routes(gateway, partners, ingest);
    match tls {
        Some(acceptor) => tls::serve(listener, acceptor, routes, shutdown).await,
        None => {
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                })
                .run()
                .await
        }
    }
}

/// The endpoints, boxed so the server future's type stays simple.
fn routes(
    gateway: Arc<Gateway>,
    partners: Arc<Partners>,
    ingest: Option<Ingest>,
) -> BoxedFilter<(Response,)> {
    let ingest = ingest.map(Arc::new);
    let metrics = {
        let gateway = gateway.clone();
        warp::path!("metrics").and(warp::get()).map(move || {
            warp::reply::with_header(
                gateway.telemetry().render(),
                warp::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4".to_owned(),
            )
        })
    };
    let health = {
        let gateway = gateway.clone();
        warp::path!("healthz")
            .and(warp::get())
            .map(move || match gateway.telemetry().healthy() {
                true => warp::reply::with_status("ok\n".to_owned(), StatusCode::OK),
                false => warp::reply::with_status(
                    "an input is disconnected\n".to_owned(),
                    StatusCode::SERVICE_UNAVAILABLE,
                ),
            })
    };
    let pull = pull::route(gateway.clone(), partners.clone());
    let events = warp::path!("v1" / "events")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::body::stream())
        .and_then(move |headers: HeaderMap, query: String, body| {
            let gateway = gateway.clone();
            let partners = partners.clone();
            let ingest = ingest.clone();
            async move {
                let Some(ingest) = ingest else {
                    return Err(warp::reject::not_found());
                };
                let (status, answer) = answer(&gateway, &partners, &ingest, &headers, &query, body)
                    .await
                    .unwrap_or_else(|refused| refused);
                let mut reply =
                    warp::reply::with_status(warp::reply::json(&answer), status).into_response();
                if status == StatusCode::UNAUTHORIZED {
                    reply.headers_mut().insert(
                        warp::http::header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer"),
                    );
                }
                Ok(reply)
            }
        });
    metrics
        .map(Reply::into_response)
        .or(health.map(Reply::into_response))
        .unify()
        .or(events.map(Reply::into_response))
        .unify()
        .or(pull)
        .unify()
        .boxed()
}

/// A refusal: the status and a JSON `{"error": ...}`.
type Refused = (StatusCode, Value);

fn refused(status: StatusCode, message: String) -> Refused {
    (status, json!({ "error": message }))
}

/// Admits a request, reads its body and ingests it: the answer, or why
/// it was refused.
async fn answer<S, B>(
    gateway: &Arc<Gateway>,
    partners: &Partners,
    ingest: &Ingest,
    headers: &HeaderMap,
    query: &str,
    body: S,
) -> std::result::Result<(StatusCode, Value), Refused>
where
    S: Stream<Item = std::result::Result<B, warp::Error>>,
    B: Buf,
{
    let request = admit(gateway, ingest, headers, query)?;
    let body = read_body(gateway, request.sender, body, ingest.max_body).await?;
    Ok(ingest_body(gateway, partners, request, body).await)
}

/// Checks everything about a request but its body: who sends (the partner
/// index, `None` on an open ingest), its rate, the content type and the
/// declared format.
fn admit(
    gateway: &Gateway,
    ingest: &Ingest,
    headers: &HeaderMap,
    query: &str,
) -> std::result::Result<Request, Refused> {
    let authorization = headers
        .get(warp::http::header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let sender = ingest.tokens.identify(authorization).map_err(|denied| {
        gateway.telemetry().record(Counted::Refused {
            partner: "",
            reason: match denied {
                Denied::Missing => "unauthenticated",
                Denied::Unknown => "forbidden",
            },
        });
        match denied {
            Denied::Missing => refused(
                StatusCode::UNAUTHORIZED,
                "a partner's token is required: Authorization: Bearer <token>".into(),
            ),
            Denied::Unknown => refused(StatusCode::FORBIDDEN, "unknown token".into()),
        }
    })?;
    let name = sender.map_or("", |index| gateway.partner_name(index));
    let refuse = |status: StatusCode, reason: &'static str, message: String| {
        gateway.telemetry().record(Counted::Refused {
            partner: name,
            reason,
        });
        refused(status, message)
    };
    if let Some(index) = sender {
        if !ingest.within_rate(index) {
            return Err(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("partner {name:?} is over its rate limit; try again later"),
            ));
        }
    }
    if let Some(value) = headers.get(warp::http::header::CONTENT_TYPE) {
        let media = value
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !ACCEPTED_TYPES.contains(&media.as_str()) {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {:?} is not one of {}",
                    String::from_utf8_lossy(value.as_bytes()),
                    ACCEPTED_TYPES.join(", ")
                ),
            ));
        }
    }
    let format = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("format="));
    let declared = match format {
        None => None,
        Some(name) => Some(gateway.declared(name).ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                "unknown_format",
                format!(
                    "format: {name:?} is not a known format ({})",
                    gateway.declared_names().join(", ")
                ),
            )
        })?),
    };
    Ok(Request {
        input: ingest.input,
        sender,
        declared,
    })
}

/// Reads a body of at most `limit` bytes, refusing a larger one (413)
/// without reading further.
async fn read_body<S, B>(
    gateway: &Gateway,
    sender: Option<usize>,
    body: S,
    limit: u64,
) -> std::result::Result<Vec<u8>, Refused>
where
    S: Stream<Item = std::result::Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || {
        gateway.telemetry().record(Counted::Refused {
            partner: sender.map_or("", |index| gateway.partner_name(index)),
            reason: "too_large",
        });
        refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let mut bytes = Vec::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            refused(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}"),
            )
        })?;
        if (bytes.len() + chunk.remaining()) as u64 > limit {
            return Err(too_large());
        }
        // A `Buf` may hold its bytes in several pieces.
        let mut chunk = chunk;
        while chunk.has_remaining() {
            let piece = chunk.chunk().len();
            bytes.extend_from_slice(chunk.chunk());
            chunk.advance(piece);
        }
    }
    Ok(bytes)
}

/// What the ingest knows about one request once it is admitted.
#[derive(Debug, Clone, Copy)]
struct Request {
    /// The `http` input's index.
    input: usize,
    /// The sending partner, when tokens are in use: it is never sent its
    /// own events back.
    sender: Option<usize>,
    /// The format the sender declared with `?format=`.
    declared: Option<Declared>,
}

/// What a request body became before anything leaves: the answer's
/// per-record results, the dead-letter entries of the rejected records,
/// and every partner's messages in record order.
#[derive(Default)]
struct Translated {
    results: Vec<Value>,
    accepted: u64,
    dropped: u64,
    rejected: u64,
    /// Entries for the dead-letter log, and the stage of each (for the
    /// metrics).
    dead_letters: Vec<Value>,
    dead_letter_stages: Vec<Stage>,
    /// By partner index: all of the body's messages for that partner.
    outbound: BTreeMap<usize, Outbound>,
}

/// One partner's messages from a whole body, delivered at once.
#[derive(Default)]
struct Outbound {
    messages: Vec<Vec<u8>>,
    /// The positions of the records the messages came from.
    records: Vec<usize>,
}

impl Translated {
    /// Keeps a rejected record (or its encoding for one partner) for the
    /// dead-letter log, with the input and the sender it came from.
    fn dead_letter(
        &mut self,
        gateway: &Gateway,
        request: &Request,
        position: usize,
        failure: &Failure,
        bytes: &[u8],
    ) {
        let mut entry = dead_letter::entry_with_reason(
            &[position],
            failure.stage,
            &failure.reason,
            DeadInput::Bytes(bytes),
        );
        if let Value::Object(fields) = &mut entry {
            if let Some(partner) = &failure.partner {
                fields.insert("partner".into(), partner.as_str().into());
            }
            fields.insert(
                "input_name".into(),
                gateway.input_name(request.input).into(),
            );
            if let Some(sender) = request.sender {
                fields.insert("sender".into(), gateway.partner_name(sender).into());
            }
        }
        self.dead_letters.push(entry);
        self.dead_letter_stages.push(failure.stage);
    }
}

/// Translates every record of a request body, keeps the rejected ones in
/// the dead-letter log, delivers each partner's messages in one batch, and
/// answers with each record's fate, only once every output is written or
/// confirmed.
async fn ingest_body(
    gateway: &Arc<Gateway>,
    partners: &Partners,
    request: Request,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    // Translating a large body takes a while: off the runtime's workers,
    // so that other requests and the AMQP inputs keep being served.
    let translating = {
        let gateway = gateway.clone();
        tokio::task::spawn_blocking(move || translate(&gateway, &request, &body))
    };
    let translated = match translating.await {
        Ok(Ok(translated)) => translated,
        Ok(Err(answer)) => return answer,
        Err(error) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": format!("translation did not finish ({error}); nothing was delivered: send the body again")}),
            )
        }
    };
    let input = gateway.input_name(request.input);
    if let Err(error) = gateway.dead_letters().append(&translated.dead_letters) {
        tracing::error!(input, %error, "the dead-letter log could not be written");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": format!(
                "the rejected records could not be kept ({error}); nothing was delivered: send the body again"
            )}),
        );
    }
    for stage in &translated.dead_letter_stages {
        gateway.telemetry().record(Counted::DeadLettered {
            input,
            stage: *stage,
        });
    }
    if let Err(Undelivered {
        partner,
        error,
        records,
    }) = deliver(gateway, partners, translated.outbound).await
    {
        let partner = gateway.partner_name(partner);
        tracing::error!(partner, %error, "ingest delivery failed");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "error": format!(
                    "delivery to partner {partner:?} failed: {error}; records {records:?} were not confirmed: send the whole body again"
                ),
                "unconfirmed": records,
            }),
        );
    }
    let sender = request
        .sender
        .map_or("", |index| gateway.partner_name(index));
    for (status, records) in [
        ("accepted", translated.accepted),
        ("rejected", translated.rejected),
        ("dropped", translated.dropped),
    ] {
        if records > 0 {
            gateway.telemetry().record(Counted::Ingested {
                partner: sender,
                status,
                records,
            });
        }
    }
    let status = if translated.rejected == 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let answer = json!({
        "accepted": translated.accepted,
        "dropped": translated.dropped,
        "rejected": translated.rejected,
        "results": translated.results,
    });
    (status, answer)
}

/// Translates every record of a body for every partner, delivering
/// nothing yet: the answer instead when the body cannot be split into
/// records (400) or the seen-store fails (503).
fn translate(
    gateway: &Gateway,
    request: &Request,
    body: &[u8],
) -> std::result::Result<Translated, (StatusCode, Value)> {
    let mut translated = Translated::default();
    for record in Records::new(Cursor::new(body)) {
        let record = record.map_err(|error| {
            (
                StatusCode::BAD_REQUEST,
                json!({"error": format!("{error}; nothing was delivered")}),
            )
        })?;
        let position = record.position;
        // A client repeats a POST whose answer it did not get, so every
        // record may be a retry: loops are dropped, duplicates are not.
        let outcome = gateway
            .process_as(request.input, &record.bytes, true, request.declared)
            .map_err(|error| {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": format!("{error}; nothing was delivered: send the body again"), "record": position}),
                )
            })?;
        let result = match outcome {
            Outcome::Dropped(verdict) => {
                translated.dropped += 1;
                let reason = if verdict == Verdict::Loop {
                    "loop"
                } else {
                    "duplicate"
                };
                json!({"record": position, "status": "dropped", "reason": reason})
            }
            Outcome::Undecodable(failure) => {
                translated.rejected += 1;
                translated.dead_letter(gateway, request, position, &failure, &record.bytes);
                json!({"record": position, "status": "rejected", "stage": failure.stage.name(), "reason": failure.reason})
            }
            Outcome::Routed {
                ids,
                deliveries,
                failures,
            } => {
                let mut messages = 0;
                for delivery in deliveries {
                    if Some(delivery.partner) == request.sender {
                        continue;
                    }
                    messages += delivery.messages.len();
                    let outbound = translated.outbound.entry(delivery.partner).or_default();
                    outbound.messages.extend(delivery.messages);
                    outbound.records.push(position);
                }
                if failures.is_empty() {
                    translated.accepted += 1;
                    json!({"record": position, "status": "accepted", "messages": messages, "ids": ids})
                } else {
                    translated.rejected += 1;
                    let reasons: Vec<Value> = failures
                        .iter()
                        .map(|f| json!({"partner": f.partner, "reason": f.reason}))
                        .collect();
                    for failure in &failures {
                        translated.dead_letter(gateway, request, position, failure, &record.bytes);
                    }
                    json!({"record": position, "status": "rejected", "stage": "encode", "failures": reasons, "ids": ids})
                }
            }
        };
        translated.results.push(result);
    }
    Ok(translated)
}

/// A partner's batch that was not confirmed, and the records it held
/// together with those of the partners not tried after it.
struct Undelivered {
    partner: usize,
    error: Error,
    records: Vec<usize>,
}

/// Delivers each partner's messages in one call per partner, in partner
/// order, stopping at the first failure.
async fn deliver(
    gateway: &Gateway,
    partners: &Partners,
    outbound: BTreeMap<usize, Outbound>,
) -> std::result::Result<(), Undelivered> {
    let mut outbound = outbound.into_iter();
    while let Some((partner, batch)) = outbound.next() {
        if let Err(error) = partners.deliver(partner, &batch.messages).await {
            let mut records: Vec<usize> = batch
                .records
                .into_iter()
                .chain(outbound.flat_map(|(_, rest)| rest.records))
                .collect();
            records.sort_unstable();
            records.dedup();
            return Err(Undelivered {
                partner,
                error,
                records,
            });
        }
        // An outbox partner's messages count as published once the push
        // worker has them taken; the pull endpoint counts its own.
        let queued = partners
            .configs
            .get(partner)
            .is_some_and(|config| config.transport.uses_outbox());
        if !queued {
            gateway.telemetry().record(Counted::Published {
                partner: gateway.partner_name(partner),
                format: gateway.partner_format(partner),
                messages: batch.messages.len() as u64,
            });
        }
    }
    Ok(())
}
