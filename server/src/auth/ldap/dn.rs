//! Distinguished names as RFC 4514 writes them, read into their parts so that two spellings of
//! one name compare equal and "is this entry under that base?" is a question about RDNs, never
//! about substrings. Escaped commas (`cn=Sales\, EMEA`), hex escapes (`\c3\a9` is `é`), multi-valued
//! RDNs (`cn=a+uid=b`) and the spaces some directories put after commas are all understood; a
//! name that does not parse is an error, never a guess.

use std::fmt;

/// One `type=value` pair; the value is unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    pub attr: String,
    pub value: String,
}

/// A parsed distinguished name, most specific RDN first (`cn=x,ou=groups,dc=corp`: `cn=x` first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dn {
    rdns: Vec<Vec<Ava>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnError(String);

impl fmt::Display for DnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DnError {}

/// The short names of the attribute types directories put in DNs, by OID: `2.5.4.3=x` is `cn=x`.
const KNOWN_OIDS: [(&str, &str); 9] = [
    ("2.5.4.3", "cn"),
    ("2.5.4.6", "c"),
    ("2.5.4.7", "l"),
    ("2.5.4.8", "st"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "o"),
    ("2.5.4.11", "ou"),
    ("0.9.2342.19200300.100.1.1", "uid"),
    ("0.9.2342.19200300.100.1.25", "dc"),
];

/// An attribute type as compared: case does not matter, and a known OID is its short name.
fn attr_key(attr: &str) -> String {
    let lower = attr.trim().to_ascii_lowercase();
    let bare = lower.strip_prefix("oid.").unwrap_or(&lower);
    KNOWN_OIDS.iter().find(|(oid, _)| *oid == bare).map_or_else(|| bare.to_string(), |(_, n)| n.to_string())
}

