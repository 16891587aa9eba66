//! Which addresses outbound HTTP may reach. Recipes are written by users, so without care they
//! could make Weft fetch its own admin ports or a cloud's metadata service (SSRF). Every host is
//! resolved here and every address checked, on the first request and on every redirect hop.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What outbound HTTP may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkPolicy {
    /// Allow loopback, private, link-local and other internal ranges. Off by default.
    pub allow_private: bool,
}

impl NetworkPolicy {
    /// Why an address is refused, or `None` when it may be reached.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_private {
            return None;
        }
        internal_range(ip)
    }
}

/// The name of the internal range an address falls in, if any.
fn internal_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => internal_v4(v4),
            None => internal_v6(v6),
        },
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if a == 0 || ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("broadcast, multicast or reserved")
    } else {
        None
    }
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else {
        None
    }
}

/// How a refusal's message starts, so that it can be told apart from network failures.
pub const REFUSED: &str = "refused to connect to";

/// The message for a refused address. It names the way out for operators.
pub fn refused_message(host: &str, ip: IpAddr, range: &str) -> String {
    format!(
        "{REFUSED} {host} ({ip}): it is a {range} address; outbound HTTP may only reach \
         public addresses unless private networks are allowed (--allow-private-network)"
    )
}

/// A DNS resolver that drops internal addresses unless the policy allows them.
pub struct CheckedResolver {
    pub policy: NetworkPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match policy.refusal(addr.ip()) {
                    Some(range) => {
                        refused.get_or_insert((addr.ip(), range));
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                if let Some((ip, range)) = refused {
                    return Err(refused_message(&host, ip, range).into());
                }
                return Err(format!("no address found for {host}").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_refused_by_default() {
        let policy = NetworkPolicy::default();
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = internal.parse().unwrap();
            assert!(policy.refusal(ip).is_some(), "{internal} was allowed");
        }
    }

    #[test]
    fn public_addresses_pass_and_the_operator_can_open_internal_ones() {
        let policy = NetworkPolicy::default();
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert_eq!(policy.refusal(public.parse().unwrap()), None, "{public}");
        }
        let open = NetworkPolicy {
            allow_private: true,
        };
        assert_eq!(open.refusal("127.0.0.1".parse().unwrap()), None);
    }
}
