//! The accept loop: every connection the API takes, plain or TLS, is bounded in
//! number and in time, so that idle, half-sent or slow clients cannot hold the
//! process's file descriptors.
//!
//! - At most `max_connections` are open at once; past that, new ones wait in the
//!   kernel's backlog (not in this process) until one closes.
//! - A TLS handshake has [`HANDSHAKE`] to finish.
//! - A request's head (its line and headers) has `header_timeout` to arrive, and
//!   a keep-alive connection waiting for its next request is cut after the same
//!   time (hyper starts that timer as soon as a connection is idle).
//! - A request's body has `body_timeout` to arrive in full (see `read_body`).
//! - On shutdown, open connections finish the request in hand, within
//!   [`DRAIN`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE: Duration = Duration::from_secs(10);
/// How long open connections get to finish at shutdown.
pub const DRAIN: Duration = Duration::from_secs(5);

/// The limits of [`serve_connections`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Accepts connections on `tcp` (TLS first when `tls` is given) and serves
/// `router` on each until `shutdown` resolves.
pub async fn serve_connections(
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        // A permit first: past the cap, connections wait unaccepted.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            a = tcp.accept() => match a {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (tls, router, http, stop) = (
            tls.clone(),
            router.clone(),
            Arc::clone(&http),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => connection(&http, s, router, peer, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => connection(&http, stream, router, peer, stop).await,
            }
        });
    }
    drop(tcp);
    stop_tx.send(true).ok();
    // Every connection holds a permit: all of them back means all are closed.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?} at shutdown");
    }
    Ok(())
}

async fn connection<IO>(
    http: &hyper::server::conn::http1::Builder,
    io: IO,
    router: axum::Router,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let conn = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(DRAIN, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        // Timeouts and clients that hang up are routine: not warnings.
        tracing::debug!(%peer, error = %e, "connection closed");
    }
}