/// A value as compared (the directory string matching rules of RFC 4518, reduced to what DNs
/// in practice need): case and runs of spaces do not matter, nor spaces at either end.
fn value_key(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl Dn {
    pub fn parse(text: &str) -> Result<Dn, DnError> {
        let bad = |why: &str| DnError(format!("{text:?} is not a distinguished name: {why}"));
        let bytes = text.as_bytes();
        let mut rdns: Vec<Vec<Ava>> = Vec::new();
        if text.trim().is_empty() {
            return Ok(Dn { rdns });
        }
        let mut rdn: Vec<Ava> = Vec::new();
        let mut i = 0;
        loop {
            // attributeType: up to '=', spaces around it allowed.
            let start = i;
            while i < bytes.len() && bytes[i] != b'=' {
                if matches!(bytes[i], b',' | b'+' | b';' | b'\\' | b'"') {
                    return Err(bad("an attribute type is missing its '='"));
                }
                i += 1;
            }
            if i >= bytes.len() {
                return Err(bad("an attribute type is missing its '='"));
            }
            let attr = text[start..i].trim();
            let attr_ok = !attr.is_empty()
                && (attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && attr.starts_with(|c: char| c.is_ascii_alphabetic())
                    || attr
                        .trim_start_matches("OID.")
                        .trim_start_matches("oid.")
                        .split('.')
                        .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())));
            if !attr_ok {
                return Err(bad(&format!("{attr:?} is not an attribute type")));
            }
            i += 1; // '='
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            // attributeValue: a #hexstring, or a string with escapes, up to an unescaped separator.
            let mut value: Vec<u8> = Vec::new();
            if bytes.get(i) == Some(&b'#') {
                // BER-encoded value, kept as written (compared as such).
                let hs = i;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                    i += 1;
                }
                if (i - hs - 1) == 0 || (i - hs - 1) % 2 != 0 {
                    return Err(bad("a #hex value needs pairs of hex digits"));
                }
                value.extend_from_slice(&bytes[hs..i]);
            } else {
                // Spaces before a separator are not part of the value unless escaped.
                let mut significant = 0;
                while i < bytes.len() && !matches!(bytes[i], b',' | b'+' | b';') {
                    match bytes[i] {
                        b'\\' => {
                            let next = *bytes.get(i + 1).ok_or_else(|| bad("it ends in a lone '\\'"))?;
                            if let (Some(h), Some(l)) =
                                (hex_digit(next), bytes.get(i + 2).copied().and_then(hex_digit))
                            {
                                value.push(h << 4 | l);
                                i += 3;
                            } else if matches!(
                                next,
                                b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' | b'=' | b'#' | b' '
                            ) {
                                value.push(next);
                                i += 2;
                            } else {
                                return Err(bad(&format!("'\\{}' is not an escape", next as char)));
                            }
                            significant = value.len();
                        }
                        b'"' | b'<' | b'>' | 0 => {
                            return Err(bad(&format!("{:?} must be escaped", bytes[i] as char)));
                        }
                        b => {
                            value.push(b);
                            i += 1;
                            if b != b' ' {
                                significant = value.len();
                            }
                        }
                    }
                }
                value.truncate(significant);
            }
            let value = String::from_utf8(value).map_err(|_| bad("a value is not UTF-8"))?;
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            rdn.push(Ava { attr: attr.to_string(), value });
            match bytes.get(i) {
                None => {
                    rdns.push(rdn);
                    break;
                }
                Some(b'+') => {}
                Some(b',' | b';') => rdns.push(std::mem::take(&mut rdn)),
                Some(_) => return Err(bad("a value goes on past its end")),
            }
            i += 1;
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            if i >= bytes.len() {
                return Err(bad("it ends in a separator"));
            }
        }
        Ok(Dn { rdns })
    }

    /// The comparable form of each RDN: attribute types and values as matched, the pairs of a
    /// multi-valued RDN in a fixed order.
    fn keys(&self) -> Vec<Vec<(String, String)>> {
        self.rdns
            .iter()
            .map(|rdn| {
                let mut k: Vec<(String, String)> =
                    rdn.iter().map(|a| (attr_key(&a.attr), value_key(&a.value))).collect();
                k.sort();
                k
            })
            .collect()
    }

    /// Whether this entry lies strictly below `base` (an empty base is the root, above all).
    pub fn is_under(&self, base: &Dn) -> bool {
        let (mine, theirs) = (self.keys(), base.keys());
        mine.len() > theirs.len() && mine[mine.len() - theirs.len()..] == theirs[..]
    }

    /// One string per name, the same for every spelling of it: for sets of names seen.
    pub fn normalized(&self) -> String {
        self.keys()
            .iter()
            .map(|rdn| rdn.iter().map(|(a, v)| format!("{a}={}", escape(v))).collect::<Vec<_>>().join("+"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The value of `attr` in the first RDN (`cn` of `cn=Admins,ou=groups`), if it is named there.
    pub fn leaf_value(&self, attr: &str) -> Option<&str> {
        let want = attr_key(attr);
        self.rdns.first()?.iter().find(|a| attr_key(&a.attr) == want).map(|a| a.value.as_str())
    }
}

/// A value written back as RFC 4514 would, so that separators inside it stay inside it.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn escapes_are_undone() {
        assert_eq!(dn("cn=Sales\\, EMEA,ou=g").leaf_value("cn"), Some("Sales, EMEA"));
        assert_eq!(dn("CN=Ren\\c3\\a9e,OU=x").leaf_value("cn"), Some("Renée"));
        assert_eq!(dn("cn=\\23hash\\ ,ou=x").leaf_value("cn"), Some("#hash "), "escaped space kept");
        assert_eq!(dn("cn=a\\+b+uid=c,ou=x").leaf_value("uid"), Some("c"), "multi-valued RDN");
        assert_eq!(dn("cn=a\\+b+uid=c,ou=x").leaf_value("cn"), Some("a+b"));
        assert_eq!(dn("2.5.4.3=Admins,dc=x").leaf_value("CN"), Some("Admins"), "OID for cn");
        assert_eq!(dn("cn=#04024869,dc=x").leaf_value("cn"), Some("#04024869"), "BER kept as written");
        assert_eq!(dn("").normalized(), "");
    }

    #[test]
    fn one_name_compares_equal_however_it_is_written() {
        let a = dn("cn=IT Admins,ou=Groups,dc=Example,dc=com");
        for same in [
            "CN=it admins, OU=groups, DC=example, DC=COM",
            "cn=IT\\20Admins,ou=Groups,dc=Example,dc=com",
            "cn = IT  Admins ; ou=Groups;dc=Example;dc=com",
            "2.5.4.3=IT Admins,2.5.4.11=Groups,0.9.2342.19200300.100.1.25=Example,dc=com",
        ] {
            assert_eq!(dn(same).normalized(), a.normalized(), "{same}");
        }
        assert_ne!(dn("cn=IT Admins\\,ou=Groups,dc=Example,dc=com").normalized(), a.normalized());
        assert_eq!(dn("uid=b+cn=a,dc=x").normalized(), dn("cn=a+uid=b,dc=x").normalized());
    }

    #[test]
    fn under_a_base_means_its_rdns_end_the_name() {
        let base = dn("ou=groups,dc=example,dc=com");
        assert!(dn("cn=it-admins,ou=groups,dc=example,dc=com").is_under(&base));
        assert!(dn("cn=x,ou=nested,OU=Groups, dc=EXAMPLE,dc=com").is_under(&base));
        assert!(!dn("ou=groups,dc=example,dc=com").is_under(&base), "the base itself is not under it");
        assert!(!dn("cn=it-admins,ou=Anything,dc=example,dc=com").is_under(&base), "a look-alike");
        assert!(!dn("cn=it-admins,ou=groups,dc=example,dc=com,dc=evil").is_under(&base));
        // "ou=groups,dc=example,dc=com" written inside one value is one RDN, not three.
        assert!(!dn("cn=x\\,ou=groups\\,dc=example\\,dc=com,ou=other,dc=com").is_under(&base));
        assert!(!dn("cn=x,ou=evilgroups,dc=example,dc=com").is_under(&base), "not a substring test");
        assert!(dn("cn=x,dc=com").is_under(&dn("")), "the empty base is the root");
    }

    #[test]
    fn what_is_not_a_dn_is_refused() {
        for bad in [
            "nonsense",
            "cn=a,",
            "cn=a,,dc=x",
            "=a,dc=x",
            "cn=a\\",
            "cn=a\\zz",
            "cn=a\"b",
            "cn=#4",
            "cn=\\ff\\fe",
            "c n=a",
            "cn=a,dc",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
