//! ID token validation as OpenID Connect Core 3.1.3.7 requires, as a plain function over the
//! token, the provider's keys and what the sign-in expects (sans-IO: tested with forged tokens).
//! Only asymmetric algorithms are accepted: `none` and the HMAC family are refused, so a token
//! "signed" with a public key used as an HMAC secret (algorithm confusion) never verifies.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::Value;

/// Why a token was refused; the reason goes to the audit log, the message to the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the ID token is malformed: {0}")]
    Malformed(String),
    #[error("the ID token uses algorithm {0:?}, which is not accepted")]
    Algorithm(String),
    /// No key with this kid (after refreshing the keys once).
    #[error("the ID token was signed with an unknown key {0:?}")]
    UnknownKey(String),
    #[error("the ID token's signature is not valid")]
    Signature,
    #[error("the ID token was issued by {0:?}, not by the configured issuer")]
    Issuer(String),
    #[error("the ID token is not meant for this application (audience)")]
    Audience,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is dated in the future")]
    NotYetValid,
    #[error("the ID token does not answer this sign-in (nonce)")]
    Nonce,
}

impl TokenError {
    /// The audit log's reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "id_token_malformed",
            TokenError::Algorithm(_) => "id_token_algorithm",
            TokenError::UnknownKey(_) => "id_token_unknown_key",
            TokenError::Signature => "id_token_bad_signature",
            TokenError::Issuer(_) => "id_token_wrong_issuer",
            TokenError::Audience => "id_token_wrong_audience",
            TokenError::Expired => "id_token_expired",
            TokenError::NotYetValid => "id_token_not_yet_valid",
            TokenError::Nonce => "id_token_wrong_nonce",
        }
    }
}

/// A public key from the provider's JWKS.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// What this sign-in expects of the token.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: i64,
    pub skew: i64,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The parts of a token before its keys are known: for picking the key (`kid`).
pub struct Parsed {
    alg: String,
    pub kid: Option<String>,
    signed: Vec<u8>,
    signature: Vec<u8>,
    claims: Value,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|e| TokenError::Malformed(format!("{what}: {e}")))
}

pub fn parse(token: &str) -> Result<Parsed, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err(TokenError::Malformed("expected three dot-separated parts".into()));
    };
    let header: Header = serde_json::from_slice(&b64(h, "header")?)
        .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
    let claims: Value = serde_json::from_slice(&b64(p, "payload")?)
        .map_err(|e| TokenError::Malformed(format!("payload: {e}")))?;
    if !claims.is_object() {
        return Err(TokenError::Malformed("the payload is not a JSON object".into()));
    }
    Ok(Parsed {
        alg: header.alg,
        kid: header.kid,
        signed: format!("{h}.{p}").into_bytes(),
        signature: b64(s, "signature")?,
        claims,
    })
}

fn verify_with(jwk: &Jwk, alg: &str, signed: &[u8], sig: &[u8]) -> Result<bool, TokenError> {
    let field = |v: &Option<String>, name: &str| {
        v.as_deref()
            .ok_or_else(|| TokenError::Malformed(format!("key without {name}")))
            .and_then(|s| b64(s, name))
    };
    let ok = match (alg, jwk.kty.as_str()) {
        ("RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512", "RSA") => {
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            let (n, e) = (field(&jwk.n, "n")?, field(&jwk.e, "e")?);
            RsaPublicKeyComponents { n: &n, e: &e }.verify(params, signed, sig).is_ok()
        }
        ("ES256" | "ES384", "EC") => {
            let (alg_ring, crv): (&signature::EcdsaVerificationAlgorithm, &str) = match alg {
                "ES256" => (&signature::ECDSA_P256_SHA256_FIXED, "P-256"),
                _ => (&signature::ECDSA_P384_SHA384_FIXED, "P-384"),
            };
            if jwk.crv.as_deref() != Some(crv) {
                return Ok(false);
            }
            let mut point = vec![0x04];
            point.extend(field(&jwk.x, "x")?);
            point.extend(field(&jwk.y, "y")?);
            UnparsedPublicKey::new(alg_ring, point).verify(signed, sig).is_ok()
        }
        ("EdDSA", "OKP") if jwk.crv.as_deref() == Some("Ed25519") => {
            UnparsedPublicKey::new(&signature::ED25519, field(&jwk.x, "x")?).verify(signed, sig).is_ok()
        }
        _ => false,
    };
    Ok(ok)
}

