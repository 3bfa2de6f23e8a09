//! `intelmq-bridge serve`: builds the [`Gateway`] from a configuration,
//! starts one task per AMQP input, one push worker per `http` partner and
//! the HTTP listener, and stops them all on SIGTERM or SIGINT after the
//! deliveries in flight are finished.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, InputTransport, PartnerTransport};
use crate::error::{Error, Result};
use crate::gateway::{registry, Gateway};
use crate::telemetry::Telemetry;
use crate::transport::amqp::AmqpInput;
use crate::transport::http::{self, Ingest};
use crate::transport::pull;
use crate::transport::push::Pusher;
use crate::transport::{tls, Partners};

/// Runs the service described by the file at `config`, or the embedded
/// default (HTTP ingest on `listen`, flat IntelMQ to `output`) without one.
pub fn main(config: Option<&Path>, origin: &str, listen: &str, output: &Path) -> Result<()> {
    let config = match config {
        Some(path) => Config::load(path, registry())?,
        None => {
            let config = Config::embedded(origin, listen, output);
            config.check(registry())?;
            config
        }
    };
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            let _ = stop.send(true);
        });
        serve(config, shutdown).await
    })
}

/// Structured logs on stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on SIGTERM or SIGINT.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs a checked configuration until `shutdown` turns true.
pub async fn serve(config: Config, shutdown: watch::Receiver<bool>) -> Result<()> {
    let telemetry = Arc::new(Telemetry::new());
    let gateway = Arc::new(Gateway::new(&config, telemetry.clone())?);
    let partners = Arc::new(Partners::open(&config, telemetry)?);
    let tls = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let address = config.listen_address()?;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| Error::Config(format!("http.listen: {address}: {e}")))?;
    let scheme = if tls.is_some() { "HTTPS" } else { "HTTP" };
    tracing::info!(address = %listener.local_addr()?, origin = %config.origin, "serving {scheme} (/metrics, /healthz)");
    let mut tasks = tokio::task::JoinSet::new();
    let mut ingest = None;
    for (index, input) in config.inputs.iter().enumerate() {
        match input.transport {
            InputTransport::Http => {
                tracing::info!(input = %input.name, "ingest at POST /v1/events");
                ingest = Some(Ingest::new(&config, index)?);
            }
            InputTransport::Amqp => {
                // Unhealthy until the input has connected.
                gateway.telemetry().set_connected(&input.name, false);
                let task = AmqpInput::new(gateway.clone(), index, input.clone(), partners.clone());
                tasks.spawn(task.run(shutdown.clone()));
            }
        }
    }
    for (index, partner) in config.partners.iter().enumerate() {
        if partner.transport == PartnerTransport::Http {
            tracing::info!(partner = %partner.name, "pushing to the partner's HTTP endpoint");
            let pusher = Pusher::new(gateway.clone(), &partners, index)?;
            tasks.spawn(pusher.run(shutdown.clone()));
        }
    }
    tasks.spawn(pull::prune(partners.clone(), shutdown.clone()));
    tasks.spawn(http::serve(
        listener,
        tls,
        gateway.clone(),
        partners,
        ingest,
        shutdown,
    ));
    while let Some(done) = tasks.join_next().await {
        if let Err(error) = done {
            tracing::error!(%error, "a service task failed");
        }
    }
    gateway.flush()?;
    tracing::info!("stopped");
    Ok(())
}
