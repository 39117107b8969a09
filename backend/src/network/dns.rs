//! The embedded DNS server of user-defined networks, as Docker's at
//! 127.0.0.11: a container resolves the names (and aliases) of the
//! containers it shares a user-defined network with; other names are
//! forwarded to the host's nameservers.
//!
//! The socket is bound inside the container's network namespace (by a
//! thread that enters it) and served by berthd's runtime, so nothing runs in
//! the container and no rule is needed to reach it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{rdata, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::netlink::{self, NetError};

/// Where containers find the server (their resolv.conf says so).
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const TTL: u32 = 600;

/// Looks a name up among the querying container's peers: `None` when no
/// container answers to it (the query is forwarded), else its addresses
/// (IPv6 ones too, on `--ipv6` networks).
pub type Resolve = Arc<dyn Fn(&str) -> Option<Vec<IpAddr>> + Send + Sync>;

/// A running server; dropping it stops it.
#[derive(Debug)]
pub struct DnsServer {
    task: JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Answer with these bytes.
    Local(Vec<u8>),
    /// Not a container's name: ask the host's nameservers.
    Forward,
}

/// Decides the reply to a query (pure: the tests call it directly).
pub fn answer(query: &[u8], resolve: &Resolve) -> Reply {
    let Ok(req) = Message::from_vec(query) else {
        // Not even a header: nothing sensible to answer.
        return Reply::Local(Vec::new());
    };
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_queries(req.queries.iter().cloned());
    let Some(q) = req.queries.first().filter(|_| req.metadata.message_type == MessageType::Query && req.metadata.op_code == OpCode::Query)
    else {
        resp.metadata.response_code = ResponseCode::FormErr;
        return Reply::Local(resp.to_vec().unwrap_or_default());
    };
    let name = q.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let Some(addrs) = resolve(&name) else { return Reply::Forward };
    for ip in addrs {
        let data = match (q.query_type(), ip) {
            (RecordType::A, IpAddr::V4(v4)) => RData::A(rdata::A(v4)),
            (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(rdata::AAAA(v6)),
            _ => continue,
        };
        resp.add_answer(Record::from_rdata(q.name().clone(), TTL, data));
    }
    // Other types for a container's name: no records, no error (so the
    // client does not go on to ask elsewhere).
    Reply::Local(resp.to_vec().unwrap_or_default())
}

/// The host's nameservers that a forwarded query goes to (loopback ones are
/// left out, as Docker does).
pub fn upstream_servers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .filter(|ip| !ip.is_loopback())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

async fn forward(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { "[::]:0".parse().ok()? };
        let Ok(sock) = UdpSocket::bind(bind).await else { continue };
        if sock.send_to(query, server).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf)).await {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

fn servfail(query: &[u8]) -> Vec<u8> {
    match Message::from_vec(query) {
        Ok(req) => {
            let mut m = Message::error_msg(req.metadata.id, req.metadata.op_code, ResponseCode::ServFail);
            m.add_queries(req.queries.iter().cloned());
            m.to_vec().unwrap_or_default()
        }
        Err(_) => Vec::new(),
    }
}

/// Binds 127.0.0.11:53 in the namespace at `netns` and serves it.
pub fn start(netns: &Path, resolve: Resolve) -> Result<DnsServer, NetError> {
    let sock = netlink::in_netns(netns, || {
        let s = std::net::UdpSocket::bind((ADDRESS, 53))?;
        s.set_nonblocking(true)?;
        Ok::<_, std::io::Error>(s)
    })?
    .map_err(|source| NetError::Io { what: format!("binding {ADDRESS}:53 in {}", netns.display()), source })?;
    let sock = Arc::new(UdpSocket::from_std(sock).map_err(|source| NetError::Io { what: "dns socket".into(), source })?);
    let upstream = upstream_servers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, client)) = sock.recv_from(&mut buf).await else { continue };
            let query = buf[..n].to_vec();
            match answer(&query, &resolve) {
                Reply::Local(bytes) if bytes.is_empty() => {}
                Reply::Local(bytes) => {
                    let _ = sock.send_to(&bytes, client).await;
                }
                Reply::Forward => {
                    let (sock, upstream) = (sock.clone(), upstream.clone());
                    tokio::spawn(async move {
                        let reply = forward(&query, &upstream).await.unwrap_or_else(|| servfail(&query));
                        let _ = sock.send_to(&reply, client).await;
                    });
                }
            }
        }
    });
    Ok(DnsServer { task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_str(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn peers() -> Resolve {
        Arc::new(|n: &str| match n {
            "web" | "www" => Some(vec![Ipv4Addr::new(172, 18, 0, 2).into()]),
            "six" => Some(vec![Ipv4Addr::new(172, 19, 0, 2).into(), "fd00:1::2".parse::<std::net::Ipv6Addr>().unwrap().into()]),
            _ => None,
        })
    }

    #[test]
    fn a_peer_is_answered_with_its_address_whatever_the_case() {
        let Reply::Local(bytes) = answer(&query("WEB.", RecordType::A), &peers()) else { panic!("forwarded") };
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let ips: Vec<_> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        assert_eq!(ips, vec![Ipv4Addr::new(172, 18, 0, 2)]);
    }

    #[test]
    fn a_peers_aaaa_is_empty_and_strangers_are_forwarded() {
        let Reply::Local(bytes) = answer(&query("www", RecordType::AAAA), &peers()) else { panic!("forwarded") };
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!((m.metadata.response_code, m.answers.len()), (ResponseCode::NoError, 0));
        assert_eq!(answer(&query("example.org.", RecordType::A), &peers()), Reply::Forward);
    }

    #[test]
    fn a_peer_on_an_ipv6_network_has_its_aaaa_and_its_a() {
        let records = |t| {
            let Reply::Local(bytes) = answer(&query("six", t), &peers()) else { panic!("forwarded") };
            Message::from_vec(&bytes).unwrap().answers.iter().map(|r| r.data.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(records(RecordType::AAAA), vec!["fd00:1::2"]);
        assert_eq!(records(RecordType::A), vec!["172.19.0.2"]);
    }

    #[test]
    fn garbage_gets_no_answer_and_loopback_nameservers_are_not_upstream() {
        assert_eq!(answer(&[1, 2, 3], &peers()), Reply::Local(Vec::new()));
        let up = upstream_servers("search lab\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n# nameserver 9.9.9.9\n");
        assert_eq!(up, vec!["10.0.0.2:53".parse::<SocketAddr>().unwrap()]);
    }
}
