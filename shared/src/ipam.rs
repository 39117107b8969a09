//! Address management for a bridge network (pure: berthd and the simulator
//! share it): the gateway takes the first
//! address, containers the lowest free one after it, and an address is never
//! handed out twice while in use.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipam {
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    used: BTreeSet<u32>,
    /// `--ip-range`: where addresses are handed out from (a requested
    /// `--ip` may still be anywhere in the subnet, as Docker's IPAM).
    range: Option<(Ipv4Addr, u8)>,
    /// `--aux-address name=ip`: addresses never handed out.
    aux: BTreeMap<String, Ipv4Addr>,
}

/// A CIDR block: its first address and prefix length.
fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let prefix: u8 = prefix.parse().ok()?;
    (prefix <= 32).then_some(())?;
    Some((addr.parse().ok()?, prefix))
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum IpamError {
    BadSubnet(String),
    Exhausted(String),
    /// A requested address outside the subnet (or its network, broadcast
    /// or gateway address).
    Outside(Ipv4Addr),
    /// A requested address another endpoint has.
    InUse(Ipv4Addr),
}

impl std::fmt::Display for IpamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpamError::BadSubnet(s) => write!(f, "invalid subnet {s}"),
            IpamError::Exhausted(s) => write!(f, "no available IPv4 addresses on this network's address pools: {s}"),
            IpamError::Outside(ip) => write!(f, "no configured subnet or ip-range contain the IP address {ip}"),
            IpamError::InUse(_) => write!(f, "Address already in use"),
        }
    }
}

impl std::error::Error for IpamError {}

impl Ipam {
    /// From "172.17.0.0/16"; the gateway is the first host address.
    pub fn new(subnet: &str) -> Result<Self, IpamError> {
        let bad = || IpamError::BadSubnet(subnet.to_string());
        let (addr, prefix) = subnet.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let network = u32::from(addr) & mask(prefix);
        Ok(Ipam {
            network: network.into(),
            prefix,
            gateway: (network + 1).into(),
            used: BTreeSet::new(),
            range: None,
            aux: BTreeMap::new(),
        })
    }

    /// `--ip-range`, checked as Docker checks it (with its messages).
    pub fn set_range(&mut self, text: &str) -> Result<(), String> {
        let (addr, prefix) = parse_cidr(text).ok_or_else(|| format!("invalid ip-range {text}: not an IPv4 CIDR block"))?;
        let subnet = self.subnet();
        if prefix < self.prefix {
            return Err(format!("invalid ip-range {text}: CIDR block is bigger than its parent subnet {subnet}"));
        }
        let masked = Ipv4Addr::from(u32::from(addr) & mask(prefix));
        if masked != addr {
            return Err(format!("invalid ip-range {text}: it should be {masked}/{prefix}"));
        }
        if u32::from(addr) & mask(self.prefix) != u32::from(self.network) {
            return Err(format!("invalid ip-range {text}: parent subnet {subnet} doesn't contain ip-range"));
        }
        self.range = Some((addr, prefix));
        Ok(())
    }

    /// Where Docker's IPAM puts a gateway nobody asked for: the first
    /// address it hands out, which is in the `--ip-range` when there is one
    /// (10.5.0.128 for 10.5.0.0/24 with 10.5.0.128/25), else the subnet's
    /// first host address.
    pub fn default_gateway(&self) -> Ipv4Addr {
        let (net, broadcast) = self.bounds();
        match self.range {
            Some((a, _)) => u32::from(a).clamp(net + 1, broadcast - 1).into(),
            None => (net + 1).into(),
        }
    }

    /// The `--ip-range`, if any ("10.5.0.128/25").
    pub fn range(&self) -> Option<String> {
        self.range.map(|(a, p)| format!("{a}/{p}"))
    }

    /// `--aux-address name=ip`: reserved, never handed out or claimed.
    pub fn add_aux(&mut self, name: &str, ip: Ipv4Addr) -> Result<(), String> {
        if u32::from(ip) & mask(self.prefix) != u32::from(self.network) {
            return Err(format!("invalid auxiliary address {name}: parent subnet {} doesn't contain this address", self.subnet()));
        }
        self.aux.insert(name.to_string(), ip);
        Ok(())
    }

