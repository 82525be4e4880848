//! Certificates for `bind … ssl crt FILE|DIR [crt-list FILE]`: loading the PEM bundles and choosing
//! one by the client's SNI, as HAProxy does: an exact name first, then a wildcard one level up, else
//! the first certificate loaded (unless `strict-sni`, which then ends the handshake).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{TlsError, read};

/// A certificate chain and its key, from one PEM bundle (the key in it, or in `FILE.key`).
pub fn load_bundle(path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let pem = read(path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Config(format!("'{}': {e}", path.display())))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: path.to_path_buf(),
        });
    }
    let key = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => k,
        Err(_) => {
            let mut side = path.as_os_str().to_owned();
            side.push(".key");
            let side = PathBuf::from(side);
            match std::fs::read(&side) {
                Ok(k) => PrivateKeyDer::from_pem_slice(&k).map_err(|_| TlsError::NoKey {
                    path: path.to_path_buf(),
                })?,
                Err(_) => {
                    return Err(TlsError::NoKey {
                        path: path.to_path_buf(),
                    });
                }
            }
        }
    };
    match CertifiedKey::from_der(chain, key, &super::provider()) {
        Ok(k) => Ok(Arc::new(k)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            path: path.to_path_buf(),
        }),
        Err(err) => Err(TlsError::Rustls {
            path: path.to_path_buf(),
            err,
        }),
    }
}

/// The DNS names a certificate is for: its subjectAltName DNS entries, else its subject CN.
pub fn names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, c)) = x509_parser::parse_x509_certificate(cert) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                out.push(d.to_ascii_lowercase());
            }
        }
    }
    if out.is_empty() {
        out.extend(
            c.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    out
}

/// A certificate's subject as HAProxy's `ssl_c_s_dn` shows it: `/C=FR/O=Example/CN=client`.
pub fn subject_dn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut out = String::new();
    for rdn in c.subject().iter() {
        for atv in rdn.iter() {
            let name = x509_parser::objects::oid2abbrev(atv.attr_type(), registry)
                .map(str::to_string)
                .unwrap_or_else(|_| atv.attr_type().to_id_string());
            let value = atv.as_str().unwrap_or("?");
            out.push('/');
            out.push_str(&name);
            out.push('=');
            out.push_str(value);
        }
    }
    Some(out)
}

/// The certificates of one bind line, by name.
#[derive(Debug, Default)]
pub struct Store {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` certificates, under `example.com`.
    wild: HashMap<String, Arc<CertifiedKey>>,
    /// The first certificate loaded: the answer to a hello without a known name.
    default: Option<Arc<CertifiedKey>>,
    /// `strict-sni`: no default; an unknown or missing name ends the handshake.
    pub strict: bool,
}

impl Store {
    /// Adds a certificate under `filters` (crt-list) or, without any, under its own names. An
    /// earlier certificate keeps a name it already has.
    pub fn add(&mut self, key: Arc<CertifiedKey>, filters: &[String]) {
        let names = if filters.is_empty() {
            key.cert.first().map(names).unwrap_or_default()
        } else {
            filters.iter().map(|f| f.to_ascii_lowercase()).collect()
        };
        for n in names {
            match n.strip_prefix("*.") {
                Some(parent) => self.wild.entry(parent.to_string()),
                None => self.exact.entry(n),
            }
            .or_insert_with(|| key.clone());
        }
        self.default.get_or_insert(key);
    }

    pub fn is_empty(&self) -> bool {
        self.default.is_none()
    }

    /// The certificate for `name`.
    pub fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = name.and_then(|n| {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            self.exact.get(&n).cloned().or_else(|| {
                n.split_once('.')
                    .and_then(|(_, parent)| self.wild.get(parent).cloned())
            })
        });
        match found {
            Some(k) => Some(k),
            None if self.strict => None,
            None => self.default.clone(),
        }
    }

    /// `crt DIR`: every file in it, in name order, but the keys and OCSP/issuer/SCT side files and
    /// hidden files (an editor's swap file, `.keep`), as HAProxy does.
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), TlsError> {
        let rd = std::fs::read_dir(dir).map_err(|err| TlsError::Read {
            path: dir.to_path_buf(),
            err,
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
            })
            .filter(|p| {
                !matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("key" | "ocsp" | "issuer" | "sctl")
                )
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(TlsError::EmptyDir {
                path: dir.to_path_buf(),
            });
        }
        for f in files {
            self.add(load_bundle(&f)?, &[]);
        }
        Ok(())
    }

    /// `crt-list FILE`: one `BUNDLE [SNI-FILTER…]` per line (paths relative to `base`).
    pub fn add_list(&mut self, list: &Path, base: Option<&Path>) -> Result<(), TlsError> {
        let text = read(list)?;
        let text = String::from_utf8_lossy(&text);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |msg: String| TlsError::CrtList {
                path: list.to_path_buf(),
                line: i + 1,
                msg,
            };
            if line.contains('[') {
                return Err(err(
                    "per-certificate options ('[…]') are not supported; put alpn, verify and ca-file on the bind line".into(),
                ));
            }
            let mut words = line.split_whitespace();
            let file = words.next().unwrap_or_default();
            let filters: Vec<String> = words.map(str::to_string).collect();
            if filters.iter().any(|f| f.starts_with('!')) {
                return Err(err(
                    "negative SNI filters ('!name') are not supported; list the names the certificate serves".into(),
                ));
            }
            let path = super::serve::based(file, base);
            let key = load_bundle(&path).map_err(|e| err(e.to_string()))?;
            self.add(key, &filters);
        }
        Ok(())
    }
}

impl ResolvesServerCert for Store {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}
