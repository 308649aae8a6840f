//! Splitting a compact JWS (RFC 7515 §7.1) that someone else signed — an upstream provider's ID
//! token, a desktop app's client assertion — into what its verifier checks. Nothing here is
//! trusted yet: the caller verifies the signature over [`Compact::signing_input`] before it
//! believes the claims. (The operator's own tokens are verified by [`super::keys`], which checks
//! the signature before it decodes the claims.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The parts of a compact JWS whose header and claims are JSON objects.
pub struct Compact<'a> {
    /// The protected header.
    pub header: Value,
    /// The claims (payload), unverified.
    pub claims: Value,
    /// `<header>.<payload>` as received: what the signature covers.
    pub signing_input: &'a str,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// `token` split and decoded; `None` unless it is three base64url parts whose first two are
/// JSON objects.
pub fn parse(token: &str) -> Option<Compact<'_>> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let object = |part: &str| {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object)
    };
    Some(Compact {
        header: object(h)?,
        claims: object(p)?,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: URL_SAFE_NO_PAD.decode(s).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_parts_of_json_objects_or_nothing() {
        let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let token = format!("{}.{}.{}", enc(r#"{"alg":"ES256"}"#), enc(r#"{"sub":"a"}"#), enc("sig"));
        let c = parse(&token).unwrap();
        assert_eq!(c.header["alg"], "ES256");
        assert_eq!(c.claims["sub"], "a");
        assert_eq!(c.signature, b"sig");
        assert_eq!(c.signing_input, token.rsplit_once('.').unwrap().0);
        for bad in [
            format!("{}.{}", enc("{}"), enc("{}")),
            format!("{}.{}.{}.x", enc("{}"), enc("{}"), enc("s")),
            format!("{}.{}.{}", enc("{}"), enc("[1]"), enc("s")),
            format!("{}.{}.!!", enc("{}"), enc("{}")),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }
}
