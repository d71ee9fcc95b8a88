//! The optional source-address check of hook-brevo (M3, DESIGN.md §4): Brevo calls webhooks from its
//! published ranges, `1.179.112.0/20` and `172.246.240.0/20`. With ranges configured
//! (`BREVO_WEBHOOK_SOURCE_RANGES`, template parameter `BrevoWebhookSourceRanges`), a request from
//! elsewhere is refused with 403 before anything is read; without (the default), nobody is refused.

use ipnet::IpNet;
use std::net::IpAddr;

/// The environment variable with the comma-separated ranges.
pub const ENV: &str = "BREVO_WEBHOOK_SOURCE_RANGES";

/// Where Brevo's calls may come from; empty: from anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRanges(Vec<IpNet>);

/// A configured range that is not a CIDR range or an address (its position, never its text).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{ENV}: entry {0} is not a CIDR range such as 1.179.112.0/20")]
pub struct BadRange(pub usize);

impl SourceRanges {
    /// From `1.179.112.0/20, 172.246.240.0/20`: CIDR ranges (or single addresses), separated by commas;
    /// empty entries are skipped, so an empty value is "off".
    pub fn parse(value: &str) -> Result<Self, BadRange> {
        let mut ranges = Vec::new();
        for (i, entry) in value.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let range = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => entry.parse::<IpAddr>().map(IpNet::from).map_err(|_| BadRange(i + 1))?,
            };
            ranges.push(range);
        }
        Ok(Self(ranges))
    }

    /// From [`ENV`]; unset is off.
    pub fn from_env() -> Result<Self, BadRange> {
        Self::parse(&std::env::var(ENV).unwrap_or_default())
    }

    /// Whether the check is on.
    pub fn is_on(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether a request from `source` (as API Gateway saw it; `None` if unknown) may pass: always when
    /// off; when on, only an address inside a range (an unknown or unreadable one never).
    pub fn admits(&self, source: Option<&str>) -> bool {
        if !self.is_on() {
            return true;
        }
        let Some(ip) = source.and_then(|s| s.trim().parse::<IpAddr>().ok()) else { return false };
        let ip = ip.to_canonical(); // an IPv4 address mapped into IPv6 is that IPv4 address
        self.0.iter().any(|range| range.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BREVO: &str = "1.179.112.0/20, 172.246.240.0/20";

    #[test]
    fn m3_off_admits_everyone() {
        let off = SourceRanges::parse("").unwrap();
        assert!(!off.is_on());
        assert!(off.admits(Some("198.51.100.7")) && off.admits(None));
        assert_eq!(SourceRanges::parse(" , ").unwrap(), off);
    }

    #[test]
    fn m3_brevos_ranges_admit_their_addresses_only() {
        let ranges = SourceRanges::parse(BREVO).unwrap();
        for inside in ["1.179.112.0", "1.179.127.255", "172.246.240.9", "::ffff:1.179.112.1"] {
            assert!(ranges.admits(Some(inside)), "{inside}");
        }
        for outside in ["1.179.128.0", "1.179.111.255", "172.246.239.1", "198.51.100.7", "2001:db8::1"] {
            assert!(!ranges.admits(Some(outside)), "{outside}");
        }
        assert!(!ranges.admits(None), "unknown source");
        assert!(!ranges.admits(Some("not-an-ip")));
    }

    #[test]
    fn m3_single_addresses_and_ipv6_ranges_are_ranges_too() {
        let ranges = SourceRanges::parse("192.0.2.10,2001:db8::/32").unwrap();
        assert!(ranges.admits(Some("192.0.2.10")) && !ranges.admits(Some("192.0.2.11")));
        assert!(ranges.admits(Some("2001:db8:1::5")) && !ranges.admits(Some("2001:db9::5")));
    }

    #[test]
    fn m3_a_bad_entry_is_refused_by_position_without_its_text() {
        let e = SourceRanges::parse("1.179.112.0/20, lena@example.org").unwrap_err();
        assert_eq!(e, BadRange(2));
        assert!(!e.to_string().contains("lena"));
        assert_eq!(SourceRanges::parse("1.2.3.4/33"), Err(BadRange(1)));
    }
}
