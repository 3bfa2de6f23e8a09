//! `serve` pushing to partners' HTTP endpoints through the durable outbox,
//! over real HTTP on loopback: the partner is a warp server in the test
//! that fails for a while, is down across a restart of the bridge, or
//! refuses one message for good. A file partner of the same format on the
//! same route shows what the outbox held.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;
use warp::Filter;

const PUSH_TOKEN: &str = "push-secret";

/// How the test partner answers request number `n` (from 0) with `body`:
/// the status, the answer's body, and how long it takes to answer.
type Behaviour = dyn Fn(usize, &str) -> (u16, String, Duration) + Send + Sync;

/// An answer given at once.
fn now(status: u16, body: &str) -> (u16, String, Duration) {
    (status, body.to_owned(), Duration::ZERO)
}

/// One request the test partner got.
#[derive(Debug, Clone)]
struct Request {
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
    status: u16,
}

/// A partner's HTTP endpoint: a warp server on its own runtime, stopped
/// when dropped.
struct Partner {
    requests: Arc<Mutex<Vec<Request>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Partner {
    fn start(port: u16, behaviour: Box<Behaviour>) -> Partner {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let log = requests.clone();
        let behaviour: Arc<Behaviour> = Arc::from(behaviour);
        let route = warp::post()
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::header::optional::<String>("content-type"))
            .and(warp::body::bytes())
            .then(
                move |authorization: Option<String>,
                      content_type: Option<String>,
                      body: warp::hyper::body::Bytes| {
                    let body = String::from_utf8_lossy(&body).into_owned();
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let (status, answer, delay) = behaviour(n, &body);
                    // Recorded when it arrives: a partner that answers too
                    // late has still taken it.
                    log.lock().unwrap().push(Request {
                        authorization,
                        content_type,
                        body,
                        status,
                    });
                    async move {
                        tokio::time::sleep(delay).await;
                        warp::reply::with_status(
                            answer,
                            warp::http::StatusCode::from_u16(status).unwrap(),
                        )
                    }
                },
            );
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        runtime.spawn(warp::serve(route).incoming(listener).run());
        Partner {
            requests,
            _runtime: runtime,
        }
    }

