//! Pull: `GET /v1/partners/{name}/events?after=CURSOR&limit=N` serves a
//! `pull` partner's messages from the [`crate::outbox::Outbox`], in its
//! format, in the order they were appended, page by page.
//!
//! The answer's `next` is the cursor for the following page, so a consumer
//! that keeps it gets every message once and can resume after a restart.
//! Reading deletes nothing: a consumer may read again from an older
//! cursor; messages are pruned once older than the partner's
//! `pull_retention_days`.
//!
//! Only the partner itself may read: no bearer token is 401, a token of
//! no partner or of another partner is 403, and a name that is not a pull
//! partner is 404 (once the token is known to be a partner's).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use warp::filters::BoxedFilter;
use warp::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::auth::Denied;
use crate::config::PartnerTransport;
use crate::gateway::Gateway;
use crate::identity::unix_now;
use crate::outbox;
use crate::telemetry::Counted;
use crate::transport::{or_stop, Partners};

/// Messages a page holds unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// The most messages a page may hold.
pub const MAX_LIMIT: usize = 1000;
/// How often messages past their retention are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A refusal: the status and what was wrong.
type Refused = (StatusCode, String);

/// The pull endpoint.
pub fn route(gateway: Arc<Gateway>, partners: Arc<Partners>) -> BoxedFilter<(Response,)> {
    warp::path!("v1" / "partners" / String / "events")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(move |name: String, headers: HeaderMap, query: String| {
            let gateway = gateway.clone();
            let partners = partners.clone();
            async move {
                match page(&gateway, &partners, &name, &headers, &query).await {
                    Ok(body) => {
                        let mut reply = body.into_response();
                        reply
                            .headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        reply
                    }
                    Err((status, message)) => {
                        let known = partners
                            .configs
                            .iter()
                            .any(|p| p.name == name && p.transport == PartnerTransport::Pull);
                        gateway.telemetry().record(Counted::PullRefused {
                            partner: if known { &name } else { "" },
                            reason: refusal_reason(status),
                        });
                        let answer = json!({ "error": message });
                        let mut reply =
                            warp::reply::with_status(warp::reply::json(&answer), status)
                                .into_response();
                        if status == StatusCode::UNAUTHORIZED {
                            reply
                                .headers_mut()
                                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                        }
                        reply
                    }
                }
            }
        })
        .boxed()
}

/// One page for the partner called `name`, as the JSON answer's bytes, or
/// why it is refused.
async fn page(
    gateway: &Gateway,
    partners: &Partners,
    name: &str,
    headers: &HeaderMap,
    query: &str,
) -> std::result::Result<Vec<u8>, Refused> {
    let authorization = headers
        .get(warp::http::header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let sender = partners
        .tokens()
        .identify(authorization)
        .map_err(|denied| match denied {
            Denied::Missing => (
                StatusCode::UNAUTHORIZED,
                "a partner's token is required: Authorization: Bearer <token>".to_owned(),
            ),
            Denied::Unknown => (StatusCode::FORBIDDEN, "unknown token".to_owned()),
        })?;
    let index = partners
        .configs
        .iter()
        .position(|p| p.name == name && p.transport == PartnerTransport::Pull)
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("{name:?} is not a pull partner"),
            )
        })?;
    if sender != Some(index) {
        return Err((
            StatusCode::FORBIDDEN,
            format!("this token is not partner {name:?}'s"),
        ));
    }
    let after = match parameter(query, "after") {
        None => 0,
        Some(text) => text.parse::<u64>().map_err(|_| {
            bad_request(format!(
                "after: {text:?} is not a cursor (the `next` of an earlier answer)"
            ))
        })?,
    };
    let limit = match parameter(query, "limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                bad_request(format!(
                    "limit: {text:?} is not a number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let outbox = partners.outbox().ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the outbox is not open".to_owned(),
        )
    })?;
    let owner = name.to_owned();
    let entries = outbox::blocking(outbox, move |o| o.read(&owner, after, limit))
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let next = entries.last().map_or(after, |entry| entry.seq);
    if !entries.is_empty() {
        gateway.telemetry().record(Counted::Pulled {
            partner: name,
            messages: entries.len() as u64,
        });
    }
    // The messages go out byte for byte as the outbox holds them.
    let mut body = format!(
        r#"{{"partner":{},"format":{},"events":"#,
        Value::from(name),
        Value::from(gateway.partner_format(index)),
    )
    .into_bytes();
    body.extend_from_slice(&outbox::json_array(&entries));
    body.extend_from_slice(format!(r#","next":"{next}"}}"#).as_bytes());
    Ok(body)
}

/// The metric's name for a refusal's status.
fn refusal_reason(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::BAD_REQUEST => "bad_request",
        _ => "unavailable",
    }
}

fn bad_request(message: String) -> Refused {
    (StatusCode::BAD_REQUEST, message)
}

/// The value of `name=` in a query string, if given.
fn parameter<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// Removes the pull partners' messages once older than their retention, at
/// start and every hour, until `shutdown` turns true.
pub async fn prune(partners: Arc<Partners>, mut shutdown: watch::Receiver<bool>) {
    let Some(outbox) = partners.outbox().cloned() else {
        return;
    };
    let pulled: Vec<(String, u64)> = partners
        .configs
        .iter()
        .filter(|p| p.transport == PartnerTransport::Pull)
        .map(|p| (p.name.clone(), p.pull_retention_days.saturating_mul(86_400)))
        .collect();
    if pulled.is_empty() {
        return;
    }
    loop {
        for (partner, retention) in &pulled {
            let before = unix_now().saturating_sub(*retention);
            let name = partner.clone();
            match outbox::blocking(&outbox, move |o| o.prune(&name, before)).await {
                Ok(0) => {}
                Ok(removed) => {
                    tracing::info!(partner, removed, "pull: removed messages past retention")
                }
                Err(error) => tracing::warn!(partner, %error, "pull: pruning failed"),
            }
        }
        if or_stop(&mut shutdown, tokio::time::sleep(PRUNE_EVERY))
            .await
            .is_none()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_found_by_their_whole_name() {
        assert_eq!(parameter("after=5&limit=2", "after"), Some("5"));
        assert_eq!(parameter("after=5&limit=2", "limit"), Some("2"));
        assert_eq!(parameter("afterwards=1", "after"), None);
        assert_eq!(parameter("after=", "after"), Some(""));
        assert_eq!(parameter("", "limit"), None);
    }
}
