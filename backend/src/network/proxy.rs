//! The userland proxy (docker-proxy's job): DNAT does not apply to traffic
//! to 127.0.0.1, so berthd listens on each published host port itself and
//! forwards connections to the container. Listening also claims the port,
//! so a port already in use is found before any rule is written.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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

/// Binds `host_ip:host_port` (port 0: a free one) and forwards to `target`.
pub async fn start(host_ip: Ipv4Addr, host_port: u16, target: SocketAddr) -> std::io::Result<Proxy> {
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
        let p = start(Ipv4Addr::LOCALHOST, 0, target).await.unwrap();
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, p.port)).await.unwrap();
        c.write_all(b"abcd").await.unwrap();
        let mut back = [0u8; 4];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"dcba");
        // The port is taken while the proxy runs.
        assert!(start(Ipv4Addr::LOCALHOST, p.port, target).await.is_err());
    }
}