    /// The bodies the partner accepted (2xx), in the order they came.
    fn accepted(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(|r| r.body.clone())
            .collect()
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// The config of a bridge with an HTTP ingest routed to `warden` (IDEA,
/// pushed to `partner_port`) and `archive` (IDEA, a file).
fn config(dir: &Path, port: u16, partner_port: u16, timeout_ms: u64) -> PathBuf {
    config_to(
        dir,
        port,
        &format!("http://127.0.0.1:{partner_port}/warden/events"),
        &format!("timeout_ms = {timeout_ms}"),
    )
}

/// The same with `warden` at `url`, with `extra` keys.
fn config_to(dir: &Path, port: u16, url: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"{head}
[[partners]]
name = "warden"
format = "idea"
transport = "http"
url = "{url}"
push_token = "{PUSH_TOKEN}"
batch_size = 3
retry_initial_ms = 50
retry_max_ms = 200
{extra}
[[partners]]
name = "archive"
format = "idea"
transport = "file"
path = "{archive}"
[[routes]]
input = "in"
partners = ["warden", "archive"]
"#,
        head = common::ingest_config_head("cert-p", port, "", &dir.join("store")),
        archive = dir.join("archive.jsonl").display(),
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path, port: u16) -> Server {
    common::serve(&["--config", config.to_str().unwrap()], port)
}

/// POSTs one JSON Lines body to the ingest; the ingest's answer.
fn ingest(port: u16, events: &[String]) -> Value {
    let body = events.join("\n");
    let (status, answer) =
        common::http(port, "POST", "/v1/events", &[], body.as_bytes()).expect("ingest answers");
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

/// Waits (up to 30 s) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ingests three events while the partner is down, then stops the bridge:
/// the outbox holds them, to go out as one batch at the next start.
fn queue_three_while_down(config: &Path, port: u16) {
    let events: Vec<String> = ["203.0.113.1", "203.0.113.66", "203.0.113.3"]
        .iter()
        .map(|ip| common::scanner(ip, "GREEN"))
        .collect();
    let mut server = start(config, port);
    ingest(port, &events);
    wait_until("three events waiting", || {
        common::metrics(port).contains(r#"intelmq_bridge_outbox_pending{partner="warden"} 3"#)
    });
    assert!(server.terminate(), "serve stops cleanly");
}

/// The dead letters written under `dir`'s store.
fn dead_letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("store/dead-letters.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The lines the file partner got, as written.
fn archive(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("archive.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The messages of accepted bodies, byte for byte: each body is a JSON
/// array of consecutive outbox messages.
fn pushed(bodies: &[String]) -> Vec<String> {
    bodies
        .iter()
        .flat_map(|body| {
            let messages: Vec<Value> = serde_json::from_str(body).expect("a JSON array");
            messages.into_iter().map(|m| m.to_string())
        })
        .collect()
}

/// The bodies joined as one array's contents, exactly as sent.
fn joined(bodies: &[String]) -> String {
    bodies
        .iter()
        .map(|body| {
            body.strip_prefix('[')
                .and_then(|b| b.strip_suffix(']'))
                .expect("a JSON array")
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn a_partner_that_fails_for_a_while_receives_every_event_once() {
    let dir = common::scratch("push-recover");
    let (port, partner_port) = (common::free_port(), common::free_port());
    // 503 for the first four requests, then everything is taken.
    let partner = Partner::start(
        partner_port,
        Box::new(|n, _| match n {
            0..=3 => now(503, "busy"),
            _ => now(200, "{}"),
        }),
    );
    let _server = start(&config(&dir, port, partner_port, 5000), port);
    let events: Vec<String> = (1..=7)
        .map(|i| {
            common::scanner(
                &format!("192.0.2.{i}"),
                if i == 4 { "RED" } else { "GREEN" },
            )
        })
        .collect();
    // Accepted while the partner still fails: the outbox holds them.
    ingest(port, &events[..4]);
    ingest(port, &events[4..]);

    wait_until("six events at the partner", || {
        pushed(&partner.accepted()).len() >= 6
    });
    wait_until("an empty outbox", || {
        common::metrics(port).contains(r#"intelmq_bridge_outbox_pending{partner="warden"} 0"#)
    });
    let accepted = partner.accepted();
    let archive = archive(&dir);
    assert_eq!(archive.len(), 6, "{archive:?}");
    // Exactly the messages the file partner of the same format got, in
    // order, each once, byte for byte.
    assert_eq!(joined(&accepted), archive.join(","));
    assert_eq!(pushed(&accepted), archive);
    // The TLP:RED event reached neither (max_tlp is AMBER by default).
    assert!(
        !archive.iter().any(|m| m.contains("192.0.2.4")),
        "{archive:?}"
    );

    let requests = partner.requests();
    assert_eq!(requests.iter().filter(|r| r.status == 503).count(), 4);
    for request in &requests {
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer push-secret"),
            "{request:?}"
        );
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
    }
    common::assert_metrics(
        port,
        &[
            r#"intelmq_bridge_push_failed_total{partner="warden",reason="status_5xx"} 4"#,
            // Counted once, when the partner took them, not when they were queued.
            r#"intelmq_bridge_published_total{partner="warden",format="idea"} 6"#,
        ],
    );
}

#[test]
fn events_in_the_outbox_survive_a_restart_while_the_partner_is_down() {
    let dir = common::scratch("push-restart");
    let (port, partner_port) = (common::free_port(), common::free_port());
    let config = config(&dir, port, partner_port, 5000);
    let events: Vec<String> = (1..=5)
        .map(|i| common::scanner(&format!("198.51.100.{i}"), "GREEN"))
        .collect();
    {
        // Nothing listens on the partner's port.
        let mut server = start(&config, port);
        ingest(port, &events);
        wait_until("five events waiting and a failed connection", || {
            let metrics = common::metrics(port);
            metrics.contains(r#"intelmq_bridge_outbox_pending{partner="warden"} 5"#)
                && metrics.contains(r#"reason="connect""#)
        });
        assert!(server.terminate(), "serve stops cleanly");
    }
    let partner = Partner::start(partner_port, Box::new(|_, _| now(200, "")));
    let _server = start(&config, port);
    wait_until("five events at the partner", || {
        pushed(&partner.accepted()).len() >= 5
    });
    let archive = archive(&dir);
    assert_eq!(archive.len(), 5);
    assert_eq!(joined(&partner.accepted()), archive.join(","));
    wait_until("an empty outbox", || {
        common::metrics(port).contains(r#"intelmq_bridge_outbox_pending{partner="warden"} 0"#)
    });
}

#[test]
fn a_message_the_partner_refuses_goes_to_the_dead_letters_and_the_rest_arrive() {
    let dir = common::scratch("push-reject");
    let (port, partner_port) = (common::free_port(), common::free_port());
    let config = config(&dir, port, partner_port, 5000);
    queue_three_while_down(&config, port);
    let partner = Partner::start(
        partner_port,
        Box::new(|_, body| match body.contains("203.0.113.66") {
            true => now(400, "Source IP 203.0.113.66 is not accepted"),
            false => now(200, ""),
        }),
    );
    // Restarted with the three waiting: the first request carries them all.
    let _server = start(&config, port);
    wait_until("an empty outbox", || {
        common::metrics(port).contains(r#"intelmq_bridge_outbox_pending{partner="warden"} 0"#)
    });
    let delivered = pushed(&partner.accepted());
    let archive = archive(&dir);
    assert_eq!(delivered, [archive[0].clone(), archive[2].clone()]);
    let requests = partner.requests();
    assert_eq!(requests[0].status, 400);
    assert_eq!(
        pushed(&[requests[0].body.clone()]),
        archive,
        "one batch of three first"
    );

    let letters = dead_letters(&dir);
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["stage"], "push");
    assert_eq!(letter["partner"], "warden");
    assert_eq!(letter["status"], 400);
    assert_eq!(letter["answer"], "Source IP 203.0.113.66 is not accepted");
    assert_eq!(letter["message"].to_string(), archive[1]);
    common::assert_metrics(
        port,
        &[r#"intelmq_bridge_push_rejected_total{partner="warden"} 1"#],
    );
}

#[test]
fn a_partner_too_slow_to_answer_gets_the_batch_again() {
    let dir = common::scratch("push-timeout");
    let (port, partner_port) = (common::free_port(), common::free_port());
    // The first request is taken but answered after the bridge gave up.
    let partner = Partner::start(
        partner_port,
        Box::new(|n, _| match n {
            0 => (200, String::new(), Duration::from_secs(3)),
            _ => now(200, ""),
        }),
    );
    let _server = start(&config(&dir, port, partner_port, 300), port);
    let events: Vec<String> = (1..=4)
        .map(|i| common::scanner(&format!("192.0.2.{i}"), "GREEN"))
        .collect();
    ingest(port, &events);
    wait_until("an empty outbox after a timeout", || {
        let metrics = common::metrics(port);
        metrics.contains(r#"intelmq_bridge_outbox_pending{partner="warden"} 0"#)
            && metrics.contains(r#"reason="timeout""#)
    });
    // At least once: the batch that timed out came twice, nothing is
    // missing, and the rest came in order.
    let pushed = pushed(&partner.accepted());
    let mut unique: Vec<String> = Vec::new();
    for message in &pushed {
        if !unique.contains(message) {
            unique.push(message.clone());
        }
    }
    assert_eq!(unique, archive(&dir));
    assert!(pushed.len() > unique.len(), "{pushed:?}");
}

#[test]
fn an_https_partner_is_reached_with_its_own_ca_and_this_instances_certificate() {
    let dir = common::scratch("push-tls");
    let (port, partner_port) = (common::free_port(), common::free_port());
    let partner = Partner::start(partner_port, Box::new(|_, _| now(200, "")));
    // The partner behind TLS that wants a client certificate of its CA.
    let pki = common::tls::Pki::new(&dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let front = runtime.block_on(pki.front(([127, 0, 0, 1], partner_port).into(), true));
    let url = format!("https://localhost:{front}/warden/events");
    let trust = format!("push_ca = \"{}\"", pki.ca.display());
    let event = common::scanner("192.0.2.10", "GREEN");
    {
        // Trusting the partner, but without a certificate of our own: the
        // handshake fails, nothing arrives, the event waits in the outbox.
        let mut server = start(&config_to(&dir, port, &url, &trust), port);
        ingest(port, std::slice::from_ref(&event));
        wait_until("a failed handshake", || {
            common::metrics(port).contains(r#"intelmq_bridge_push_failed_total{partner="warden""#)
        });
        assert!(partner.requests().is_empty());
        assert!(server.terminate(), "serve stops cleanly");
    }
    let identified = format!(
        "{trust}\npush_client_cert = \"{}\"\npush_client_key = \"{}\"",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let _server = start(&config_to(&dir, port, &url, &identified), port);
    wait_until("the event at the partner", || {
        !partner.accepted().is_empty()
    });
    assert_eq!(pushed(&partner.accepted()), archive(&dir));
    assert_eq!(
        partner.requests()[0].authorization.as_deref(),
        Some("Bearer push-secret")
    );
}

#[test]
fn a_warden_refusal_dead_letters_only_the_events_it_names() {
    let dir = common::scratch("push-warden");
    let (port, partner_port) = (common::free_port(), common::free_port());
    let config = config(&dir, port, partner_port, 5000);
    queue_three_while_down(&config, port);
    // As a Warden server answers a batch with one invalid event: it saved
    // the others, and says which one it refused by its index.
    let refusal = r#"{"method": "sendEvents", "req_id": 1, "errors": [{"error": 460, "message": "Validation error", "events": [1]}]}"#;
    let partner = Partner::start(partner_port, Box::new(move |_, _| now(460, refusal)));
    let _server = start(&config, port);
    wait_until("an empty outbox", || {
        common::metrics(port).contains(r#"intelmq_bridge_outbox_pending{partner="warden"} 0"#)
    });
    // One request: the saved events are not sent again.
    let requests = partner.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let archive = archive(&dir);
    assert_eq!(pushed(&[requests[0].body.clone()]), archive);
    let letters = dead_letters(&dir);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["status"], 460);
    assert_eq!(letters[0]["message"].to_string(), archive[1]);
    common::assert_metrics(
        port,
        &[r#"intelmq_bridge_published_total{partner="warden",format="idea"} 2"#],
    );
}
