//! Networks: an identity costs one key, an address block costs much more, so replicas of
//! a unit must come from distinct networks, not only from distinct identities.
//!
//! A worker's network is the address of its connection masked to a prefix: /24 for IPv4
//! and /48 for IPv6 by default (what one household, office or small cloud tenant usually
//! holds), configurable. Loopback addresses count per full address, so a test can stand
//! for several networks with 127.0.0.2, 127.0.0.3, ... An IPv4 address carried in IPv6
//! (`::ffff:a.b.c.d`) is the IPv4 address. A worker the core has no address for (unit
//! tests, simulations) is its own network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The network a worker connects from (compare them; print them for people). An address
/// block is kept as its masked address and prefix length (no allocation: every worker
/// connection holds one); other names (a worker without an address) as shared text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Network(NetworkName);

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum NetworkName {
    Block { masked: IpAddr, bits: u8 },
    Named(Arc<str>),
}

/// How many leading bits of an address name its network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkPrefixes {
    pub ipv4_bits: u8,
    pub ipv6_bits: u8,
}

impl Default for NetworkPrefixes {
    fn default() -> NetworkPrefixes {
        NetworkPrefixes { ipv4_bits: 24, ipv6_bits: 48 }
    }
}

impl NetworkPrefixes {
    /// Checks the prefix lengths (IPv4 1 to 32 bits, IPv6 1 to 128).
    pub fn new(ipv4_bits: u8, ipv6_bits: u8) -> Result<NetworkPrefixes, String> {
        if !(1..=32).contains(&ipv4_bits) || !(1..=128).contains(&ipv6_bits) {
            return Err(format!(
                "network prefixes /{ipv4_bits} (IPv4) and /{ipv6_bits} (IPv6) are out of range: IPv4 takes 1 to 32 bits, IPv6 1 to 128"
            ));
        }
        Ok(NetworkPrefixes { ipv4_bits, ipv6_bits })
    }
}

impl Network {
    /// The network of a connection from `address`.
    pub fn of_address(address: IpAddr, prefixes: NetworkPrefixes) -> Network {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let bits = match address {
            IpAddr::V4(v4) if v4.is_loopback() => 32,
            IpAddr::V6(v6) if v6.is_loopback() => 128,
            IpAddr::V4(_) => prefixes.ipv4_bits.min(32),
            IpAddr::V6(_) => prefixes.ipv6_bits.min(128),
        };
        Network::block(address, bits)
    }

    /// The block of `bits` leading bits of `address`.
    fn block(address: IpAddr, bits: u8) -> Network {
        let masked = match address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        };
        Network(NetworkName::Block { masked, bits })
    }

    /// A network as the store keeps it (its text; empty in stores from before networks
    /// were recorded, when the replica's identity stands for its network).
    pub fn stored(text: &str, worker_id: &str) -> Network {
        if text.is_empty() {
            return Network::of_identity(worker_id);
        }
        let block = text.split_once('/').and_then(|(address, bits)| {
            let address: IpAddr = address.parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let within = bits <= if address.is_ipv4() { 32 } else { 128 };
            within.then(|| Network::block(address, bits))
        });
        match block {
            Some(network) if network.to_string() == text => network,
            _ => Network(NetworkName::Named(Arc::from(text))),
        }
    }

    /// The network of a worker the core has no address for: its own identity.
    pub fn of_identity(worker_id: &str) -> Network {
        Network(NetworkName::Named(Arc::from(format!("identity {worker_id}"))))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            NetworkName::Block { masked, bits } => write!(formatter, "{masked}/{bits}"),
            NetworkName::Named(text) => formatter.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(address: &str) -> String {
        Network::of_address(address.parse().unwrap(), NetworkPrefixes::default()).to_string()
    }

    #[test]
    fn addresses_are_masked_to_their_network_and_loopback_counts_per_address() {
        assert_eq!(network("203.0.113.7"), "203.0.113.0/24");
        assert_eq!(network("203.0.113.250"), network("203.0.113.7"));
        assert_ne!(network("203.0.114.7"), network("203.0.113.7"));
        assert_eq!(network("2001:db8:1:2::5"), "2001:db8:1::/48");
        assert_eq!(network("2001:db8:1:ffff::9"), network("2001:db8:1:2::5"));
        assert_eq!(network("::ffff:203.0.113.9"), "203.0.113.0/24");
        assert_eq!(network("127.0.0.2"), "127.0.0.2/32");
        assert_ne!(network("127.0.0.2"), network("127.0.0.3"));
        assert_eq!(network("::1"), "::1/128");
    }

    #[test]
    fn prefixes_are_configurable_within_range() {
        let wide = NetworkPrefixes::new(16, 32).unwrap();
        assert_eq!(Network::of_address("198.51.100.1".parse().unwrap(), wide).to_string(), "198.51.0.0/16");
        assert_eq!(
            Network::of_address("198.51.100.1".parse().unwrap(), NetworkPrefixes::new(32, 128).unwrap())
                .to_string(),
            "198.51.100.1/32"
        );
        assert!(NetworkPrefixes::new(0, 48).unwrap_err().contains("1 to 32"));
        assert!(NetworkPrefixes::new(24, 129).is_err());
    }

    #[test]
    fn a_stored_network_is_the_network_it_was_stored_from() {
        for address in ["203.0.113.7", "2001:db8:1:2::5", "127.0.0.2", "::1", "::ffff:203.0.113.9"] {
            let network = Network::of_address(address.parse().unwrap(), NetworkPrefixes::default());
            assert_eq!(Network::stored(&network.to_string(), "w"), network, "{address}");
        }
        assert_eq!(Network::stored("", "w"), Network::of_identity("w"));
        assert_eq!(Network::stored("identity w", "x"), Network::of_identity("w"));
        for odd in ["203.0.113.7/24", "203.0.113.0/33", "2001:db8::/300", "garbage/24", "1.2.3.0/024"] {
            assert_eq!(Network::stored(odd, "w").to_string(), odd, "kept as written");
        }
    }
}