    /// The auxiliary addresses by name.
    pub fn aux(&self) -> &BTreeMap<String, Ipv4Addr> {
        &self.aux
    }

    fn taken(&self, a: u32) -> bool {
        a == u32::from(self.gateway) || self.used.contains(&a) || self.aux.values().any(|x| u32::from(*x) == a)
    }

    pub fn subnet(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }

    fn bounds(&self) -> (u32, u32) {
        let n = u32::from(self.network);
        let size = 1u32 << (32 - self.prefix);
        (n, n + size - 1)
    }

    /// The lowest free address (after the gateway), in the ip-range if
    /// the network has one.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, IpamError> {
        let (net, broadcast) = self.bounds();
        let (lo, hi) = match self.range {
            Some((a, p)) => {
                let start = u32::from(a);
                (start.max(net + 1), (start | !mask(p)).min(broadcast - 1))
            }
            None => (net + 1, broadcast - 1),
        };
        let free = (lo..=hi).find(|a| !self.taken(*a));
        match free {
            Some(a) => {
                self.used.insert(a);
                Ok(a.into())
            }
            None => Err(IpamError::Exhausted(self.subnet())),
        }
    }

    /// Takes the address a client asked for (`--ip`).
    pub fn claim(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        if !self.contains(ip) || ip == self.gateway {
            return Err(IpamError::Outside(ip));
        }
        if self.taken(ip.into()) || !self.used.insert(ip.into()) {
            return Err(IpamError::InUse(ip));
        }
        Ok(())
    }

    /// Marks an address in use (containers found at daemon start).
    pub fn reserve(&mut self, ip: Ipv4Addr) {
        self.used.insert(ip.into());
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    /// Do the two subnets share any address?
    pub fn overlaps(&self, other: &Ipam) -> bool {
        let p = self.prefix.min(other.prefix);
        let mask = u32::MAX << (32 - p);
        u32::from(self.network) & mask == u32::from(other.network) & mask
    }

    /// Is this address inside the subnet (network and broadcast excluded)?
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let (net, broadcast) = self.bounds();
        (net + 1..broadcast).contains(&u32::from(ip))
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

/// A MAC address as clients write it (`02:42:ac:11:00:02`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// Docker's MAC for a container address: 02:42 followed by the IPv4 bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_range_narrows_allocation_and_aux_addresses_are_never_handed_out() {
        let mut ipam = Ipam::new("10.5.0.0/24").unwrap();
        ipam.set_range("10.5.0.128/30").unwrap();
        ipam.add_aux("router", "10.5.0.129".parse().unwrap()).unwrap();
        assert_eq!(ipam.range().as_deref(), Some("10.5.0.128/30"));
        let got: Vec<Ipv4Addr> = (0..3).map(|_| ipam.allocate().unwrap()).collect();
        assert_eq!(got, ["10.5.0.128", "10.5.0.130", "10.5.0.131"].map(|a| a.parse::<Ipv4Addr>().unwrap()));
        assert!(matches!(ipam.allocate(), Err(IpamError::Exhausted(_))));
        // A requested address may be outside the range, never an aux one.
        assert!(ipam.claim("10.5.0.7".parse().unwrap()).is_ok());
        assert_eq!(ipam.claim("10.5.0.129".parse().unwrap()), Err(IpamError::InUse("10.5.0.129".parse().unwrap())));
        assert_eq!(
            Ipam::new("10.5.0.0/24").unwrap().set_range("10.5.0.0/16").unwrap_err(),
            "invalid ip-range 10.5.0.0/16: CIDR block is bigger than its parent subnet 10.5.0.0/24"
        );
        assert_eq!(
            Ipam::new("10.5.0.0/24").unwrap().set_range("10.5.0.3/30").unwrap_err(),
            "invalid ip-range 10.5.0.3/30: it should be 10.5.0.0/30"
        );
        assert_eq!(
            Ipam::new("10.5.0.0/24").unwrap().set_range("10.6.0.0/25").unwrap_err(),
            "invalid ip-range 10.6.0.0/25: parent subnet 10.5.0.0/24 doesn't contain ip-range"
        );
        assert!(Ipam::new("10.5.0.0/24").unwrap().add_aux("x", "10.9.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn macs_parse_as_clients_write_them() {
        assert_eq!(parse_mac("02:42:AC:11:00:2a"), Some([2, 0x42, 0xac, 0x11, 0, 0x2a]));
        for bad in ["", "02:42:ac:11:00", "02:42:ac:11:00:2g", "0242ac11002a", "2:42:ac:11:00:2a"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(mac_string(parse_mac("02:42:ac:11:00:2a").unwrap()), "02:42:ac:11:00:2a");
    }

    #[test]
    fn a_requested_address_is_taken_once_and_only_inside_the_subnet() {
        let mut ipam = Ipam::new("10.7.0.0/24").unwrap();
        ipam.claim(Ipv4Addr::new(10, 7, 0, 50)).unwrap();
        assert_eq!(ipam.claim(Ipv4Addr::new(10, 7, 0, 50)), Err(IpamError::InUse(Ipv4Addr::new(10, 7, 0, 50))));
        for outside in [Ipv4Addr::new(10, 7, 1, 5), Ipv4Addr::new(10, 7, 0, 1), Ipv4Addr::new(10, 7, 0, 255), Ipv4Addr::new(10, 7, 0, 0)] {
            assert_eq!(ipam.claim(outside), Err(IpamError::Outside(outside)));
        }
        assert_eq!(IpamError::InUse(Ipv4Addr::new(10, 7, 0, 50)).to_string(), "Address already in use");
        // The allocator steps over it.
        for _ in 0..48 {
            ipam.allocate().unwrap();
        }
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 7, 0, 51));
    }

    #[test]
    fn an_unasked_gateway_is_the_first_address_of_the_ip_range() {
        let mut ipam = Ipam::new("10.77.0.0/24").unwrap();
        assert_eq!(ipam.default_gateway(), Ipv4Addr::new(10, 77, 0, 1));
        ipam.set_range("10.77.0.128/25").unwrap();
        assert_eq!(ipam.default_gateway(), Ipv4Addr::new(10, 77, 0, 128));
        ipam.gateway = ipam.default_gateway();
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 77, 0, 129));
        let mut ipam = Ipam::new("10.78.0.0/24").unwrap();
        ipam.set_range("10.78.0.0/25").unwrap();
        assert_eq!(ipam.default_gateway(), Ipv4Addr::new(10, 78, 0, 1));
    }

    #[test]
    fn containers_get_addresses_in_order_after_the_gateway() {
        let mut ipam = Ipam::new("172.17.0.0/16").unwrap();
        assert_eq!(ipam.gateway, Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(172, 17, 0, 3));
        ipam.release(Ipv4Addr::new(172, 17, 0, 2));
        // A released address is reused, lowest first.
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(172, 17, 0, 4));
    }

    #[test]
    fn a_full_subnet_is_an_error_not_a_duplicate() {
        let mut ipam = Ipam::new("10.9.0.0/30").unwrap();
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 9, 0, 2));
        assert!(matches!(ipam.allocate(), Err(IpamError::Exhausted(_))));
    }

    #[test]
    fn overlapping_subnets_are_found_whatever_their_sizes() {
        let a = Ipam::new("172.18.0.0/16").unwrap();
        assert!(a.overlaps(&Ipam::new("172.18.5.0/24").unwrap()));
        assert!(Ipam::new("172.0.0.0/8").unwrap().overlaps(&a));
        assert!(!a.overlaps(&Ipam::new("172.19.0.0/16").unwrap()));
        assert!(a.contains(Ipv4Addr::new(172, 18, 3, 4)) && !a.contains(Ipv4Addr::new(172, 18, 255, 255)));
    }

    #[test]
    fn macs_are_dockers_02_42_plus_the_address() {
        assert_eq!(mac_string(mac_for(Ipv4Addr::new(172, 17, 0, 2))), "02:42:ac:11:00:02");
        assert!(Ipam::new("172.17.0.0").is_err());
        assert!(Ipam::new("nope/16").is_err());
    }
}
