//! Name rules shared by the passes: Kubernetes DNS-1123 names and the limits of names
//! mcwan derives from them.

use std::net::IpAddr;

/// A DNS-1123 label: lowercase alphanumerics and `-`, alphanumeric at both ends, at most 63.
#[must_use]
pub fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 in all.
#[must_use]
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

/// A gateway address: an IP address or a DNS name another cluster can resolve.
#[must_use]
pub fn is_address(address: &str) -> bool {
    address.parse::<IpAddr>().is_ok() || is_dns1123_subdomain(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(is_dns1123_label("cluster-1"));
        assert!(!is_dns1123_label("Cluster-1"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label("../etc"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("gw.example.com"));
        assert!(is_address("10.111.1.29"));
        assert!(is_address("fd00::1"));
        assert!(!is_address("gw_1.example"));
    }
}
