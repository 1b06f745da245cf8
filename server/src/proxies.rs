//! Who the client is when reverse proxies sit in front. `X-Forwarded-For` is a list anyone can
//! write to: each proxy appends the address it was reached from, so only the entries added by
//! proxies Ayush trusts can be believed. The client is the right-most address that is not one
//! of `server.trusted_proxies`; a request that did not come from a trusted proxy is its own
//! socket peer, whatever headers it carries. The same holds for `X-Forwarded-Host` and
//! `X-Forwarded-Proto`.

use std::net::IpAddr;

/// One trusted address or network (`10.0.0.0/8`, `192.0.2.7`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(text: &str) -> Result<Net, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{text:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address that arrived mapped into IPv6 (`::ffff:10.0.0.1`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `server.trusted_proxies`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Net>);

impl TrustedProxies {
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        list.iter()
            .map(|s| Net::parse(s).map_err(|e| format!("server.trusted_proxies: {e}")))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address: the socket peer, or, when the peer is a trusted proxy, the
    /// right-most `X-Forwarded-For` entry that is not a trusted proxy (`forwarded_for` holds the
    /// header's values in the order received). If every entry is a proxy, the left-most is the
    /// client; an entry that is not an address stops the walk at the hop that wrote it.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|h| !h.is_empty());
        let hops: Vec<&str> = hops.collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { return client };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }

    /// The right-most value of a forwarded header (set by the proxy nearest Ayush), believed
    /// only from a trusted proxy.
    pub fn forwarded<'a>(&self, peer: IpAddr, values: &[&'a str]) -> Option<&'a str> {
        if !self.trusts(peer) {
            return None;
        }
        values.iter().flat_map(|v| v.split(',')).map(str::trim).rfind(|v| !v.is_empty())
    }
}

/// An `X-Forwarded-For` entry: an address, perhaps with a port (`192.0.2.1:5050`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    hop.rsplit_once(':').and_then(|(h, _)| h.parse::<std::net::Ipv4Addr>().ok()).map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.7", "fd00::/8"]);
        assert!(p.trusts(ip("10.200.3.4")) && p.trusts(ip("192.0.2.7")) && p.trusts(ip("fd12::1")));
        assert!(!p.trusts(ip("11.0.0.1")) && !p.trusts(ip("192.0.2.8")) && !p.trusts(ip("fe80::1")));
        assert!(p.trusts(ip("::ffff:10.1.1.1")), "IPv4 mapped into IPv6");
        assert!(proxies(&["0.0.0.0/0"]).trusts(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "proxy.corp", "10.0.0/8", "::/129"] {
            assert!(TrustedProxies::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let p = proxies(&["10.0.0.0/8"]);
        // A client that writes its own X-Forwarded-For gets it ignored without a trusted proxy.
        assert_eq!(p.client(ip("203.0.113.9"), &["1.2.3.4"]), ip("203.0.113.9"));
        // Behind the proxy: what the proxy appended is believed, what the client wrote is not.
        assert_eq!(p.client(ip("10.0.0.2"), &["1.2.3.4, 203.0.113.9"]), ip("203.0.113.9"));
        assert_eq!(p.client(ip("10.0.0.2"), &["1.2.3.4", "203.0.113.9, 10.0.0.5"]), ip("203.0.113.9"));
        assert_eq!(p.client(ip("10.0.0.2"), &["10.0.0.9, 10.0.0.5"]), ip("10.0.0.9"), "all proxies");
        assert_eq!(p.client(ip("10.0.0.2"), &[]), ip("10.0.0.2"), "no header");
        assert_eq!(p.client(ip("10.0.0.2"), &["203.0.113.9:4711"]), ip("203.0.113.9"));
        assert_eq!(p.client(ip("10.0.0.2"), &["[2001:db8::1]:80"]), ip("2001:db8::1"));
        assert_eq!(p.client(ip("10.0.0.2"), &["1.2.3.4, unknown"]), ip("10.0.0.2"), "garbage stops");
        assert_eq!(TrustedProxies::default().client(ip("10.0.0.2"), &["1.2.3.4"]), ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_values_come_from_trusted_proxies_only() {
        let p = proxies(&["127.0.0.1"]);
        assert_eq!(p.forwarded(ip("127.0.0.1"), &["evil.example, ayush.corp"]), Some("ayush.corp"));
        assert_eq!(p.forwarded(ip("192.0.2.1"), &["evil.example"]), None);
    }
}
