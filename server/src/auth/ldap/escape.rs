//! Everything a person types that ends up in an LDAP filter or DN is escaped here, so that a
//! username like `*)(uid=*))(|(uid=*` is matched literally and can never match anyone else.

/// An assertion value in a search filter (RFC 4515 section 3): `*`, `(`, `)`, `\` and NUL become
/// `\2a`, `\28`, `\29`, `\5c` and `\00`; so does every byte outside printable ASCII, which keeps
/// the filter plain ASCII whatever the directory's handling of UTF-8.
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        match b {
            b'*' | b'(' | b')' | b'\\' | 0 => out.push_str(&format!("\\{b:02x}")),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:02x}")),
        }
    }
    out
}

/// An attribute value in a distinguished name (RFC 4514 section 2.4): `"`, `+`, `,`, `;`, `<`,
/// `>`, `\` and `=` take a backslash, as do a leading space or `#` and a trailing space; NUL
/// becomes `\00`.
pub fn dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        match ch {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(ch);
            }
            '\0' => out.push_str("\\00"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            _ => out.push(ch),
        }
    }
    out
}

/// Fills `{username}` (and `{dn}`) in a configured filter, escaping each value for a filter.
pub fn fill_filter(template: &str, username: &str, dn: Option<&str>) -> String {
    let filled = template.replace("{username}", &filter_value(username));
    match dn {
        Some(dn) => filled.replace("{dn}", &filter_value(dn)),
        None => filled,
    }
}

/// Fills `{username}` in a configured DN template (direct bind), escaping it for a DN.
pub fn fill_dn(template: &str, username: &str) -> String {
    template.replace("{username}", &dn_value(username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_cannot_change_the_filter() {
        let hostile = "*)(uid=*))(|(uid=*";
        assert_eq!(filter_value(hostile), "\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28uid=\\2a");
        let filter = fill_filter("(&(objectClass=person)(uid={username}))", hostile, None);
        // Only the template's own parentheses remain unescaped.
        assert_eq!((filter.matches('(').count(), filter.matches(')').count()), (3, 3), "{filter}");
        assert!(!filter.contains('*'), "{filter}");
        assert_eq!(filter_value("a\\b\0"), "a\\5cb\\00");
        assert_eq!(filter_value("Zoë"), "Zo\\c3\\ab");
    }

    #[test]
    fn group_filters_take_the_dn_escaped() {
        let f = fill_filter("(|(member={dn})(memberUid={username}))", "bob", Some("cn=Bob (IT),ou=people"));
        assert_eq!(f, "(|(member=cn=Bob \\28IT\\29,ou=people)(memberUid=bob))");
    }

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(dn_value("Smith, John"), "Smith\\, John");
        assert_eq!(dn_value(" #lead"), "\\ #lead");
        assert_eq!(dn_value("#lead "), "\\#lead\\ ");
        assert_eq!(dn_value("a=b+c\\d\"<>;"), "a\\=b\\+c\\\\d\\\"\\<\\>\\;");
        assert_eq!(
            fill_dn("uid={username},ou=people,dc=example,dc=com", "x,dc=evil"),
            "uid=x\\,dc\\=evil,ou=people,dc=example,dc=com"
        );
    }
}
