//! Terminating TLS on `bind … ssl`: the options, the server configuration built from them, and the
//! handshake of one accepted connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;

use super::certs::Store;
use super::{TlsError, Verify, Version, alpn_list, roots};

/// A path as written, under `crt-base`/`ca-base` when it is relative and a base is set.
/// `@system-ca` is a name, not a path: no base applies to it.
pub fn based(file: &str, base: Option<&Path>) -> PathBuf {
    let p = Path::new(file);
    match base {
        Some(b) if p.is_relative() && file != super::SYSTEM_CA => b.join(p),
        _ => p.to_path_buf(),
    }
}

/// The TLS options of a bind line, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindTlsOpts {
    /// `crt FILE|DIR`, in order (the first certificate is the default one).
    pub crt: Vec<PathBuf>,
    pub crt_list: Vec<PathBuf>,
    pub alpn: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub verify: Option<Verify>,
    pub min_ver: Option<Version>,
    pub strict_sni: bool,
}

impl BindTlsOpts {
    /// Reads one bind option if it is a TLS one: `Ok(true)` when it took it (and its value).
    pub fn take(
        &mut self,
        opt: &str,
        value: &mut dyn FnMut(&str) -> Result<String, String>,
        crt_base: Option<&Path>,
        ca_base: Option<&Path>,
    ) -> Result<bool, String> {
        match opt {
            "crt" => self.crt.push(based(&value("FILE|DIR")?, crt_base)),
            "crt-list" => self.crt_list.push(based(&value("FILE")?, crt_base)),
            "alpn" => {
                let v = value("LIST")?;
                alpn_list(&v)?;
                self.alpn = Some(v);
            }
            "ca-file" => self.ca_file = Some(based(&value("FILE")?, ca_base)),
            "verify" => self.verify = Some(Verify::parse(&value("none|optional|required")?, true)?),
            "ssl-min-ver" => self.min_ver = Some(Version::parse(&value("TLSv1.2")?)?),
            "strict-sni" => self.strict_sni = true,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A bind line's TLS: the configuration every handshake on it uses.
#[derive(Debug, Clone)]
pub struct BindTls {
    pub opts: BindTlsOpts,
    pub config: Arc<ServerConfig>,
    /// `proxy-in-tls` (gatehouse): with `accept-proxy`, the PROXY header is read inside the TLS
    /// session, after the handshake, where TLS authenticates it (HAProxy reads it before, in clear).
    pub proxy_in_tls: bool,
    /// The certificates (also the configuration's resolver): `strict-sni` asks it before the
    /// handshake goes on.
    store: Arc<Store>,
}

impl BindTls {
    /// Loads the certificates and CA file and builds the configuration.
    pub fn build(opts: &BindTlsOpts, crt_base: Option<&Path>) -> Result<BindTls, TlsError> {
        let mut store = Store::default();
        store.strict = opts.strict_sni;
        for c in &opts.crt {
            if c.is_dir() {
                store.add_dir(c)?;
            } else {
                store.add(super::certs::load_bundle(c)?, &[]);
            }
        }
        for l in &opts.crt_list {
            store.add_list(l, crt_base)?;
        }
        if store.is_empty() {
            return Err(TlsError::Config(
                "'ssl' needs a certificate; add 'crt FILE' (a PEM bundle) or 'crt DIR' or 'crt-list FILE'".into(),
            ));
        }
        let builder = ServerConfig::builder_with_provider(super::provider())
            .with_protocol_versions(Version::versions(opts.min_ver))
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let verify = opts.verify.unwrap_or(Verify::None);
        let builder = match (verify, &opts.ca_file) {
            (Verify::None, _) => builder.with_no_client_auth(),
            (_, None) => {
                return Err(TlsError::Config(
                    "'verify optional|required' needs the CA that signs client certificates; add 'ca-file FILE'".into(),
                ));
            }
            (v, Some(ca)) => {
                let b = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(ca)?),
                    super::provider(),
                );
                let b = if v == Verify::Optional {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                let verifier = b.build().map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let store = Arc::new(store);
        let mut config = builder.with_cert_resolver(store.clone());
        if let Some(a) = &opts.alpn {
            config.alpn_protocols = alpn_list(a).map_err(TlsError::Config)?;
        }
        Ok(BindTls {
            opts: opts.clone(),
            config: Arc::new(config),
            proxy_in_tls: false,
            store,
        })
    }
}

/// What the handshake told about the client, for the `ssl_fc_*` / `ssl_c_*` fetches and the log.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// The SNI the client sent, lower-cased.
    pub sni: Option<String>,
    /// The protocol ALPN settled on.
    pub alpn: Option<String>,
    /// Whether the client presented a certificate (it was verified if so).
    pub client_cert: bool,
    /// The client certificate's subject, `/C=…/CN=…`.
    pub client_dn: Option<String>,
    /// `TLSv1.3` / `TLSv1.2`.
    pub version: Option<&'static str>,
    pub cipher: Option<String>,
    /// The PROXY protocol authority TLV, when the header came inside this TLS session.
    pub authority: Option<String>,
}

/// How a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum Handshake {
    #[error("TLS handshake timed out")]
    Timeout,
    /// The client's certificate was missing, invalid or not signed by the CA, or `strict-sni`
    /// found no certificate for the name (our refusal).
    #[error("TLS handshake refused: {0}")]
    Refused(String),
    /// The client sent something that is not TLS, or left.
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
}

/// The handshake of an accepted connection, within `limit`.
///
/// The ClientHello is read first, so that `strict-sni` refuses an unknown name itself (an
/// `unrecognized_name` alert, [`Handshake::Refused`]) rather than as a handshake that rustls
/// could not go on with.
pub async fn accept(
    tcp: TcpStream,
    tls: &BindTls,
    limit: Duration,
) -> Result<(super::Sock, Info), Handshake> {
    let deadline = tokio::time::Instant::now() + limit;
    let hello = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let start = match tokio::time::timeout_at(deadline, hello).await {
        Err(_) => return Err(Handshake::Timeout),
        Ok(Err(e)) => return Err(Handshake::Failed(e)),
        Ok(Ok(start)) => start,
    };
    if tls.store.strict {
        let name = start.client_hello().server_name().map(str::to_string);
        if tls.store.pick(name.as_deref()).is_none() {
            use crate::classify::{ALERT_UNRECOGNIZED_NAME, tls_alert};
            let _ = start.io.try_write(&tls_alert(ALERT_UNRECOGNIZED_NAME));
            return Err(Handshake::Refused(match name {
                Some(n) => format!("no certificate for '{n}' (strict-sni)"),
                None => "no SNI (strict-sni)".into(),
            }));
        }
    }
    let stream =
        match tokio::time::timeout_at(deadline, start.into_stream(tls.config.clone())).await {
            Err(_) => return Err(Handshake::Timeout),
            Ok(Err(e)) => {
                let refused = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| {
                        matches!(
                            r,
                            rustls::Error::InvalidCertificate(_)
                                | rustls::Error::NoCertificatesPresented
                        )
                    });
                return Err(if refused {
                    Handshake::Refused(e.to_string())
                } else {
                    Handshake::Failed(e)
                });
            }
            Ok(Ok(s)) => s,
        };
    let (_, conn) = stream.get_ref();
    let peer = conn.peer_certificates().and_then(|c| c.first());
    let info = Info {
        sni: conn.server_name().map(str::to_ascii_lowercase),
        alpn: conn
            .alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned()),
        client_cert: peer.is_some(),
        client_dn: peer.and_then(super::subject_dn),
        version: conn.protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
            _ => "TLSv1.2",
        }),
        cipher: conn
            .negotiated_cipher_suite()
            .and_then(|c| c.suite().as_str())
            .map(str::to_string),
        authority: None,
    };
    let (tcp, conn) = stream.into_inner();
    Ok((super::Sock::tls(tcp, conn), info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_a_base() {
        let base = Some(Path::new("/etc/gatehouse/certs"));
        assert_eq!(
            based("site.pem", base),
            Path::new("/etc/gatehouse/certs/site.pem")
        );
        assert_eq!(based("/srv/site.pem", base), Path::new("/srv/site.pem"));
        assert_eq!(based("site.pem", None), Path::new("site.pem"));
        // A name, not a file under ca-base.
        assert_eq!(based("@system-ca", base), Path::new("@system-ca"));
    }
}
