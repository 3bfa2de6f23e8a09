//! The HTTP side of `serve` (warp): `/metrics` for Prometheus, `/healthz`,
//! and, when an `http` input is configured, `POST /v1/events`, which takes
//! one message, a JSON array or JSON Lines and answers per record.

use std::io::Cursor;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::error::Result;
use crate::gateway::{Delivery, Gateway, Outcome};
use crate::identity::Verdict;
use crate::input::Records;
use crate::telemetry::Counted;
use crate::transport::Partners;

/// Largest request body the ingest accepts.
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// Serves until `shutdown` turns true. `ingest` is the index of the
/// `http` input, if there is one.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    partners: Arc<Partners>,
    ingest: Option<usize>,
    mut shutdown: watch::Receiver<bool>,
) {
    warp::serve(routes(gateway, partners, ingest))
        .incoming(listener)
        .graceful(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .run()
        .await;
}

/// The endpoints, boxed so the server future's type stays simple.
fn routes(
    gateway: Arc<Gateway>,
    partners: Arc<Partners>,
    ingest: Option<usize>,
) -> BoxedFilter<(Response,)> {
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
    let events = warp::path!("v1" / "events")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and_then(move |body: warp::hyper::body::Bytes| {
            let gateway = gateway.clone();
            let partners = partners.clone();
            async move {
                let Some(input) = ingest else {
                    return Err(warp::reject::not_found());
                };
                let (status, answer) = ingest_body(&gateway, &partners, input, &body).await;
                Ok(warp::reply::with_status(warp::reply::json(&answer), status))
            }
        });
    metrics
        .map(Reply::into_response)
        .or(health.map(Reply::into_response))
        .unify()
        .or(events.map(Reply::into_response))
        .unify()
        .boxed()
}

/// Translates every record of a request body and delivers it to the input's
/// partners; the answer lists each record's fate, and is given only once
/// every output is written or confirmed.
async fn ingest_body(
    gateway: &Gateway,
    partners: &Partners,
    input: usize,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut results = Vec::new();
    let (mut accepted, mut dropped, mut rejected) = (0, 0, 0);
    for record in Records::new(Cursor::new(body)) {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                return (StatusCode::BAD_REQUEST, json!({"error": error.to_string()}));
            }
        };
        let position = record.position;
        // A client repeats a POST whose answer it did not get, so every
        // record may be a retry: loops are dropped, duplicates are not.
        let result = match gateway.process(input, &record.bytes, true) {
            Err(error) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": error.to_string(), "record": position}),
                )
            }
            Ok(Outcome::Dropped(verdict)) => {
                dropped += 1;
                let reason = if verdict == Verdict::Loop {
                    "loop"
                } else {
                    "duplicate"
                };
                json!({"record": position, "status": "dropped", "reason": reason})
            }
            Ok(Outcome::Undecodable(failure)) => {
                rejected += 1;
                json!({"record": position, "status": "rejected", "stage": failure.stage.name(), "reason": failure.reason})
            }
            Ok(Outcome::Routed {
                deliveries,
                failures,
            }) => match deliver(gateway, partners, deliveries).await {
                Err(error) => {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": error.to_string(), "record": position}),
                    )
                }
                Ok(_) if !failures.is_empty() => {
                    rejected += 1;
                    let reasons: Vec<Value> = failures
                        .iter()
                        .map(|f| json!({"partner": f.partner, "reason": f.reason}))
                        .collect();
                    json!({"record": position, "status": "rejected", "stage": "encode", "failures": reasons})
                }
                Ok(messages) => {
                    accepted += 1;
                    json!({"record": position, "status": "accepted", "messages": messages})
                }
            },
        };
        results.push(result);
    }
    let status = if rejected == 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let answer =
        json!({"accepted": accepted, "dropped": dropped, "rejected": rejected, "results": results});
    (status, answer)
}

/// Delivers each partner's messages; how many were delivered.
async fn deliver(
    gateway: &Gateway,
    partners: &Partners,
    deliveries: Vec<Delivery>,
) -> Result<usize> {
    let mut delivered = 0;
    for delivery in deliveries {
        partners
            .deliver(delivery.partner, &delivery.messages)
            .await?;
        delivered += delivery.messages.len();
        gateway.telemetry().record(Counted::Published {
            partner: gateway.partner_name(delivery.partner),
            format: gateway.partner_format(delivery.partner),
            messages: delivery.messages.len() as u64,
        });
    }
    Ok(delivered)
}
