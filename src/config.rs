//! The `serve` configuration: plain serde data read from TOML, checked once
//! at start-up so that a mistake stops the service with a message naming
//! the key (`partners[1].format: "misp" is not a known format`), never a
//! surprise at the first message.
//!
//! The shape is documented, with an example, in `docs/serve.md` and
//! `examples/amqp.toml`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::ValueEnum as _;
use serde::Deserialize;

use crate::auth::Tokens;
use crate::envelope::WireForm;
use crate::error::{Error, Result};
use crate::formats::{intelmq, Registry};
use crate::policy::{Policy, Tlp};

/// Where `/metrics` and `/healthz` (and the HTTP ingest) listen unless told.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Unacknowledged deliveries an AMQP input holds unless told.
pub const DEFAULT_PREFETCH: u16 = 256;
/// The AMQP broker unless told: RabbitMQ on this machine, default vhost.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The whole `serve` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This instance's name: the origin of events created here, and what a
    /// returning event is recognised by.
    pub origin: String,
    /// The HTTP side: metrics, health, and the ingest of `http` inputs.
    #[serde(default)]
    pub http: HttpConfig,
    /// The seen-store for loop and duplicate detection; without it
    /// no event is dropped as a loop or duplicate.
    pub seen: Option<SeenConfig>,
    /// Where events come from.
    #[serde(default)]
    pub inputs: Vec<InputConfig>,
    /// Where events go, each in its own format.
    #[serde(default)]
    pub partners: Vec<PartnerConfig>,
    /// Which inputs feed which partners.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The directory of the service's own durable state; without it dead
    /// letters of the HTTP side go to stderr.
    pub store: Option<StoreConfig>,
}

/// The service's own durable state, in one directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The directory (created at start when missing).
    pub path: PathBuf,
}

impl StoreConfig {
    /// The JSON Lines file that keeps what the HTTP side could not handle.
    pub fn dead_letter_path(&self) -> PathBuf {
        self.path.join("dead-letters.jsonl")
    }

    /// The redb file of the outbox, where messages for `http` and `pull`
    /// partners wait.
    pub fn outbox_path(&self) -> PathBuf {
        self.path.join("outbox.redb")
    }
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0: any free port).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest request body the ingest takes; a larger one is answered 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// The server's certificate chain (PEM): with `tls_key`, the listener
    /// speaks HTTPS, so partners' bearer tokens never travel in clear.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            max_body_bytes: default_max_body_bytes(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// The ingest's body limit unless told: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Ingest requests a second a partner may make unless told.
pub const DEFAULT_RATE_LIMIT: f64 = 100.0;
/// Ingest requests a partner may make at once unless told.
pub const DEFAULT_RATE_BURST: f64 = 200.0;

fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_owned()
}

/// The seen-store: one local file, or Redis shared by several instances.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenConfig {
    /// A local file (redb) that keeps ids across restarts.
    pub path: Option<PathBuf>,
    /// A Redis URL, e.g. `redis://127.0.0.1:6379/0`.
    pub redis: Option<String>,
    /// How long ids are remembered.
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
    /// Add an `fp:` alternate id over the fingerprint fields.
    #[serde(default)]
    pub fingerprint: bool,
}

fn default_retention_days() -> u64 {
    7
}

/// How a queue is declared before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Declare {
    /// As IntelMQ 3.5 declares its pipeline queues: durable with
    /// `x-queue-mode=lazy` (other arguments make RabbitMQ answer 406).
    Intelmq,
    /// Durable, no arguments.
    Durable,
    /// Only check that it exists, whatever its arguments.
    Passive,
}

/// The transports an input can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputTransport {
    /// An AMQP queue.
    Amqp,
    /// `POST /v1/events` on the HTTP listener; it answers once every
    /// output is written or confirmed.
    Http,
}

/// The transports a partner can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartnerTransport {
    /// An AMQP exchange and routing key, or a queue.
    Amqp,
    /// JSON Lines appended to a file, or stdout (`-`).
    File,
    /// Batches POSTed to the partner's HTTP endpoint (`url`), through the
    /// durable outbox.
    Http,
    /// Kept in the durable outbox for the partner to fetch from
    /// `GET /v1/partners/{name}/events`.
    Pull,
}

