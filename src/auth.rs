//! Who is sending: partners are identified on the HTTP ingest by a bearer
//! token. The configuration holds only each token's SHA-256 (so a leaked
//! configuration leaks no token), and a presented token is compared with
//! every digest in constant time, so timing tells nothing about them.

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer <token>` header, or a malformed one (401).
    Missing,
    /// A token no partner has (403).
    Unknown,
}

/// The partners' token digests.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// (partner index, SHA-256 of its token).
    digests: Vec<(usize, [u8; 32])>,
}

impl Tokens {
    /// The digests of every partner that has `token_sha256` (checked by
    /// [`parse_digest`] when the configuration was loaded).
    pub fn from_config(config: &Config) -> Result<Self> {
        let digests = config
            .partners
            .iter()
            .enumerate()
            .filter_map(|(i, partner)| {
                let hex = partner.token_sha256.as_deref()?;
                Some(parse_digest(&format!("partners[{i}].token_sha256"), hex).map(|d| (i, d)))
            })
            .collect::<Result<_>>()?;
        Ok(Tokens { digests })
    }

    /// Whether requests must carry a token: as soon as one partner has one.
    pub fn required(&self) -> bool {
        !self.digests.is_empty()
    }

    /// The partner an `Authorization` header value identifies; `None` when
    /// no token is required (the open embedded default).
    pub fn identify(
        &self,
        authorization: Option<&[u8]>,
    ) -> std::result::Result<Option<usize>, Denied> {
        if !self.required() {
            return Ok(None);
        }
        let token = authorization
            .and_then(|value| value.strip_prefix(b"Bearer "))
            .map(<[u8]>::trim_ascii)
            .filter(|token| !token.is_empty())
            .ok_or(Denied::Missing)?;
        let presented: [u8; 32] = Sha256::digest(token).into();
        // Every digest is compared, whichever matches, so the time taken
        // does not depend on which (if any) does.
        let mut found = None;
        for (partner, digest) in &self.digests {
            if constant_time_eq(&presented, digest) {
                found = Some(*partner);
            }
        }
        found.map(Some).ok_or(Denied::Unknown)
    }
}

/// Parses a hex SHA-256 digest from the configuration key `key`.
pub fn parse_digest(key: &str, hex: &str) -> Result<[u8; 32]> {
    let error = || {
        Error::Config(format!(
            "{key}: {hex:?} is not a hex SHA-256 digest (64 hex digits)"
        ))
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(error());
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| error())?;
    }
    Ok(digest)
}

/// Equality of two digests that takes the same time wherever they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(token: &str) -> String {
        Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn tokens() -> Tokens {
        let digest = |token: &str| parse_digest("k", &hex(token)).unwrap();
        Tokens {
            digests: vec![(0, digest("alpha")), (2, digest("gamma"))],
        }
    }

    #[test]
    fn a_known_token_names_its_partner() {
        let tokens = tokens();
        assert_eq!(tokens.identify(Some(b"Bearer gamma")), Ok(Some(2)));
        assert_eq!(tokens.identify(Some(b"Bearer  alpha ")), Ok(Some(0)));
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_denied() {
        let tokens = tokens();
        assert_eq!(tokens.identify(None), Err(Denied::Missing));
        assert_eq!(
            tokens.identify(Some(b"Basic YWxwaGE=")),
            Err(Denied::Missing)
        );
        assert_eq!(tokens.identify(Some(b"Bearer ")), Err(Denied::Missing));
        assert_eq!(tokens.identify(Some(b"Bearer beta")), Err(Denied::Unknown));
        assert_eq!(
            tokens.identify(Some(b"Bearer \xff\xfe")),
            Err(Denied::Unknown)
        );
    }

    #[test]
    fn without_tokens_everyone_is_let_in() {
        assert_eq!(Tokens::default().identify(None), Ok(None));
    }

    #[test]
    fn digests_are_checked() {
        assert!(parse_digest("k", &hex("x")).is_ok());
        let error = parse_digest("partners[0].token_sha256", "abc")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(r#"partners[0].token_sha256: "abc" is not a hex SHA-256"#),
            "{error}"
        );
        let not_hex = "g".repeat(64);
        assert!(parse_digest("k", &not_hex).is_err());
        let multibyte = "é".repeat(32);
        assert!(parse_digest("k", &multibyte).is_err());
    }
}
