//! Addresses: what a user types (`HOST:PORT`, with or without a scheme, with an optional
//! pinned peer id: `HOST:PORT#PEERID`) and what gossip may carry (an IP literal and a
//! port, nothing else).

use std::net::{IpAddr, SocketAddr};

/// An address to dial, and the peer id that must answer there (if pinned).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddress {
    /// `HOST:PORT`.
    pub host_port: String,
    pub peer_id: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error(
        "bad address {address:?}: {reason}; use HOST:PORT or HOST:PORT#PEERID (e.g. 192.0.2.7:7878#{example}), a ws:// wss:// http:// or https:// prefix is allowed",
        example = "0123456789abcdef0123456789abcdef"
    )]
    Unparsable { address: String, reason: String },
    #[error("gossip address {address:?} refused: {reason}")]
    NotDialable { address: String, reason: String },
}

impl PeerAddress {
    /// Parses what a user typed.
    pub fn parse(text: &str) -> Result<PeerAddress, AddressError> {
        let bad =
            |reason: &str| AddressError::Unparsable { address: text.to_string(), reason: reason.to_string() };
        let trimmed = text.trim();
        let (without_id, peer_id) = match trimmed.split_once('#') {
            Some((rest, id)) => {
                (rest, Some(parse_peer_id(id).ok_or_else(|| bad("a peer id is 32 hex digits"))?))
            }
            None => (trimmed, None),
        };
        let rest = ["ws://", "wss://", "http://", "https://"]
            .iter()
            .find_map(|scheme| without_id.strip_prefix(scheme))
            .unwrap_or(without_id);
        if rest.contains("://") {
            return Err(bad("unknown scheme"));
        }
        let host_port = match rest.split_once('/') {
            Some((host_port, "" | "ws")) => host_port,
            Some(_) => return Err(bad("a path other than /ws is not an address")),
            None => rest,
        };
        let (host, port) = host_port.rsplit_once(':').ok_or_else(|| bad("the port is missing"))?;
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(bad("port 0 cannot be dialled"));
        }
        let host_ok = match host.strip_prefix('[').and_then(|host| host.strip_suffix(']')) {
            Some(ipv6) => ipv6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => {
                !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            }
        };
        if !host_ok {
            return Err(bad("the host is not a name, an IPv4 address or a bracketed IPv6 address"));
        }
        Ok(PeerAddress { host_port: host_port.to_string(), peer_id })
    }

    /// The address of a peer whose id is known (from signed gossip).
    pub fn pinned(host_port: &str, peer_id: &str) -> PeerAddress {
        PeerAddress { host_port: host_port.to_string(), peer_id: Some(peer_id.to_string()) }
    }
}

impl std::fmt::Display for PeerAddress {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.peer_id {
            Some(peer_id) => write!(formatter, "{}#{peer_id}", self.host_port),
            None => write!(formatter, "{}", self.host_port),
        }
    }
}

fn parse_peer_id(text: &str) -> Option<String> {
    (text.len() == 32 && text.bytes().all(|byte| byte.is_ascii_hexdigit())).then(|| text.to_ascii_lowercase())
}

/// Checks an address that came by gossip: exactly `IP:PORT` (no scheme, no path, no name
/// to resolve), a port above 0, an IP a peer can listen on (not unspecified, multicast or
/// broadcast).
pub fn check_gossip_address(address: &str) -> Result<SocketAddr, AddressError> {
    let refused = |reason: &str| AddressError::NotDialable {
        address: address.chars().take(80).collect(),
        reason: reason.into(),
    };
    let socket: SocketAddr = address.parse().map_err(|_| refused("not IP:PORT"))?;
    if socket.port() == 0 {
        return Err(refused("port 0"));
    }
    let ip = socket.ip();
    let undialable =
        ip.is_unspecified() || ip.is_multicast() || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if undialable {
        return Err(refused("unspecified, multicast or broadcast address"));
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn every_form_a_user_types_parses_to_one_address() {
        for text in [
            "127.0.0.1:7878",
            "ws://127.0.0.1:7878/ws",
            "http://127.0.0.1:7878",
            "wss://127.0.0.1:7878/",
            " 127.0.0.1:7878 ",
        ] {
            assert_eq!(
                PeerAddress::parse(text).unwrap(),
                PeerAddress { host_port: "127.0.0.1:7878".into(), peer_id: None },
                "{text}"
            );
        }
        let pinned = PeerAddress::parse(&format!("ws://example.org:1/ws#{}", ID.to_uppercase())).unwrap();
        assert_eq!(pinned, PeerAddress::pinned("example.org:1", ID));
        assert_eq!(PeerAddress::parse("[::1]:9").unwrap().host_port, "[::1]:9");
        assert_eq!(pinned.to_string(), format!("example.org:1#{ID}"));
    }

    #[test]
    fn bad_addresses_say_which_forms_are_accepted() {
        for text in
            ["localhost", "host:0", "host:99999", "ftp://host:1", "host:1#abc", "host:1/api", "a b:1", ""]
        {
            let error = PeerAddress::parse(text).unwrap_err().to_string();
            assert!(error.contains("HOST:PORT#PEERID"), "{text}: {error}");
        }
    }

    #[test]
    fn gossip_addresses_are_ip_and_port_only() {
        assert!(check_gossip_address("127.0.0.2:7000").is_ok());
        assert!(check_gossip_address("[::1]:7000").is_ok());
        for refused in [
            "0.0.0.0:7000",
            "[::]:7000",
            "224.0.0.1:7000",
            "255.255.255.255:1",
            "127.0.0.1:0",
            "ws://1.2.3.4:5",
            "1.2.3.4:5/x",
            "example.org:80",
            "<img src=x>",
        ] {
            assert!(check_gossip_address(refused).is_err(), "{refused}");
        }
    }
}