impl PartnerTransport {
    /// Whether the partner's messages go through the outbox.
    pub fn uses_outbox(self) -> bool {
        matches!(self, PartnerTransport::Http | PartnerTransport::Pull)
    }
}

/// One source of events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Name used in routes, logs and metrics.
    pub name: String,
    /// The format expected, or `auto` to recognise each message (envelopes
    /// are always recognised).
    #[serde(default = "default_auto")]
    pub format: String,
    /// `amqp` (default) or `http`.
    #[serde(default = "default_input_transport")]
    pub transport: InputTransport,
    /// AMQP broker URL.
    #[serde(default = "default_amqp_url")]
    pub url: String,
    /// AMQP queue to consume.
    pub queue: Option<String>,
    /// Deliveries held unacknowledged at once.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// How the queue is declared.
    #[serde(default = "default_declare")]
    pub declare: Declare,
    /// Queue for messages that cannot be translated (default: `<queue>.dead-letter`).
    pub dead_letter_queue: Option<String>,
}

fn default_auto() -> String {
    "auto".to_owned()
}
fn default_input_transport() -> InputTransport {
    InputTransport::Amqp
}
fn default_amqp_url() -> String {
    DEFAULT_AMQP_URL.to_owned()
}
fn default_prefetch() -> u16 {
    DEFAULT_PREFETCH
}
fn default_declare() -> Declare {
    Declare::Durable
}

impl InputConfig {
    /// The queue consumed (checked present for AMQP inputs).
    pub fn queue_name(&self) -> &str {
        self.queue.as_deref().unwrap_or_default()
    }

    /// The dead-letter queue of this input.
    pub fn dead_letter_name(&self) -> String {
        match &self.dead_letter_queue {
            Some(name) => name.clone(),
            None => format!("{}.dead-letter", self.queue_name()),
        }
    }
}

/// One receiver of events, in its own format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// Name used in routes, logs and metrics.
    pub name: String,
    /// The format the partner reads.
    pub format: String,
    /// For `intelmq`: carry the IEP04 meta in `extra.iep04` of the flat
    /// event, so ids survive a hop through IntelMQ bots.
    #[serde(default)]
    pub meta: bool,
    /// For `intelmq`: write whole envelopes (`iep04` or `ail`) instead of
    /// flat events, for a partner that runs the bridge itself.
    pub envelope: Option<String>,
    /// `amqp` (default), `file`, `http` or `pull`.
    #[serde(default = "default_partner_transport")]
    pub transport: PartnerTransport,
    /// The AMQP broker URL (default [`DEFAULT_AMQP_URL`]), or for `http` the
    /// partner's endpoint (required: no default applies).
    pub url: Option<String>,
    /// AMQP exchange ("" is the default exchange).
    #[serde(default)]
    pub exchange: String,
    /// AMQP routing key (with `exchange`).
    pub routing_key: Option<String>,
    /// AMQP queue to publish into through the default exchange.
    pub queue: Option<String>,
    /// How `queue` is declared.
    #[serde(default = "default_declare")]
    pub declare: Declare,
    /// For `file`: the JSON Lines file, `-` for stdout.
    pub path: Option<PathBuf>,
    /// The highest TLP level the partner may receive (default AMBER).
    pub max_tlp: Option<String>,
    /// The level assumed for an event without `tlp` (default AMBER).
    pub default_tlp: Option<String>,
    /// The n6 restrictions the partner may receive (default `public`,
    /// `need-to-know`: `internal` never leaves unless listed).
    pub n6_restrictions: Option<Vec<String>>,
    /// Hex SHA-256 of the bearer token the partner sends to the HTTP
    /// ingest with; once any partner has one, the ingest requires a token.
    pub token_sha256: Option<String>,
    /// Ingest requests a second the partner may make.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: f64,
    /// Ingest requests the partner may make at once, above the rate.
    #[serde(default = "default_rate_burst")]
    pub rate_burst: f64,
    /// For `http`: the bearer token sent to the partner's endpoint.
    pub push_token: Option<String>,
    /// For `https` pushes: a PEM file of the certificate authorities to
    /// trust for this partner instead of the system's (Warden runs its own).
    pub push_ca: Option<PathBuf>,
    /// For `https` pushes: this instance's client certificate (PEM, with
    /// its chain), which partners such as Warden authenticate senders by.
    pub push_client_cert: Option<PathBuf>,
    /// The private key (PEM) of `push_client_cert`.
    pub push_client_key: Option<PathBuf>,
    /// For `http`: the most messages POSTed in one request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// For `http`: the first wait before a failed push is sent again; it
    /// doubles with every failure up to `retry_max_ms`.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// For `http`: the longest wait between attempts.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// For `http`: how long one request may take before it counts as failed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// For `pull`: how long messages stay fetchable.
    #[serde(default = "default_retention_days")]
    pub pull_retention_days: u64,
}

