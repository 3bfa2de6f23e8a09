//! The transport-free heart of `serve`: what happens to one message between
//! an input and the partners it is routed to. Decode it (an envelope, or a
//! native message in the input's format or recognised by shape), ask the
//! loop guard, filter by classification, and encode it once per partner.
//!
//! Transports ([`crate::transport`]) feed bytes in and deliver what comes
//! out; the [`Gateway`] knows no transport and no format, only the
//! [`Registry`] and the [`Translator`].

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use uuid::Uuid;

use crate::config::{Config, SeenConfig};
use crate::dead_letter::{DeadLetterLog, Stage};
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::formats::{intelmq, DecodeContext, EncodeContext, Registry};
use crate::identity::{LoopGuard, SeenLocation, Verdict};
use crate::pipeline::{GroupBuffer, Output, Translator};
use crate::policy::Policy;
use crate::telemetry::{Counted, Telemetry};

/// Every format of this build, shared by all of the service's tasks.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::standard)
}

/// What became of one input message.
#[derive(Debug)]
pub enum Outcome {
    /// Decoded and encoded: deliver these, then acknowledge. Encodings that
    /// failed for some partner are in `failures` (for the dead letters).
    Routed {
        /// The IEP04 ids (`meta.uuid.id`) of the events the message became,
        /// one per event of a split group, for a sender to refer to them.
        ids: Vec<Uuid>,
        /// Encoded messages, per partner.
        deliveries: Vec<Delivery>,
        /// Partners the message could not be encoded for.
        failures: Vec<Failure>,
    },
    /// A loop or a duplicate: acknowledge and forget.
    Dropped(Verdict),
    /// It could not be decoded: dead-letter it.
    Undecodable(Failure),
}

/// Encoded messages for one partner.
#[derive(Debug)]
pub struct Delivery {
    /// Index of the partner in the configuration.
    pub partner: usize,
    /// The native messages, as JSON text.
    pub messages: Vec<Vec<u8>>,
}

/// Why a message could not go through, for a dead-letter entry.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Where it failed.
    pub stage: Stage,
    /// The partner it could not be encoded for (encode stage only).
    pub partner: Option<String>,
    /// The error, naming the field and value.
    pub reason: String,
}

struct InputPlan {
    name: String,
    decoder: Translator<'static>,
    routes: Vec<(usize, Vec<String>)>,
}

struct PartnerPlan {
    name: String,
    format: &'static str,
    encoder: Translator<'static>,
    policy: Policy,
}

/// The name under which a sender asks for each message's format to be
/// recognised by its shape.
pub const AUTO: &str = "auto";

/// A format a sender declared for its messages (or [`AUTO`]), found by
/// [`Gateway::declared`] so that an unknown name is refused before any
/// record is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared(usize);

/// The configured translation service: inputs, partners, routes and the
/// loop guard, shared by every transport task.
pub struct Gateway {
    origin: String,
    /// A decoder per format a sender may declare, `auto` first.
    declared: Vec<(&'static str, Translator<'static>)>,
    inputs: Vec<InputPlan>,
    partners: Vec<PartnerPlan>,
    guard: Option<Mutex<LoopGuard>>,
    telemetry: std::sync::Arc<Telemetry>,
    dead_letters: DeadLetterLog,
}

