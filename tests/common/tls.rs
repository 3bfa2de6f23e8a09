//! TLS for the tests that check the bridge's certificate handling: a
//! throw-away certificate authority, a server certificate for `localhost`
//! and a client certificate it issued, all written as PEM files, and a
//! TLS front that forwards each connection to a plain TCP service (the
//! local broker, or a test's HTTP partner), as a partner's TLS endpoint
//! would be.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The test's certificates; the PEM files are in the directory given.
pub struct Pki {
    /// The authority's certificate, to trust.
    pub ca: PathBuf,
    /// The client certificate the authority issued, and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The server certificate for `localhost`, and its key.
    pub server_cert: PathBuf,
    pub server_key_file: PathBuf,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key: Vec<u8>,
}

impl Pki {
    /// Makes the authority and its two certificates, and writes them.
    pub fn new(dir: &Path) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "intelmq-bridge test CA");
        let authority = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let issue = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.signed_by(&key, &authority).unwrap();
            (cert, key)
        };
        let (server, server_key) = issue("localhost");
        let (client, client_key) = issue("bridge.test");
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            ca: write("ca.pem", authority.pem()),
            client_cert: write("client.pem", client.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            server_cert: write("server.pem", server.pem()),
            server_key_file: write("server.key", server_key.serialize_pem()),
            ca_der: authority.der().clone(),
            server_der: server.der().clone(),
            server_key: server_key.serialize_der(),
        }
    }

    /// Starts a TLS front on a free port of 127.0.0.1 (to be reached as
    /// `localhost`) that forwards to `target`; with `client_auth`, only
    /// clients with a certificate of this authority get through. The port.
    pub async fn front(&self, target: SocketAddr, client_auth: bool) -> u16 {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let server = builder
            .with_single_cert(vec![self.server_der.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut service) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut service).await;
                });
            }
        });
        port
    }
}
