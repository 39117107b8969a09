//! IPv6 address management for a bridge network with `--ipv6` (pure: berthd
//! and the simulator share it), as Docker's: the gateway takes the first
//! address after the subnet's own (`fd00:1::1`), containers the lowest free
//! one after it, an address is never handed out twice while in use. A
//! network created with `--ipv6` but no IPv6 subnet gets the next /64 of a
//! unique local /48 made from the daemon's ID (Docker 27+).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipam6 {
    pub network: Ipv6Addr,
    pub prefix: u8,
    pub gateway: Ipv6Addr,
    used: BTreeSet<u128>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Ipam6Error {
    BadSubnet(String),
    Exhausted(String),
    Outside(Ipv6Addr),
    InUse(Ipv6Addr),
}

impl std::fmt::Display for Ipam6Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ipam6Error::BadSubnet(s) => write!(f, "invalid subnet {s}: it must be an IPv6 CIDR such as fd00:1::/64"),
            Ipam6Error::Exhausted(s) => write!(f, "no available IPv6 addresses on this network's address pools: {s}"),
            Ipam6Error::Outside(ip) => write!(f, "no configured subnet or ip-range contain the IP address {ip}"),
            Ipam6Error::InUse(_) => write!(f, "Address already in use"),
        }
    }
}

impl std::error::Error for Ipam6Error {}

fn mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    }
}

impl Ipam6 {
    /// From "fd00:1::/64" (the address is masked to its network); the
    /// gateway is the subnet's first address after its own.
    pub fn new(subnet: &str) -> Result<Self, Ipam6Error> {
        let bad = || Ipam6Error::BadSubnet(subnet.to_string());
        let (addr, prefix) = subnet.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        // At least a gateway and one container; a v4-mapped block is not IPv6.
        if !(16..=126).contains(&prefix) || addr.to_ipv4_mapped().is_some() {
            return Err(bad());
        }
        let network = u128::from(addr) & mask(prefix);
        Ok(Ipam6 { network: network.into(), prefix, gateway: (network + 1).into(), used: BTreeSet::new() })
    }

    pub fn subnet(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }

    fn last(&self) -> u128 {
        u128::from(self.network) | !mask(self.prefix)
    }

    /// Inside the subnet, and not the subnet's own address (the
    /// Subnet-Router anycast address, never a host's).
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        let a = u128::from(ip);
        a & mask(self.prefix) == u128::from(self.network) && a != u128::from(self.network)
    }

    fn taken(&self, a: u128) -> bool {
        a == u128::from(self.gateway) || self.used.contains(&a)
    }

    /// The lowest free address after the subnet's own.
    pub fn allocate(&mut self) -> Result<Ipv6Addr, Ipam6Error> {
        let first = u128::from(self.network) + 1;
        // Containers on one bridge: a scan of at most a few thousand.
        let mut a = first;
        loop {
            if !self.taken(a) {
                self.used.insert(a);
                return Ok(a.into());
            }
            if a == self.last() {
                return Err(Ipam6Error::Exhausted(self.subnet()));
            }
            a += 1;
        }
    }

    /// Takes the address a client asked for (`--ip6`).
    pub fn claim(&mut self, ip: Ipv6Addr) -> Result<(), Ipam6Error> {
        if !self.contains(ip) || ip == self.gateway {
            return Err(Ipam6Error::Outside(ip));
        }
        if !self.used.insert(ip.into()) {
            return Err(Ipam6Error::InUse(ip));
        }
        Ok(())
    }

    /// Marks an address in use (containers found at daemon start).
    pub fn reserve(&mut self, ip: Ipv6Addr) {
        self.used.insert(ip.into());
    }

    pub fn release(&mut self, ip: Ipv6Addr) {
        self.used.remove(&u128::from(ip));
    }

    /// Do the two subnets share any address?
    pub fn overlaps(&self, other: &Ipam6) -> bool {
        let m = mask(self.prefix.min(other.prefix));
        u128::from(self.network) & m == u128::from(other.network) & m
    }
}

