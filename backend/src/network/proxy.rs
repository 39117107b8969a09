//! The userland proxy (docker-proxy's job): DNAT does not apply to traffic
//! to 127.0.0.1, so berthd listens on each published host port itself and
//! forwards connections (TCP) or datagrams (UDP) to the container.
//! Listening also claims the port, so a port already in use is found before
//! any rule is written.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// How long a UDP "connection" (one client address) is kept without traffic,
/// as docker-proxy does.
const UDP_IDLE: Duration = Duration::from_secs(90);

/// A listening proxy; dropping it stops it.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `host_ip:host_port` (port 0: a free one) for `proto` ("tcp" or
/// "udp") and forwards to `target`.
pub async fn start(proto: &str, host_ip: Ipv4Addr, host_port: u16, target: SocketAddr) -> std::io::Result<Proxy> {
    match proto {
        "udp" => start_udp(host_ip, host_port, target).await,
        _ => start_tcp(host_ip, host_port, target).await,
    }
}

async fn start_tcp(host_ip: Ipv4Addr, host_port: u16, target: SocketAddr) -> std::io::Result<Proxy> {
    let listener = TcpListener::bind((host_ip, host_port)).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Ok(Proxy { port, task })
}

/// One socket towards the container per client address; replies go back
/// from the listening socket, so the client sees the port it sent to.
async fn start_udp(host_ip: Ipv4Addr, host_port: u16, target: SocketAddr) -> std::io::Result<Proxy> {
    let listener = Arc::new(UdpSocket::bind((host_ip, host_port)).await?);
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let mut flows: HashMap<SocketAddr, (Arc<UdpSocket>, JoinHandle<()>)> = HashMap::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, client)) = listener.recv_from(&mut buf).await else { continue };
            flows.retain(|_, (_, t)| !t.is_finished());
            let up = match flows.entry(client) {
                Entry::Occupied(o) => o.get().0.clone(),
                Entry::Vacant(v) => {
                    let Ok(up) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else { continue };
                    if up.connect(target).await.is_err() {
                        continue;
                    }
                    let up = Arc::new(up);
                    let (back, reply_to) = (listener.clone(), up.clone());
                    let t = tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, reply_to.recv(&mut buf)).await {
                            let _ = back.send_to(&buf[..n], client).await;
                        }
                    });
                    v.insert((up.clone(), t));
                    up
                }
            };
            let _ = up.send(&buf[..n]).await;
        }
    });
    Ok(Proxy { port, task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_bytes_both_ways_and_claims_the_port() {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = backend.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = backend.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf.iter().rev().copied().collect::<Vec<_>>()).await.unwrap();
        });
        let p = start("tcp", Ipv4Addr::LOCALHOST, 0, target).await.unwrap();
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, p.port)).await.unwrap();
        c.write_all(b"abcd").await.unwrap();
        let mut back = [0u8; 4];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"dcba");
        // The port is taken while the proxy runs.
        assert!(start("tcp", Ipv4Addr::LOCALHOST, p.port, target).await.is_err());
    }

    #[tokio::test]
    async fn udp_datagrams_reach_the_target_and_replies_come_back_from_the_published_port() {
        let backend = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = backend.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                let (n, from) = backend.recv_from(&mut buf).await.unwrap();
                let reply: Vec<u8> = buf[..n].iter().rev().copied().collect();
                backend.send_to(&reply, from).await.unwrap();
            }
        });
        let p = start("udp", Ipv4Addr::LOCALHOST, 0, target).await.unwrap();
        let published = SocketAddr::from((Ipv4Addr::LOCALHOST, p.port));
        for msg in [&b"ping"[..], b"again"] {
            let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            client.send_to(msg, published).await.unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf)).await.unwrap().unwrap();
            assert_eq!(from, published);
            assert_eq!(buf[..n].to_vec(), msg.iter().rev().copied().collect::<Vec<_>>());
        }
        assert!(start("udp", Ipv4Addr::LOCALHOST, p.port, target).await.is_err());
    }
}
