//! STUB (placeholder until the real ClientHello parser lands; replace this whole file).
pub const MAX_HELLO: usize = 64 * 1024;
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    pub record_version: u16,
    pub legacy_version: u16,
    pub supported_versions: Vec<u16>,
    pub ech: bool,
    pub sslv2: bool,
    pub len: usize,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("incomplete")]
    Incomplete,
    #[error("not TLS")]
    NotTls,
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    #[error("ClientHello larger than 64 KiB")]
    TooLarge,
}
pub fn parse(_buf: &[u8]) -> Result<ClientHello, TlsError> {
    Err(TlsError::NotTls)
}
