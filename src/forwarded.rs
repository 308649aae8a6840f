//! The client address of a request behind reverse proxies (`--trusted-proxies`).
//!
//! The per-address failure counters must count the *client*, not the Ingress controller or
//! load balancer in front of the server: otherwise every user shares the proxy's address and
//! thirty failures by anyone lock out everyone. But `X-Forwarded-For` and `Forwarded` are
//! plain request headers that any client can send, so they are believed only from a socket
//! peer inside one of the trusted CIDR ranges, and only the hops that trusted proxies
//! appended: reading the list from the right, the first address that is not itself a trusted
//! proxy is the client (a client cannot forge what the proxies to its right wrote). Default:
//! no trusted proxy — the headers are ignored and the socket peer is the client.
//!
//! Only one header is read ([`AddressHeader`], `--client-address-header`): the one your
//! proxies write. If both were read, a client could put a forged address into the one the
//! proxies leave alone.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address range `address/prefix`, e.g. `10.0.0.0/8` or `fd00::/8`; a bare address is a
/// range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` lies in this range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let err = || format!("{s:?} is not an address range such as 10.0.0.0/8, 192.168.1.7 or fd00::/8");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(err)?
            }
            Some(_) => return Err(err()),
        };
        // `::ffff:10.0.0.0/104` is the IPv4 range 10.0.0.0/8.
        let mapped = canonical(network);
        let prefix = if mapped == network {
            prefix
        } else {
            prefix.saturating_sub(96)
        };
        Ok(Cidr {
            network: mapped,
            prefix,
        })
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; every other address unchanged.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// The trusted proxies: the value of `--trusted-proxies`, a comma-separated list of ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// Parses `10.0.0.0/8,192.168.0.0/16`; an empty string trusts nobody.
    fn from_str(s: &str) -> Result<TrustedProxies, String> {
        s.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    /// Whether `addr` is a trusted proxy.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(addr))
    }

    /// Whether no proxy is trusted (the headers are never read).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client address of a request from socket peer `peer` (see the module documentation).
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap, header: AddressHeader) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = header.hops(headers);
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A hop that is not an address ends the walk: everything to its left is unproven.
            let Some(addr) = hop.map(canonical) else { break };
            client = addr;
            if !self.trusts(addr) {
                break;
            }
        }
        client
    }
}

/// Which header trusted proxies write the client address into.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AddressHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, Envoy, HAProxy, Traefik, cloud load
    /// balancers).
    #[default]
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    #[value(name = "forwarded")]
    Forwarded,
}

impl AddressHeader {
    /// Every hop the header lists, left (first) to right (nearest); `None` for an entry that is
    /// not an address (`unknown`, an obfuscated identifier, garbage). Repeated header lines
    /// count as one comma-separated list, in order.
    fn hops(self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let name = match self {
            AddressHeader::XForwardedFor => "x-forwarded-for",
            AddressHeader::Forwarded => "forwarded",
        };
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.to_str().map_or(vec![None], |s| s.split(',').map(Some).collect()))
            .map(|entry| {
                let entry = entry?.trim();
                match self {
                    AddressHeader::XForwardedFor => parse_node(entry),
                    AddressHeader::Forwarded => forwarded_for(entry).and_then(parse_node),
                }
            })
            .collect()
    }
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.60;proto=https;by=…`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `192.0.2.60`, `192.0.2.60:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(addr) = node.parse() {
        return Some(addr);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        let one: Cidr = "192.168.1.7".parse().unwrap();
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "fd00::/129",
            "example.com",
            "10.0.0.0/8/8",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.contains("10.0.0.0/8"), "{bad}: {err}");
        }
        let list: TrustedProxies = " 10.0.0.0/8, fd00::/8 ,".parse().unwrap();
        assert_eq!(list.0.len(), 2);
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        assert!("10.0.0.0/8,nope".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        let header = AddressHeader::XForwardedFor;
        assert_eq!(trusted.client_address(ip("203.0.113.9"), &h, header), ip("203.0.113.9"));
        let nobody = TrustedProxies::default();
        assert_eq!(nobody.client_address(ip("10.0.0.1"), &h, header), ip("10.0.0.1"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let x = AddressHeader::XForwardedFor;
        let peer = ip("10.0.0.2");
        // The client forged "1.1.1.1"; the ingress appended the real address, then an inner proxy.
        let h = headers("x-forwarded-for", &["1.1.1.1, 203.0.113.7", "10.0.0.5"]);
        assert_eq!(trusted.client_address(peer, &h, x), ip("203.0.113.7"));
        let h = headers("x-forwarded-for", &["203.0.113.7:5555"]);
        assert_eq!(trusted.client_address(peer, &h, x), ip("203.0.113.7"));
        // Only trusted hops, or garbage before an untrusted one: the left-most proven hop.
        let h = headers("x-forwarded-for", &["garbage, 10.0.0.9"]);
        assert_eq!(trusted.client_address(peer, &h, x), ip("10.0.0.9"));
        assert_eq!(trusted.client_address(peer, &HeaderMap::new(), x), peer);
        // The other header is not read.
        let h = headers("forwarded", &["for=203.0.113.7"]);
        assert_eq!(trusted.client_address(peer, &h, x), peer);
    }

    #[test]
    fn forwarded_elements_give_their_for_node() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let f = AddressHeader::Forwarded;
        let h = headers(
            "forwarded",
            &[r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https, For=10.0.0.4;by=10.0.0.2"#],
        );
        assert_eq!(trusted.client_address(ip("10.0.0.2"), &h, f), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["for=unknown"]);
        assert_eq!(trusted.client_address(ip("10.0.0.2"), &h, f), ip("10.0.0.2"));
    }
}
