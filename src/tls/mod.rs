//! TLS with rustls (the aws-lc-rs provider; no OpenSSL): terminating on `bind … ssl`
//! ([`BindTls`]), originating on `server … ssl` ([`ServerTls`]).
//!
//! Everything that reads files runs when the configuration is loaded (and again on every reload):
//! a missing file, a key that does not match its certificate or an unreadable CA file is a config
//! error at the line that named it, and a reload picks up renewed certificates without a restart.
//! The sessions only get the built `rustls` configurations.

mod certs;
mod dial;
mod serve;
mod sock;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub use certs::subject_dn;
pub use dial::{ServerTls, ServerTlsOpts, connect, handshake};
pub use serve::{BindTls, BindTlsOpts, Handshake, Info, accept};
pub use sock::Sock;

/// The crypto provider every configuration is built with (explicit, so that no other crate's
/// choice of default can change it).
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// `verify none|optional|required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    None,
    /// Only on a bind: ask for a client certificate, accept a connection without one.
    Optional,
    Required,
}

impl Verify {
    pub fn parse(s: &str, optional_allowed: bool) -> Result<Verify, String> {
        match s {
            "none" => Ok(Verify::None),
            "optional" if optional_allowed => Ok(Verify::Optional),
            "required" => Ok(Verify::Required),
            _ if optional_allowed => Err(format!(
                "'verify {s}': write verify none, verify optional or verify required"
            )),
            _ => Err(format!(
                "'verify {s}': write verify none or verify required"
            )),
        }
    }
}

/// `ssl-min-ver`: rustls speaks TLS 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

impl Version {
    pub fn parse(s: &str) -> Result<Version, String> {
        match s {
            "TLSv1.2" => Ok(Version::Tls12),
            "TLSv1.3" => Ok(Version::Tls13),
            "SSLv3" | "TLSv1.0" | "TLSv1.1" => Err(format!(
                "'{s}' is not offered: gatehouse speaks TLS 1.2 and 1.3 only (rustls); write ssl-min-ver TLSv1.2"
            )),
            _ => Err(format!(
                "unknown TLS version '{s}'; write ssl-min-ver TLSv1.2 or ssl-min-ver TLSv1.3"
            )),
        }
    }

    fn versions(min: Option<Version>) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match min {
            Some(Version::Tls13) => TLS13_ONLY,
            _ => rustls::ALL_VERSIONS,
        }
    }
}

/// Why a TLS configuration could not be built; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read '{path}': {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error(
        "'{path}' holds no certificate; a bundle is PEM: the certificate, its chain, and the private key (or the key beside it as '{path}.key')"
    )]
    NoCert { path: PathBuf },
    #[error(
        "'{path}' holds no private key, and there is no '{path}.key'; put the key in the bundle or beside it"
    )]
    NoKey { path: PathBuf },
    #[error("the private key for '{path}' does not match its certificate")]
    Mismatch { path: PathBuf },
    #[error("'{path}': {err}")]
    Rustls { path: PathBuf, err: rustls::Error },
    #[error("'{path}' holds no certificate bundle")]
    EmptyDir { path: PathBuf },
    #[error("{path}:{line}: {msg}")]
    CrtList {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("'{path}' holds no CA certificate")]
    NoCa { path: PathBuf },
    #[error("{0}")]
    Config(String),
}

/// Reads a file, the error naming it.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::Read {
        path: path.to_path_buf(),
        err,
    })
}

/// `ca-file @system-ca`: the system's CA bundle.
const SYSTEM_CA: &str = "@system-ca";

/// The CA certificates of `ca-file` (`@system-ca`: the system's bundle).
fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let path = if path == Path::new(SYSTEM_CA) {
        Path::new("/etc/ssl/certs/ca-certificates.crt")
    } else {
        path
    };
    let pem = read(path)?;
    let mut store = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&pem) {
        let c = c.map_err(|e| TlsError::Config(format!("'{}': {e}", path.display())))?;
        store.add(c).map_err(|err| TlsError::Rustls {
            path: path.to_path_buf(),
            err,
        })?;
    }
    if store.is_empty() {
        return Err(TlsError::NoCa {
            path: path.to_path_buf(),
        });
    }
    Ok(store)
}

/// `alpn h2,http/1.1` as rustls wants it.
pub fn alpn_list(s: &str) -> Result<Vec<Vec<u8>>, String> {
    let list: Vec<Vec<u8>> = s
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.as_bytes().to_vec())
        .collect();
    if list.is_empty() || list.iter().any(|p| p.len() > 255) {
        return Err(format!(
            "'alpn {s}': give a comma-separated list of protocols, e.g. alpn h2,http/1.1"
        ));
    }
    Ok(list)
}