/// Algorithms accepted at all: asymmetric ones only.
const ACCEPTED: [&str; 9] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// Checks the signature with the provider's keys and the claims against what the sign-in
/// expects; returns the claims.
pub fn validate(parsed: Parsed, keys: &Jwks, expected: &Expected<'_>) -> Result<Value, TokenError> {
    if !ACCEPTED.contains(&parsed.alg.as_str()) {
        return Err(TokenError::Algorithm(parsed.alg));
    }
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == parsed.alg))
        .filter(|k| match (&parsed.kid, &k.kid) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey(parsed.kid.unwrap_or_default()));
    }
    let mut verified = false;
    for key in candidates {
        if verify_with(key, &parsed.alg, &parsed.signed, &parsed.signature)? {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(TokenError::Signature);
    }
    let c = parsed.claims;
    let iss = c["iss"].as_str().unwrap_or_default();
    if iss != expected.issuer {
        return Err(TokenError::Issuer(iss.to_string()));
    }
    let audiences: Vec<&str> = match &c["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(TokenError::Audience);
    }
    // With several audiences, the authorized party must be us (Core 3.1.3.7 items 4 and 5).
    if (audiences.len() > 1 || c.get("azp").is_some()) && c["azp"].as_str() != Some(expected.client_id) {
        return Err(TokenError::Audience);
    }
    let exp = c["exp"].as_i64().ok_or_else(|| TokenError::Malformed("no exp".into()))?;
    if exp + expected.skew < expected.now {
        return Err(TokenError::Expired);
    }
    let iat = c["iat"].as_i64().ok_or_else(|| TokenError::Malformed("no iat".into()))?;
    if iat - expected.skew > expected.now {
        return Err(TokenError::NotYetValid);
    }
    if c["nonce"].as_str() != Some(expected.nonce) {
        return Err(TokenError::Nonce);
    }
    if c["sub"].as_str().is_none_or(str::is_empty) {
        return Err(TokenError::Malformed("no sub".into()));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair};

    struct Signer {
        key: EcdsaKeyPair,
        kid: String,
    }

    impl Signer {
        fn new(kid: &str) -> Signer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let key =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Signer { key, kid: kid.into() }
        }
        fn jwk(&self) -> Jwk {
            let point = self.key.public_key().as_ref();
            Jwk {
                kty: "EC".into(),
                kid: Some(self.kid.clone()),
                use_: Some("sig".into()),
                alg: None,
                n: None,
                e: None,
                crv: Some("P-256".into()),
                x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
                y: Some(URL_SAFE_NO_PAD.encode(&point[33..65])),
            }
        }
        fn sign(&self, header: Value, claims: Value) -> String {
            let h = URL_SAFE_NO_PAD.encode(header.to_string());
            let p = URL_SAFE_NO_PAD.encode(claims.to_string());
            let sig = self.key.sign(&SystemRandom::new(), format!("{h}.{p}").as_bytes()).unwrap();
            format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
        fn token(&self, claims: Value) -> String {
            self.sign(serde_json::json!({"alg": "ES256", "kid": self.kid}), claims)
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn claims() -> Value {
        serde_json::json!({
            "iss": "http://127.0.0.1:9000", "aud": "ayush", "sub": "u1", "nonce": "n-123",
            "iat": NOW - 10, "exp": NOW + 300, "preferred_username": "alice",
        })
    }

    fn check(token: &str, keys: &Jwks) -> Result<Value, TokenError> {
        let expected = Expected {
            issuer: "http://127.0.0.1:9000",
            client_id: "ayush",
            nonce: "n-123",
            now: NOW,
            skew: 60,
        };
        validate(parse(token)?, keys, &expected)
    }

    fn with(f: impl FnOnce(&mut Value)) -> Value {
        let mut c = claims();
        f(&mut c);
        c
    }

    #[test]
    fn a_good_token_validates_and_every_bad_one_is_refused_with_its_reason() {
        let signer = Signer::new("k1");
        let keys = Jwks { keys: vec![signer.jwk()] };
        assert_eq!(check(&signer.token(claims()), &keys).unwrap()["preferred_username"], "alice");

        let cases: Vec<(String, &str)> = vec![
            (signer.token(with(|c| c["iss"] = "http://evil.example".into())), "id_token_wrong_issuer"),
            (signer.token(with(|c| c["iss"] = "http://127.0.0.1:9000/".into())), "id_token_wrong_issuer"),
            (signer.token(with(|c| c["aud"] = "someone-else".into())), "id_token_wrong_audience"),
            (
                signer.token(with(|c| c["aud"] = serde_json::json!(["ayush", "other"]))),
                "id_token_wrong_audience",
            ),
            (signer.token(with(|c| c["exp"] = (NOW - 61).into())), "id_token_expired"),
            (signer.token(with(|c| c["iat"] = (NOW + 3600).into())), "id_token_not_yet_valid"),
            (signer.token(with(|c| c["nonce"] = "replayed".into())), "id_token_wrong_nonce"),
            (Signer::new("k1").token(claims()), "id_token_bad_signature"),
            (Signer::new("k9").token(claims()), "id_token_unknown_key"),
            (signer.sign(serde_json::json!({"alg": "none"}), claims()), "id_token_algorithm"),
            (signer.sign(serde_json::json!({"alg": "HS256", "kid": "k1"}), claims()), "id_token_algorithm"),
            ("not.a-token".into(), "id_token_malformed"),
        ];
        for (token, reason) in cases {
            assert_eq!(check(&token, &keys).unwrap_err().reason(), reason, "{token}");
        }
        // Several audiences are fine when we are the authorized party; a little skew is too.
        let multi = with(|c| {
            c["aud"] = serde_json::json!(["ayush", "other"]);
            c["azp"] = "ayush".into();
            c["exp"] = (NOW - 30).into();
        });
        assert!(check(&signer.token(multi), &keys).is_ok());
    }

    #[test]
    fn an_unsigned_token_with_a_stripped_signature_is_refused() {
        let signer = Signer::new("k1");
        let keys = Jwks { keys: vec![signer.jwk()] };
        let token = signer.token(claims());
        let stripped = format!("{}.", token.rsplit_once('.').unwrap().0);
        assert!(check(&stripped, &keys).is_err());
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let payload = token.split('.').nth(1).unwrap();
        assert_eq!(
            check(&format!("{none_header}.{payload}."), &keys).unwrap_err().reason(),
            "id_token_algorithm"
        );
    }
}
