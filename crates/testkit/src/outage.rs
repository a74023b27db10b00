//! A database outage on demand: a TCP proxy on loopback between the components under test and
//! the real Postgres server. [`OutageProxy::cut`] resets every open connection and refuses new
//! ones, which is what a client sees while Postgres restarts; [`OutageProxy::restore`] accepts
//! again. Only the connections through the proxy are affected, so tests running beside it on
//! the same server are not.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxy; stops accepting and closes every connection when dropped.
pub struct OutageProxy {
    /// `true` while the database is "down".
    down: Arc<watch::Sender<bool>>,
    listen: SocketAddr,
    upstream: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl OutageProxy {
    /// A proxy to `upstream_url`'s host and port; [`OutageProxy::url`] rewrites a URL of that
    /// server to go through it.
    pub async fn start(upstream_url: &str) -> OutageProxy {
        let upstream = host_port(upstream_url);
        let (down, _) = watch::channel(false);
        let mut proxy = OutageProxy {
            down: Arc::new(down),
            listen: "127.0.0.1:0".parse().expect("a socket address"),
            upstream,
            acceptor: None,
        };
        proxy.accept().await;
        proxy
    }

    /// `url` (a database on the upstream server) through the proxy.
    pub fn url(&self, url: &str) -> String {
        url.replacen(&self.upstream.to_string(), &self.listen.to_string(), 1)
    }

    /// Reset every connection through the proxy and refuse new ones until
    /// [`OutageProxy::restore`].
    pub async fn cut(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.abort();
            let _ = acceptor.await;
        }
        self.down.send_replace(true);
    }

    /// Accept connections again, on the same port.
    pub async fn restore(&mut self) {
        self.down.send_replace(false);
        self.accept().await;
    }

    async fn accept(&mut self) {
        let listener = TcpListener::bind(self.listen)
            .await
            .expect("the proxy's port is free again");
        self.listen = listener.local_addr().expect("a bound address");
        let upstream = self.upstream;
        let down = self.down.clone();
        self.acceptor = Some(tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let down = down.subscribe();
                tokio::spawn(relay(client, upstream, down));
            }
        }));
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.down.send_replace(true);
        if let Some(acceptor) = &self.acceptor {
            acceptor.abort();
        }
    }
}

/// Copy bytes both ways until either side closes or the proxy goes down; going down resets
/// the client's connection (`SO_LINGER` 0), as a server that died would.
async fn relay(mut client: TcpStream, upstream: SocketAddr, mut down: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = down.wait_for(|down| *down) => {
            #[allow(deprecated)]
            let _ = client.set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

/// The `host:port` of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host_port = host_port.replace("localhost", "127.0.0.1");
    let with_port = if host_port.contains(':') {
        host_port
    } else {
        format!("{host_port}:5432")
    };
    with_port
        .parse()
        .unwrap_or_else(|e| panic!("{url}: not a host:port the proxy can reach: {e}"))
}