impl Gateway {
    /// Builds the service from a checked configuration; opens the seen-store
    /// and the store directory's dead-letter log (created when missing).
    pub fn new(config: &Config, telemetry: std::sync::Arc<Telemetry>) -> Result<Self> {
        let registry = registry();
        let origin = config.origin.as_str();
        // The decoder's target is never used: decoding only reads `from`.
        let any = registry.get(intelmq::NAME)?;
        let decoder = |from| {
            Translator::new(
                registry,
                from,
                any,
                Output::Native,
                DecodeContext::new(origin),
                EncodeContext::new(origin),
            )
        };
        let declared = std::iter::once((AUTO, decoder(None)))
            .chain(
                registry
                    .names()
                    .into_iter()
                    .map(|name| Ok((name, decoder(Some(registry.get(name)?)))))
                    .collect::<Result<Vec<_>>>()?,
            )
            .collect();
        let inputs = config
            .inputs
            .iter()
            .map(|input| {
                let from = match input.format.as_str() {
                    AUTO => None,
                    name => Some(registry.get(name)?),
                };
                let routes = config
                    .routes
                    .iter()
                    .filter(|route| route.input == input.name)
                    .flat_map(|route| {
                        route.partners.iter().filter_map(|name| {
                            let index = config.partners.iter().position(|p| &p.name == name)?;
                            Some((index, route.classification.clone()))
                        })
                    })
                    .collect();
                Ok(InputPlan {
                    name: input.name.clone(),
                    decoder: decoder(from),
                    routes,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let partners = config
            .partners
            .iter()
            .enumerate()
            .map(|(i, partner)| {
                let to = registry.get(&partner.format)?;
                let mut encode_context = EncodeContext::new(origin);
                encode_context.meta_in_extra = partner.meta;
                let output = partner.wire_form().map_or(Output::Native, Output::Envelope);
                Ok(PartnerPlan {
                    name: partner.name.clone(),
                    format: to.name(),
                    encoder: Translator::new(
                        registry,
                        None,
                        to,
                        output,
                        DecodeContext::new(origin),
                        encode_context,
                    ),
                    policy: Policy::from_config(&format!("partners[{i}]"), partner)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let guard = config
            .seen
            .as_ref()
            .map(|seen| open_guard(origin, seen).map(Mutex::new))
            .transpose()?;
        let dead_letters = match &config.store {
            Some(store) => {
                std::fs::create_dir_all(&store.path).map_err(|e| {
                    Error::Config(format!("store.path: {}: {e}", store.path.display()))
                })?;
                let path = store.dead_letter_path();
                DeadLetterLog::open(Some(&path))
                    .map_err(|e| Error::Config(format!("store.path: {}: {e}", path.display())))?
            }
            None => DeadLetterLog::open(None)?,
        };
        Ok(Gateway {
            origin: origin.to_owned(),
            declared,
            inputs,
            partners,
            guard,
            telemetry,
            dead_letters,
        })
    }

    /// Where the HTTP side keeps what it could not handle (AMQP inputs
    /// have their dead-letter queues).
    pub fn dead_letters(&self) -> &DeadLetterLog {
        &self.dead_letters
    }

    /// This instance's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The service's counters.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The name of partner `index`.
    pub fn partner_name(&self, index: usize) -> &str {
        &self.partners[index].name
    }

    /// The format of partner `index`.
    pub fn partner_format(&self, index: usize) -> &'static str {
        self.partners[index].format
    }

    /// The name of input `index`.
    pub fn input_name(&self, index: usize) -> &str {
        &self.inputs[index].name
    }

    /// The partners input `index` is routed to (each once: the
    /// configuration check refuses a partner routed twice from one input).
    pub fn routed_partners(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.inputs[index]
            .routes
            .iter()
            .map(|(partner, _)| *partner)
    }

    /// Translates one message that arrived on input `input`. A message that
    /// may be a `retry` (the broker's redelivery, or a client's repeated
    /// POST) may already be in the seen-store from an attempt that did not
    /// finish, so for it only loops are dropped, never duplicates.
    ///
    /// A bug that panics on some message must not stop the input or bring
    /// the message back forever: the panic is caught and the message goes
    /// to the dead letters like any other it cannot translate.
    pub fn process(&self, input: usize, body: &[u8], retry: bool) -> Result<Outcome> {
        self.process_as(input, body, retry, None)
    }

    /// The format `name` as a sender may declare it, if this build knows it.
    pub fn declared(&self, name: &str) -> Option<Declared> {
        self.declared
            .iter()
            .position(|(known, _)| *known == name)
            .map(Declared)
    }

    /// Every name a sender may declare, for error messages.
    pub fn declared_names(&self) -> Vec<&'static str> {
        self.declared.iter().map(|(name, _)| *name).collect()
    }

    /// [`Gateway::process`], decoding in the format the sender declared
    /// instead of the input's own setting when `declared` is given.
    pub fn process_as(
        &self,
        input: usize,
        body: &[u8],
        retry: bool,
        declared: Option<Declared>,
    ) -> Result<Outcome> {
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.translate(input, body, retry, declared)
        }));
        attempt.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Ok(Outcome::Undecodable(Failure {
                stage: Stage::Decode,
                partner: None,
                reason: format!("internal error while translating: {message}"),
            }))
        })
    }

    fn translate(
        &self,
        input: usize,
        body: &[u8],
        retry: bool,
        declared: Option<Declared>,
    ) -> Result<Outcome> {
        let plan = &self.inputs[input];
        let decoder = declared.map_or(&plan.decoder, |Declared(index)| &self.declared[index].1);
        let decoded = decoder.decode_bytes(body);
        let mut events = match decoded {
            Ok(events) => events,
            Err(error) => {
                self.telemetry.record(Counted::Received {
                    input: &plan.name,
                    format: "unknown",
                });
                return Ok(Outcome::Undecodable(Failure {
                    stage: Stage::Decode,
                    partner: None,
                    reason: error.to_string(),
                }));
            }
        };
        let format = events
            .first()
            .and_then(|event| registry().get(&event.meta.format).ok())
            .map_or("unknown", |format| format.name());
        self.telemetry.record(Counted::Received {
            input: &plan.name,
            format,
        });
        if events.len() > 1 {
            self.telemetry.record(Counted::Split {
                input: &plan.name,
                format,
                events: events.len() as u64,
            });
        }
        if let Some(guard) = &self.guard {
            let verdict = guard
                .lock()
                // A caught panic may have poisoned the lock; the guard's
                // state is a cache of the store and stays usable.
                .unwrap_or_else(PoisonError::into_inner)
                .admit(&mut events)?;
            let dropped = match verdict {
                Verdict::New => false,
                Verdict::Duplicate => !retry,
                Verdict::Loop => true,
            };
            if dropped {
                self.telemetry.record(Counted::Dropped {
                    input: &plan.name,
                    verdict,
                });
                return Ok(Outcome::Dropped(verdict));
            }
        }
        let mut deliveries = Vec::new();
        let mut failures = Vec::new();
        for (partner, classification) in &plan.routes {
            let chosen: Vec<Envelope> = events
                .iter()
                .filter(|event| passes(event, classification))
                .filter(|event| self.admits(*partner, event))
                .cloned()
                .collect();
            if chosen.is_empty() {
                continue;
            }
            match self.encode(*partner, chosen) {
                Ok(messages) => deliveries.push(Delivery {
                    partner: *partner,
                    messages,
                }),
                Err(error) => failures.push(Failure {
                    stage: Stage::Encode,
                    partner: Some(self.partners[*partner].name.clone()),
                    reason: error.to_string(),
                }),
            }
        }
        Ok(Outcome::Routed {
            ids: events.iter().map(|event| event.meta.uuid.id).collect(),
            deliveries,
            failures,
        })
    }

    /// Whether partner `index`'s egress policy lets `event` go to it; an
    /// event withheld is counted and logged, without its contents.
    fn admits(&self, index: usize, event: &Envelope) -> bool {
        let plan = &self.partners[index];
        match plan.policy.admits(&event.payload) {
            Ok(()) => true,
            Err(refusal) => {
                self.telemetry.record(Counted::Withheld {
                    partner: &plan.name,
                    refusal: &refusal,
                });
                false
            }
        }
    }

    /// Encodes the events of one message for partner `index`, handing a
    /// merging format whole split groups.
    fn encode(&self, index: usize, events: Vec<Envelope>) -> Result<Vec<Vec<u8>>> {
        let plan = &self.partners[index];
        let mut buffer = GroupBuffer::new(plan.encoder.merges_groups());
        let mut groups = Vec::new();
        for event in events {
            groups.extend(buffer.push((), event));
        }
        groups.extend(buffer.drain());
        let mut messages = Vec::new();
        for group in groups {
            let envelopes: Vec<Envelope> = group.into_iter().map(|(_, event)| event).collect();
            for message in plan.encoder.encode(&envelopes)? {
                messages.push(serde_json::to_vec(&message)?);
            }
        }
        self.telemetry.record(Counted::Translated {
            partner: &plan.name,
            format: plan.format,
            messages: messages.len() as u64,
        });
        Ok(messages)
    }

    /// Makes the seen-store durable; called periodically and at shutdown.
    pub fn flush(&self) -> Result<()> {
        if let Some(guard) = &self.guard {
            guard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .flush()?;
        }
        Ok(())
    }
}

/// Whether an event passes a route's classification filter.
fn passes(event: &Envelope, classification: &[String]) -> bool {
    classification.is_empty()
        || ["classification.type", "classification.taxonomy"]
            .iter()
            .filter_map(|key| event.payload.get_str(key))
            .any(|value| classification.iter().any(|wanted| wanted == value))
}

fn open_guard(origin: &str, seen: &SeenConfig) -> Result<LoopGuard> {
    let retention = Duration::from_secs(seen.retention_days.saturating_mul(24 * 3600));
    let location = match (&seen.path, &seen.redis) {
        (Some(path), _) => SeenLocation::File(path),
        (None, Some(url)) => SeenLocation::Redis(url),
        (None, None) => {
            return Err(Error::Config(
                "seen: give exactly one of seen.path and seen.redis".into(),
            ))
        }
    };
    LoopGuard::open(origin, location, retention, seen.fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn gateway(extra: &str) -> Gateway {
        let text = format!(
            r#"
            origin = "cert-a"
            {extra}
            [[inputs]]
            name = "in"
            queue = "q"
            [[partners]]
            name = "all"
            format = "intelmq"
            queue = "all"
            [[partners]]
            name = "scanners"
            format = "intelmq"
            envelope = "iep04"
            queue = "scanners"
            [[routes]]
            input = "in"
            partners = ["all"]
            [[routes]]
            input = "in"
            partners = ["scanners"]
            classification = ["scanner"]
            "#
        );
        let config = Config::parse(&text, registry()).unwrap();
        Gateway::new(&config, Arc::new(Telemetry::new())).unwrap()
    }

    fn deliveries(outcome: Outcome) -> Vec<(usize, usize)> {
        match outcome {
            Outcome::Routed {
                deliveries,
                failures,
                ..
            } => {
                assert!(failures.is_empty(), "{failures:?}");
                deliveries
                    .iter()
                    .map(|d| (d.partner, d.messages.len()))
                    .collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn routes_filter_by_classification() {
        let gateway = gateway("");
        let scanner =
            br#"{"__type": "Event", "source.ip": "192.0.2.1", "classification.type": "scanner"}"#;
        let phishing = br#"{"__type": "Event", "source.url": "http://example.com/", "classification.type": "phishing"}"#;
        assert_eq!(
            deliveries(gateway.process(0, scanner, false).unwrap()),
            [(0, 1), (1, 1)]
        );
        assert_eq!(
            deliveries(gateway.process(0, phishing, false).unwrap()),
            [(0, 1)]
        );
        assert_eq!(gateway.routed_partners(0).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn the_egress_policy_withholds_events_above_a_partner() {
        let gateway = gateway("");
        let red = br#"{"__type": "Event", "source.ip": "192.0.2.1", "classification.type": "scanner", "tlp": "RED"}"#;
        assert_eq!(deliveries(gateway.process(0, red, false).unwrap()), []);
        let internal = br#"{"__type": "Event", "source.ip": "192.0.2.1", "classification.type": "scanner", "extra.n6.restriction": "internal"}"#;
        assert_eq!(deliveries(gateway.process(0, internal, false).unwrap()), []);
        let telemetry = gateway.telemetry();
        assert_eq!(
            telemetry.count("withheld_total", &[("partner", "all"), ("reason", "tlp")]),
            1
        );
        assert_eq!(
            telemetry.count("withheld_total", &[("reason", "restriction")]),
            2
        );
    }

    #[test]
    fn routed_messages_name_the_ids_of_their_events() {
        let gateway = gateway("");
        let envelope = br#"{"meta": {"version": 1, "type": "event", "format": "intelmq",
            "uuid": {"origin": "cert-b", "id": "0192f3a4-5b6c-7d8e-9f00-112233445566",
                     "related": [], "group": [], "alternate": []}},
            "payload": {"source.ip": "192.0.2.1", "classification.type": "scanner"}}"#;
        let Outcome::Routed { ids, .. } = gateway.process(0, envelope, false).unwrap() else {
            panic!("not routed")
        };
        assert_eq!(
            ids.iter().map(Uuid::to_string).collect::<Vec<_>>(),
            ["0192f3a4-5b6c-7d8e-9f00-112233445566"]
        );
    }

    #[test]
    fn undecodable_messages_name_the_field() {
        let gateway = gateway("");
        let outcome = gateway
            .process(0, br#"{"source.ip": "999.1.1.1"}"#, false)
            .unwrap();
        let Outcome::Undecodable(failure) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(failure.stage, Stage::Decode);
        assert!(failure.reason.contains("source.ip"), "{}", failure.reason);
    }

    #[test]
    fn duplicates_are_dropped_unless_a_retry() {
        let dir = std::env::temp_dir().join(format!("ib-gateway-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let seen = format!("[seen]\npath = \"{}\"", dir.join("seen.redb").display());
        let gateway = gateway(&seen);
        let envelope = |origin: &str| {
            serde_json::to_vec(&serde_json::json!({
                "meta": {"version": 1, "type": "event", "format": "intelmq",
                         "uuid": {"origin": origin, "id": "0192f3a4-5b6c-7d8e-9f00-112233445566",
                                  "related": [], "group": [], "alternate": []}},
                "payload": {"source.ip": "192.0.2.1", "classification.type": "scanner"},
            }))
            .unwrap()
        };
        let theirs = envelope("cert-b");
        assert_eq!(
            deliveries(gateway.process(0, &theirs, false).unwrap()).len(),
            2
        );
        assert!(matches!(
            gateway.process(0, &theirs, false).unwrap(),
            Outcome::Dropped(Verdict::Duplicate)
        ));
        // The broker's redelivery of a message whose first attempt did not finish.
        assert_eq!(
            deliveries(gateway.process(0, &theirs, true).unwrap()).len(),
            2
        );
        assert!(matches!(
            gateway.process(0, &envelope("cert-a"), true).unwrap(),
            Outcome::Dropped(Verdict::Loop)
        ));
        let telemetry = gateway.telemetry();
        assert_eq!(
            telemetry.count("dropped_total", &[("reason", "duplicate")]),
            1
        );
        assert_eq!(telemetry.count("dropped_total", &[("reason", "loop")]), 1);
    }
}
