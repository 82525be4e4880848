//! STUB (placeholder until the real HTTP head parser lands; replace this whole file).
pub const DEFAULT_MAX_HEAD: usize = 16 * 1024;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub path: String,
    pub host: Option<String>,
    pub headers: Vec<(String, String)>,
    pub head_len: usize,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("incomplete")]
    Incomplete,
    #[error("not HTTP")]
    NotHttp,
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("two different Host headers")]
    ConflictingHost,
}
pub fn parse(_buf: &[u8], _max_head: usize) -> Result<Request, HttpError> {
    Err(HttpError::NotHttp)
}
impl Request {
    pub fn header<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