fn default_batch_size() -> usize {
    100
}
fn default_retry_initial_ms() -> u64 {
    500
}
fn default_retry_max_ms() -> u64 {
    300_000
}
fn default_timeout_ms() -> u64 {
    30_000
}

fn default_rate_limit() -> f64 {
    DEFAULT_RATE_LIMIT
}
fn default_rate_burst() -> f64 {
    DEFAULT_RATE_BURST
}

fn default_partner_transport() -> PartnerTransport {
    PartnerTransport::Amqp
}

impl PartnerConfig {
    /// The AMQP broker of an `amqp` partner.
    pub fn broker_url(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_AMQP_URL)
    }

    /// The output form asked for (checked valid at start).
    pub fn wire_form(&self) -> Option<WireForm> {
        self.envelope
            .as_deref()
            .and_then(|name| WireForm::from_str(name, true).ok())
    }

    /// Exchange and routing key a message for this partner is published with.
    pub fn destination(&self) -> (&str, &str) {
        match (&self.queue, &self.routing_key) {
            (Some(queue), _) => ("", queue),
            (None, Some(key)) => (&self.exchange, key),
            (None, None) => (&self.exchange, ""),
        }
    }
}

/// Which partners an input feeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The input's name.
    pub input: String,
    /// The partners' names.
    pub partners: Vec<String>,
    /// Only events whose `classification.type` or `classification.taxonomy`
    /// is one of these (all events when empty).
    #[serde(default)]
    pub classification: Vec<String>,
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path, registry: &Registry) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&text, registry).map_err(|e| match e {
            Error::Config(message) => Error::Config(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str, registry: &Registry) -> Result<Self> {
        let config: Config =
            toml::from_str(text).map_err(|e| Error::Config(e.to_string().trim().to_owned()))?;
        config.check(registry)?;
        Ok(config)
    }

    /// The embedded default: HTTP ingest on `listen`, any format in, flat
    /// IntelMQ out as JSON Lines to `output` (`-` for stdout). Needs no broker.
    pub fn embedded(origin: &str, listen: &str, output: &Path) -> Self {
        let input = InputConfig {
            name: "http".to_owned(),
            format: default_auto(),
            transport: InputTransport::Http,
            url: default_amqp_url(),
            queue: None,
            prefetch: default_prefetch(),
            declare: default_declare(),
            dead_letter_queue: None,
        };
        let partner = PartnerConfig {
            name: "output".to_owned(),
            format: intelmq::NAME.to_owned(),
            meta: false,
            envelope: None,
            transport: PartnerTransport::File,
            url: None,
            exchange: String::new(),
            routing_key: None,
            queue: None,
            declare: default_declare(),
            path: Some(output.to_owned()),
            // A local output, not a partner: everything may be written.
            max_tlp: Some(Tlp::Red.name().to_owned()),
            default_tlp: None,
            n6_restrictions: Some(
                ["public", "need-to-know", "internal"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            token_sha256: None,
            rate_limit: default_rate_limit(),
            rate_burst: default_rate_burst(),
            push_token: None,
            push_ca: None,
            push_client_cert: None,
            push_client_key: None,
            batch_size: default_batch_size(),
            retry_initial_ms: default_retry_initial_ms(),
            retry_max_ms: default_retry_max_ms(),
            timeout_ms: default_timeout_ms(),
            pull_retention_days: default_retention_days(),
        };
        Config {
            origin: origin.to_owned(),
            http: HttpConfig {
                listen: listen.to_owned(),
                ..HttpConfig::default()
            },
            seen: None,
            routes: vec![RouteConfig {
                input: input.name.clone(),
                partners: vec![partner.name.clone()],
                classification: Vec::new(),
            }],
            inputs: vec![input],
            partners: vec![partner],
            store: None,
        }
    }

    /// The listen address, parsed (checked at start).
    pub fn listen_address(&self) -> Result<SocketAddr> {
        self.http
            .listen
            .parse()
            .map_err(|e| config_error("http.listen", &self.http.listen, &format!("{e}")))
    }

    /// Checks everything that can be checked without a broker.
    pub fn check(&self, registry: &Registry) -> Result<()> {
        if self.origin.trim().is_empty() {
            return Err(Error::Config("origin: must not be empty".into()));
        }
        self.listen_address()?;
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            return Err(Error::Config(
                "http: give both tls_cert and tls_key, or neither".into(),
            ));
        }
        if let Some(seen) = &self.seen {
            if seen.path.is_some() == seen.redis.is_some() {
                return Err(Error::Config(
                    "seen: give exactly one of seen.path and seen.redis".into(),
                ));
            }
        }
        let mut names = HashSet::new();
        for (i, input) in self.inputs.iter().enumerate() {
            let key = format!("inputs[{i}]");
            unique(&mut names, &key, &input.name)?;
            if input.format != "auto" {
                known_format(registry, &format!("{key}.format"), &input.format)?;
            }
            if input.transport == InputTransport::Amqp {
                required(&key, "queue", input.queue.as_deref())?;
                amqp_url(&format!("{key}.url"), &input.url)?;
                if input.prefetch == 0 {
                    return Err(Error::Config(format!("{key}.prefetch: must be at least 1")));
                }
            }
        }
        let http_inputs = self
            .inputs
            .iter()
            .filter(|input| input.transport == InputTransport::Http)
            .count();
        if http_inputs > 1 {
            return Err(Error::Config(
                "inputs: at most one input can use transport \"http\"".into(),
            ));
        }
        let mut names = HashSet::new();
        for (i, partner) in self.partners.iter().enumerate() {
            self.check_partner(registry, &format!("partners[{i}]"), partner, &mut names)?;
        }
        Tokens::from_config(self)?;
        let mut routed = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            self.check_route(&format!("routes[{i}]"), route, &mut routed)?;
        }
        Ok(())
    }

    fn check_partner(
        &self,
        registry: &Registry,
        key: &str,
        partner: &PartnerConfig,
        names: &mut HashSet<String>,
    ) -> Result<()> {
        unique(names, key, &partner.name)?;
        known_format(registry, &format!("{key}.format"), &partner.format)?;
        Policy::from_config(key, partner)?;
        if !(partner.rate_limit.is_finite() && partner.rate_limit > 0.0) {
            return Err(Error::Config(format!(
                "{key}.rate_limit: {} must be a positive number of requests a second",
                partner.rate_limit
            )));
        }
        if !(partner.rate_burst.is_finite() && partner.rate_burst >= 1.0) {
            return Err(Error::Config(format!(
                "{key}.rate_burst: {} must be at least 1",
                partner.rate_burst
            )));
        }
        if let Some(form) = &partner.envelope {
            if partner.wire_form().is_none() {
                return Err(config_error(
                    &format!("{key}.envelope"),
                    form,
                    "is not iep04 or ail",
                ));
            }
        }
        if (partner.envelope.is_some() || partner.meta) && partner.format != intelmq::NAME {
            return Err(Error::Config(format!(
                "{key}: meta and envelope apply to format \"intelmq\" only"
            )));
        }
        match partner.transport {
            PartnerTransport::Amqp => {
                amqp_url(&format!("{key}.url"), partner.broker_url())?;
                match (&partner.queue, &partner.routing_key) {
                    (Some(_), Some(_)) => Err(Error::Config(format!(
                        "{key}: give either queue or routing_key, not both"
                    ))),
                    (None, None) => Err(Error::Config(format!(
                        "{key}: missing queue or routing_key"
                    ))),
                    (Some(_), None) if !partner.exchange.is_empty() => Err(Error::Config(format!(
                        "{key}.exchange: a queue is published to through the default exchange; use routing_key with an exchange"
                    ))),
                    _ => Ok(()),
                }
            }
            PartnerTransport::File => required(key, "path", partner.path.as_ref()).map(drop),
            PartnerTransport::Http => {
                self.outbox_store(key)?;
                let url = required(key, "url", partner.url.as_deref())?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(config_error(
                        &format!("{key}.url"),
                        url,
                        "is not an http:// or https:// URL",
                    ));
                }
                if partner.batch_size == 0 {
                    return Err(Error::Config(format!(
                        "{key}.batch_size: must be at least 1"
                    )));
                }
                for (field, value) in [
                    ("retry_initial_ms", partner.retry_initial_ms),
                    ("timeout_ms", partner.timeout_ms),
                ] {
                    if value == 0 {
                        return Err(Error::Config(format!("{key}.{field}: must be at least 1")));
                    }
                }
                if partner.push_client_cert.is_some() != partner.push_client_key.is_some() {
                    return Err(Error::Config(format!(
                        "{key}: give both push_client_cert and push_client_key, or neither"
                    )));
                }
                if partner.retry_max_ms < partner.retry_initial_ms {
                    return Err(Error::Config(format!(
                        "{key}.retry_max_ms: {} is less than retry_initial_ms ({})",
                        partner.retry_max_ms, partner.retry_initial_ms
                    )));
                }
                Ok(())
            }
            PartnerTransport::Pull => {
                self.outbox_store(key)?;
                // The name is a segment of the pull URL, taken as it is.
                let url_safe = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
                if !partner.name.chars().all(url_safe) {
                    return Err(config_error(
                        &format!("{key}.name"),
                        &partner.name,
                        "is part of the pull URL: use letters, digits, '-', '.', '_' or '~'",
                    ));
                }
                required(key, "token_sha256", partner.token_sha256.as_ref())?;
                if partner.pull_retention_days == 0 {
                    return Err(Error::Config(format!(
                        "{key}.pull_retention_days: must be at least 1"
                    )));
                }
                Ok(())
            }
        }
    }

    /// Checks that `[store]` is there for the outbox partner at `key`.
    fn outbox_store(&self, key: &str) -> Result<()> {
        match self.store {
            Some(_) => Ok(()),
            None => Err(Error::Config(format!(
                "store.path: missing, and {key} needs it for the outbox (transport \"http\" or \"pull\")"
            ))),
        }
    }

    /// Checks one route; `routed` holds the (input, partner) pairs seen so
    /// far, since a partner fed twice by one input would get every event twice.
    fn check_route(
        &self,
        key: &str,
        route: &RouteConfig,
        routed: &mut HashSet<(String, String)>,
    ) -> Result<()> {
        if self.input(&route.input).is_none() {
            return Err(config_error(
                &format!("{key}.input"),
                &route.input,
                "is not the name of an input",
            ));
        }
        if route.partners.is_empty() {
            return Err(Error::Config(format!("{key}.partners: must not be empty")));
        }
        for (j, name) in route.partners.iter().enumerate() {
            if self.partner(name).is_none() {
                return Err(config_error(
                    &format!("{key}.partners[{j}]"),
                    name,
                    "is not the name of a partner",
                ));
            }
            if !routed.insert((route.input.clone(), name.clone())) {
                return Err(config_error(
                    &format!("{key}.partners[{j}]"),
                    name,
                    &format!("is routed from input {:?} twice", route.input),
                ));
            }
        }
        Ok(())
    }

    /// The input called `name`.
    pub fn input(&self, name: &str) -> Option<&InputConfig> {
        self.inputs.iter().find(|input| input.name == name)
    }

    /// The partner called `name`.
    pub fn partner(&self, name: &str) -> Option<&PartnerConfig> {
        self.partners.iter().find(|partner| partner.name == name)
    }
}

