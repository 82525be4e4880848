//! Originating TLS on `server … ssl`: the options, the client configuration built from them, and
//! the handshake with a connected server.
//!
//! As in HAProxy, a server's certificate is verified by default (`verify required`), against the
//! `ca-file`; the name checked is the SNI sent, else `verifyhost` (HAProxy's `ssl_sock_srv_verifycbk`
//! order: `verifyhost` is the name for connections without SNI); with neither, only the chain is
//! checked. `verify none` accepts any certificate (the handshake signatures are still checked).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use super::serve::based;
use super::{TlsError, Verify, alpn_list, roots};

/// The TLS options of a server line, as written (`default-server` merges into them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerTlsOpts {
    pub ssl: Option<bool>,
    pub verify: Option<Verify>,
    pub ca_file: Option<PathBuf>,
    /// `sni EXPR`, as written.
    pub sni: Option<String>,
    pub crt: Option<PathBuf>,
    pub alpn: Option<String>,
    pub verifyhost: Option<String>,
    /// `check-ssl` / `no-check-ssl`: health checks over TLS whatever `ssl` says (unset: over TLS
    /// when the server has `ssl` and no check `port` or `addr`, as in HAProxy).
    pub check_ssl: Option<bool>,
    /// `check-sni NAME`: the name sent in health checks' handshakes (none otherwise).
    pub check_sni: Option<String>,
}

impl ServerTlsOpts {
    /// Reads one server option if it is a TLS one (`value` takes the next word); `Ok(true)` when
    /// it took it.
    pub fn take(
        &mut self,
        opt: &str,
        value: &mut dyn FnMut() -> Result<String, String>,
        crt_base: Option<&Path>,
        ca_base: Option<&Path>,
    ) -> Result<bool, String> {
        match opt {
            "ssl" => self.ssl = Some(true),
            "no-ssl" => self.ssl = Some(false),
            "verify" => self.verify = Some(Verify::parse(&value()?, false)?),
            "ca-file" => self.ca_file = Some(based(&value()?, ca_base)),
            "sni" => self.sni = Some(value()?),
            "crt" => self.crt = Some(based(&value()?, crt_base)),
            "alpn" => {
                let v = value()?;
                alpn_list(&v)?;
                self.alpn = Some(v);
            }
            "check-ssl" => self.check_ssl = Some(true),
            "no-check-ssl" => self.check_ssl = Some(false),
            "check-sni" => {
                let n = value()?.to_ascii_lowercase();
                if !matches!(ServerName::try_from(n.as_str()), Ok(ServerName::DnsName(_))) {
                    return Err(format!(
                        "'check-sni {n}' is not a host name; write the DNS name to send in health checks' handshakes"
                    ));
                }
                self.check_sni = Some(n);
            }
            "verifyhost" => {
                let h = value()?.to_ascii_lowercase();
                if !matches!(ServerName::try_from(h.as_str()), Ok(ServerName::DnsName(_))) {
                    return Err(format!(
                        "'verifyhost {h}' is not a host name; write the DNS name the server's certificate must have"
                    ));
                }
                self.verifyhost = Some(h);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A server's TLS: two configurations (with and without SNI) sharing the verifier.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub opts: ServerTlsOpts,
    with_sni: Arc<ClientConfig>,
    no_sni: Arc<ClientConfig>,
}

impl ServerTls {
    pub fn build(opts: &ServerTlsOpts) -> Result<ServerTls, TlsError> {
        let verify = opts.verify.unwrap_or(Verify::Required);
        let verifier: Arc<dyn ServerCertVerifier> = match (verify, &opts.ca_file) {
            (Verify::None, _) => Arc::new(Lenient(super::provider())),
            (_, None) => {
                return Err(TlsError::Config(
                    "'ssl' verifies the server's certificate by default but no CA is given; add 'ca-file FILE' (or 'ca-file @system-ca'), or write 'verify none' if you trust this server without checking".into(),
                ));
            }
            (_, Some(ca)) => {
                let inner = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots(ca)?),
                    super::provider(),
                )
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
                Arc::new(Checked {
                    inner,
                    verifyhost: opts.verifyhost.clone(),
                })
            }
        };
        let builder = ClientConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &opts.crt {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let key = super::certs::load_bundle(path)?;
                builder
                    .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)))
            }
        };
        if let Some(a) = &opts.alpn {
            config.alpn_protocols = alpn_list(a).map_err(TlsError::Config)?;
        }
        let mut no_sni = config.clone();
        no_sni.enable_sni = false;
        Ok(ServerTls {
            opts: opts.clone(),
            with_sni: Arc::new(config),
            no_sni: Arc::new(no_sni),
        })
    }
}

/// The handshake with a connected server, sending `sni` if there is one, within `limit`.
pub async fn connect(
    tcp: TcpStream,
    tls: &ServerTls,
    sni: Option<&str>,
    server_ip: IpAddr,
    limit: Duration,
) -> std::io::Result<super::Sock> {
    handshake(tcp, tls, sni, server_ip, limit).await.map(|s| {
        let (tcp, conn) = s.into_inner();
        super::Sock::tls(tcp, conn)
    })
}

/// The handshake alone, as a tokio-rustls stream (health checks read and write through it).
pub async fn handshake(
    tcp: TcpStream,
    tls: &ServerTls,
    sni: Option<&str>,
    server_ip: IpAddr,
    limit: Duration,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let named = sni.and_then(|s| ServerName::try_from(s.to_string()).ok());
    let (config, name) = match named {
        Some(n) => (&tls.with_sni, n),
        None => (&tls.no_sni, ServerName::IpAddress(server_ip.into())),
    };
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    match tokio::time::timeout(limit, connector.connect(name, tcp)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS handshake with the server timed out",
        )),
    }
}

/// `verify required`: the chain against the CA file, then the name: the SNI sent, else
/// `verifyhost`; a connection with neither (named by its address) checks the chain only.
#[derive(Debug)]
struct Checked {
    inner: Arc<WebPkiServerVerifier>,
    verifyhost: Option<String>,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Without SNI, `connect` names the connection by the server's address.
        let no_sni = matches!(server_name, ServerName::IpAddress(_));
        let host;
        let name = match &self.verifyhost {
            Some(h) if no_sni => {
                host = ServerName::try_from(h.as_str())
                    .map_err(|_| rustls::Error::General(format!("bad verifyhost '{h}'")))?;
                &host
            }
            _ => server_name,
        };
        let by_address = no_sni && self.verifyhost.is_none();
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
        {
            // The chain was good (webpki checks it before the name); no name was asked for.
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if by_address => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `verify none`: any certificate; the handshake's signatures are still checked.
#[derive(Debug)]
struct Lenient(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
