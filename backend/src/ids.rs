//! Identifiers and times as Docker writes them: random IDs from the kernel's
//! generator, RFC 3339 timestamps with nanoseconds (chrono). A leaf module:
//! every layer of berthd may use it, it uses none of them.

use chrono::{DateTime, SecondsFormat, Utc};

/// 128 random bits from the kernel's generator.
pub fn random_u128() -> u128 {
    let mut buf = [0u8; 16];
    // getrandom fails only where the kernel has no generator at all: the
    // clock and pid then make an ID that is at least unique on this host.
    if getrandom::fill(&mut buf).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        return t ^ u128::from(std::process::id());
    }
    u128::from_le_bytes(buf)
}

/// A new 64-hex-digit ID (containers, networks, volumes, execs).
pub fn new_id() -> String {
    format!("{:032x}{:032x}", random_u128(), random_u128())
}

/// Docker's zero time (a container never started or never finished).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Seconds and nanoseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    DateTime::<Utc>::from_timestamp(secs, nanos).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Now, as Docker prints a time.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Seconds since the epoch of an RFC 3339 time (0 if unreadable).
pub fn parse_rfc3339(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).map(|t| t.timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_and_parse_as_docker_writes_them() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_rfc3339(1_767_225_600, 5), "2026-01-01T00:00:00.000000005Z");
        assert_eq!(format_rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00Z"), 1_767_225_600);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:10.5Z"), 10);
        assert_eq!(parse_rfc3339("2026-01-01T02:00:00+02:00"), 1_767_225_600);
        assert_eq!(parse_rfc3339(ZERO_TIME), -62_135_596_800);
        assert_eq!(parse_rfc3339("junk"), 0);
        let now = now_rfc3339();
        assert!(now.ends_with('Z') && now.len() == 30, "{now}");
    }

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert!(a.len() == 64 && a.chars().all(|c| c.is_ascii_hexdigit()) && a != b);
    }
}