fn config_error(key: &str, value: &str, reason: &str) -> Error {
    Error::Config(format!("{key}: {value:?} {reason}"))
}

fn unique(names: &mut HashSet<String>, key: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::Config(format!("{key}.name: must not be empty")));
    }
    if !names.insert(name.to_owned()) {
        return Err(config_error(&format!("{key}.name"), name, "is used twice"));
    }
    Ok(())
}

fn required<T>(key: &str, field: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| Error::Config(format!("{key}.{field}: missing")))
}

fn known_format(registry: &Registry, key: &str, name: &str) -> Result<()> {
    registry.get(name).map(drop).map_err(|_| {
        config_error(
            key,
            name,
            &format!("is not a known format ({})", registry.names().join(", ")),
        )
    })
}

fn amqp_url(key: &str, url: &str) -> Result<()> {
    url.parse::<lapin::uri::AMQPUri>()
        .map(drop)
        .map_err(|e| config_error(key, url, &format!("is not an AMQP URL: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, &Registry::standard())
    }

    const GOOD: &str = r#"
        origin = "cert-a"
        [[inputs]]
        name = "in"
        queue = "bridge-queue"
        declare = "intelmq"
        [[partners]]
        name = "p1"
        format = "intelmq"
        queue = "out-queue"
        [[partners]]
        name = "p2"
        format = "intelmq"
        meta = true
        exchange = "x"
        routing_key = "k"
        [[routes]]
        input = "in"
        partners = ["p1", "p2"]
    "#;

    #[test]
    fn a_good_config_parses_with_defaults() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.inputs[0].prefetch, DEFAULT_PREFETCH);
        assert_eq!(
            config.inputs[0].dead_letter_name(),
            "bridge-queue.dead-letter"
        );
        assert_eq!(config.partners[0].destination(), ("", "out-queue"));
        assert_eq!(config.partners[1].destination(), ("x", "k"));
    }

    #[test]
    fn errors_name_the_key() {
        let bad = GOOD.replacen(
            "format = \"intelmq\"\n        meta",
            "format = \"misp\"\n        meta",
            1,
        );
        let error = parse(&bad).unwrap_err().to_string();
        assert!(
            error.contains(r#"partners[1].format: "misp" is not a known format"#),
            "{error}"
        );
        let bad = GOOD.replace("partners = [\"p1\", \"p2\"]", "partners = [\"p1\", \"p3\"]");
        let error = parse(&bad).unwrap_err().to_string();
        assert!(
            error.contains(r#"routes[0].partners[1]: "p3" is not the name of a partner"#),
            "{error}"
        );
        let bad = GOOD.replace("queue = \"bridge-queue\"", "");
        let error = parse(&bad).unwrap_err().to_string();
        assert!(error.contains("inputs[0].queue: missing"), "{error}");
        let bad = GOOD.replace("partners = [\"p1\", \"p2\"]", "partners = [\"p1\", \"p1\"]");
        let error = parse(&bad).unwrap_err().to_string();
        assert!(
            error.contains(r#"routes[0].partners[1]: "p1" is routed from input "in" twice"#),
            "{error}"
        );
        let bad = GOOD.replace(
            "queue = \"out-queue\"",
            "queue = \"out-queue\"\nrate_limit = 0",
        );
        let error = parse(&bad).unwrap_err().to_string();
        assert!(
            error.contains("partners[0].rate_limit: 0 must be"),
            "{error}"
        );
        let bad = GOOD.replace(
            "queue = \"out-queue\"",
            "queue = \"out-queue\"\nrate_burst = 0.5",
        );
        let error = parse(&bad).unwrap_err().to_string();
        assert!(error.contains("partners[0].rate_burst"), "{error}");
        let bad = GOOD.replace(
            "queue = \"out-queue\"",
            "queue = \"out-queue\"\ntoken_sha256 = \"secret\"",
        );
        let error = parse(&bad).unwrap_err().to_string();
        assert!(
            error.contains(r#"partners[0].token_sha256: "secret" is not a hex SHA-256"#),
            "{error}"
        );
        let bad = GOOD.replace("declare = \"intelmq\"", "declare = \"lazy\"");
        let error = parse(&bad).unwrap_err().to_string();
        assert!(error.contains("declare"), "{error}");
    }

    #[test]
    fn outbox_partners_need_a_store_a_url_and_a_token() {
        let partner = |lines: &str| {
            format!("origin = \"a\"\n[[partners]]\nname = \"w\"\nformat = \"idea\"\n{lines}\n")
        };
        let store = "[store]\npath = \"/tmp/x\"\n";
        let error = |text: &str| parse(text).unwrap_err().to_string();
        let push = "transport = \"http\"\nurl = \"https://warden.example/events\"";
        let message = error(&partner(push));
        assert!(message.contains("store.path: missing"), "{message}");
        assert!(message.contains("partners[0]"), "{message}");
        let config = parse(&format!("{}{store}", partner(push))).unwrap();
        assert_eq!(config.partners[0].batch_size, 100);
        assert_eq!(config.partners[0].retry_initial_ms, 500);
        assert_eq!(config.partners[0].retry_max_ms, 300_000);
        assert_eq!(config.partners[0].timeout_ms, 30_000);
        // No default AMQP URL for a push partner.
        let message = error(&format!("{}{store}", partner("transport = \"http\"")));
        assert!(message.contains("partners[0].url: missing"), "{message}");
        let amqp = "transport = \"http\"\nurl = \"amqp://127.0.0.1/\"";
        let message = error(&format!("{}{store}", partner(amqp)));
        assert!(
            message.contains("partners[0].url: \"amqp://127.0.0.1/\" is not an http"),
            "{message}"
        );
        let message = error("origin = \"a\"\n[http]\ntls_cert = \"/etc/bridge/cert.pem\"\n");
        assert!(
            message.contains("http: give both tls_cert and tls_key"),
            "{message}"
        );
        let half = format!("{push}\npush_client_cert = \"/etc/bridge/cert.pem\"");
        let message = error(&format!("{}{store}", partner(&half)));
        assert!(
            message.contains("partners[0]: give both push_client_cert and push_client_key"),
            "{message}"
        );
        let slow = format!("{push}\nretry_initial_ms = 10\nretry_max_ms = 5");
        let message = error(&format!("{}{store}", partner(&slow)));
        assert!(message.contains("partners[0].retry_max_ms"), "{message}");
        let message = error(&format!("{}{store}", partner("transport = \"pull\"")));
        assert!(
            message.contains("partners[0].token_sha256: missing"),
            "{message}"
        );
        let pull = format!(
            "transport = \"pull\"\ntoken_sha256 = \"{}\"",
            "a".repeat(64)
        );
        let config = parse(&format!("{}{store}", partner(&pull))).unwrap();
        assert_eq!(config.partners[0].pull_retention_days, 7);
        let spaced = partner(&pull).replace("name = \"w\"", "name = \"cert pl\"");
        let message = error(&format!("{spaced}{store}"));
        assert!(
            message.contains("partners[0].name: \"cert pl\" is part of the pull URL"),
            "{message}"
        );
        let message = error(&format!(
            "{}{store}",
            partner(&format!("{pull}\nbatch = 3"))
        ));
        assert!(message.contains("unknown field `batch`"), "{message}");
    }

    #[test]
    fn the_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/amqp.toml");
        let config = Config::load(&path, &Registry::standard()).unwrap();
        assert_eq!(config.routes[0].classification.len(), 3);
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let config = Config::embedded("here", DEFAULT_LISTEN, Path::new("-"));
        config.check(&Registry::standard()).unwrap();
    }
}