/// The `n`th /64 of the daemon's unique local /48: `fd` and 40 bits of the
/// SHA-256 of its ID (RFC 4193's global ID, derived as Docker derives it
/// from something stable of the host), then `n` as the subnet ID.
pub fn default_subnet(daemon_id: &str, n: u16) -> String {
    let h = Sha256::digest(daemon_id.as_bytes());
    let seg = |a: u8, b: u8| u16::from_be_bytes([a, b]);
    let addr = Ipv6Addr::new(seg(0xfd, h[0]), seg(h[1], h[2]), seg(h[3], h[4]), n, 0, 0, 0, 0);
    format!("{addr}/64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_the_first_address_and_containers_follow() {
        let mut ipam = Ipam6::new("fd00:1::/64").unwrap();
        assert_eq!(ipam.gateway, "fd00:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ipam.allocate().unwrap(), "fd00:1::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ipam.allocate().unwrap(), "fd00:1::3".parse::<Ipv6Addr>().unwrap());
        ipam.release("fd00:1::2".parse().unwrap());
        assert_eq!(ipam.allocate().unwrap(), "fd00:1::2".parse::<Ipv6Addr>().unwrap());
        // The address is masked to its network, as Docker's IPAM does.
        assert_eq!(Ipam6::new("fd00:1::5/64").unwrap().subnet(), "fd00:1::/64");
    }

    #[test]
    fn asked_addresses_must_be_free_and_inside() {
        let mut ipam = Ipam6::new("fd00:1::/120").unwrap();
        ipam.claim("fd00:1::20".parse().unwrap()).unwrap();
        assert_eq!(ipam.claim("fd00:1::20".parse().unwrap()), Err(Ipam6Error::InUse("fd00:1::20".parse().unwrap())));
        for outside in ["fd00:2::20", "fd00:1::", "fd00:1::1", "fd00:1::100"] {
            let ip: Ipv6Addr = outside.parse().unwrap();
            assert_eq!(ipam.claim(ip), Err(Ipam6Error::Outside(ip)), "{outside}");
        }
        // The last address is a host's (IPv6 has no broadcast address).
        ipam.claim("fd00:1::ff".parse().unwrap()).unwrap();
    }

    #[test]
    fn a_full_subnet_says_so() {
        let mut ipam = Ipam6::new("fd00:1::/126").unwrap();
        assert_eq!(ipam.allocate().unwrap(), "fd00:1::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ipam.allocate().unwrap(), "fd00:1::3".parse::<Ipv6Addr>().unwrap());
        assert!(matches!(ipam.allocate(), Err(Ipam6Error::Exhausted(_))));
    }

    #[test]
    fn bad_subnets_are_refused() {
        for bad in ["fd00::", "fd00::/127", "fd00::/8", "10.0.0.0/8", "::ffff:10.0.0.0/104", "fd00::/x"] {
            assert!(Ipam6::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlaps_are_seen_whichever_is_bigger() {
        let a = Ipam6::new("fd00:1::/64").unwrap();
        assert!(a.overlaps(&Ipam6::new("fd00:1::/48").unwrap()));
        assert!(a.overlaps(&Ipam6::new("fd00:1::100/120").unwrap()));
        assert!(!a.overlaps(&Ipam6::new("fd00:2::/64").unwrap()));
    }

    #[test]
    fn default_subnets_are_unique_local_and_stable_per_daemon() {
        let a = default_subnet("ABCD:EFGH", 0);
        assert!(a.starts_with("fd") && a.ends_with("::/64"), "{a}");
        assert_eq!(a, default_subnet("ABCD:EFGH", 0));
        assert_ne!(a, default_subnet("ABCD:EFGH", 1));
        assert_ne!(a, default_subnet("other", 0));
        let ipam = Ipam6::new(&default_subnet("ABCD:EFGH", 1)).unwrap();
        assert_eq!(ipam.prefix, 64);
    }
}
