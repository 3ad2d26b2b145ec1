//! `cache_serve`'s connections: HTTP/1.1, accepted up to a cap, each with a
//! deadline for its request heads, and given a bounded time to finish on
//! shutdown.
//!
//! Without these a client that opens a connection and sends half a request
//! head (or nothing at all) holds it, and a file descriptor, for ever: a few
//! hundred such clients exhaust the process's descriptors and real requests
//! time out, and a SIGTERM waits for them past systemd's stop timeout.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How `cache_serve` bounds its connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client has to send a request's head, from the moment the
    /// connection is ready for one: this also closes a keep-alive
    /// connection left idle that long.
    pub header_read: Duration,
    /// Connections served at once; further clients wait in the kernel's
    /// accept queue until one closes.
    pub max_connections: usize,
    /// After the stop signal, how long the requests under way get before
    /// their connections are closed.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(30),
            max_connections: connection_cap(),
            // Under systemd's 90 s stop timeout, with room for the warm
            // beside the server to record its run.
            drain: Duration::from_secs(30),
        }
    }
}

/// At most 1,024 connections, and never so many that the process runs out
/// of file descriptors: each connection may need a second one to the site
/// (a request passed on), and 64 stay free for the cache, the database and
/// the listener, under the soft `RLIMIT_NOFILE`.
fn connection_cap() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, nothing else.
    let soft = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX),
        _ => 1024,
    };
    (soft.saturating_sub(64) / 2).clamp(8, 1024)
}

/// Serves `service` on the connections of `listener` until `shutdown`
/// resolves; then stops accepting, lets each connection finish the request
/// under way (an idle one closes at once) for up to `limits.drain`, and
/// closes what is left.
pub(super) async fn serve<S, F>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) where
    S: Fn(hyper::Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Response, Infallible>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut warned_full: Option<Instant> = None;
    let mut warned_accept: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        if permits.available_permits() == 0
            && warned_full.is_none_or(|at| at.elapsed() > Duration::from_secs(60))
        {
            tracing::warn!(
                "{} connections open, the most served at once; new clients wait until one closes",
                limits.max_connections
            );
            warned_full = Some(Instant::now());
        }
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_per_connection(&e) => {
                    // A client gone before its accept.
                    tracing::debug!("accept: {e}");
                    continue;
                }
                Err(e) => {
                    // No descriptor left (a low `ulimit -n` and a
                    // `--max-connections` above it): said, then retried.
                    if warned_accept.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!(
                            "cannot accept a connection: {e}; lower --max-connections or raise `ulimit -n`"
                        );
                        warned_accept = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let mut closed = closed.clone();
        connections.spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(service));
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = async { closed.wait_for(|closing| *closing).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection: {e}");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout(limits.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connection(s) still busy {} s after the stop signal; closing them",
            connections.len(),
            limits.drain.as_secs()
        );
        connections.shutdown().await;
    }
}

/// An accept error that concerns one client only.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// A request of hyper's as the router takes it.
pub(super) fn into_axum(request: hyper::Request<Incoming>) -> axum::extract::Request {
    request.map(Body::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Far beyond any of the limits below: a test that reaches it failed.
    const PATIENCE: Duration = Duration::from_secs(30);

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

    /// Serves `answer` under `limits` on a port the OS picks; the server
    /// stops when the returned sender sends (or is dropped).
    async fn start<F>(
        limits: Limits,
        answer: impl Fn() -> F + Clone + Send + Sync + 'static,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )
    where
        F: Future<Output = Response> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = move |_request| {
            let answer = answer.clone();
            async move { Ok::<_, Infallible>(answer().await) }
        };
        let served = tokio::spawn(serve(listener, service, limits, async {
            let _ = stopped.await;
        }));
        (address, stop, served)
    }

    async fn ok() -> Response {
        Response::new(Body::from("ok"))
    }

    /// Reads until the server closes the connection; the bytes read.
    async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
        let mut read = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut read))
            .await
            .expect("the server closed the connection");
        read
    }

    async fn answered(address: std::net::SocketAddr) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&until_closed(&mut stream).await).into_owned()
    }

    #[test]
    fn the_cap_leaves_a_descriptor_to_the_site_for_each_connection_and_64_besides() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        let cap = connection_cap();
        assert!(cap <= 1024);
        if limit.rlim_cur >= 80 {
            assert!(
                2 * cap as u64 + 64 <= limit.rlim_cur,
                "{cap} of {}",
                limit.rlim_cur
            );
        }
    }

    #[tokio::test]
    async fn half_a_request_head_or_an_idle_connection_is_closed_at_the_header_deadline() {
        let limits = Limits {
            header_read: Duration::from_millis(200),
            max_connections: 8,
            drain: PATIENCE,
        };
        let (address, _stop, _served) = start(limits, ok).await;
        let mut half = TcpStream::connect(address).await.unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        let mut silent = TcpStream::connect(address).await.unwrap();
        // After one answer, the keep-alive connection waits for the next
        // head under the same deadline.
        let mut kept_alive = TcpStream::connect(address).await.unwrap();
        kept_alive.write_all(REQUEST).await.unwrap();
        until_closed(&mut half).await;
        until_closed(&mut silent).await;
        let read = until_closed(&mut kept_alive).await;
        assert!(
            String::from_utf8_lossy(&read).starts_with("HTTP/1.1 200"),
            "{read:?}"
        );
    }

    #[tokio::test]
    async fn beyond_the_cap_a_client_waits_until_a_connection_closes() {
        let limits = Limits {
            header_read: PATIENCE,
            max_connections: 2,
            drain: PATIENCE,
        };
        let (address, _stop, _served) = start(limits, ok).await;
        let first = TcpStream::connect(address).await.unwrap();
        let _second = TcpStream::connect(address).await.unwrap();
        // The kernel completes the third connection, but the server does
        // not take it while two are open: its request is not answered.
        let waiting = tokio::spawn(answered(address));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "answered beyond the cap");
        drop(first);
        let answer = tokio::time::timeout(PATIENCE, waiting)
            .await
            .expect("answered once a connection closed")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn on_shutdown_idle_connections_close_and_busy_ones_get_the_drain_time() {
        let limits = Limits {
            header_read: PATIENCE,
            max_connections: 8,
            drain: Duration::from_millis(300),
        };
        let (address, stop, served) = start(limits, std::future::pending::<Response>).await;
        let mut idle = TcpStream::connect(address).await.unwrap();
        let mut busy = TcpStream::connect(address).await.unwrap();
        busy.write_all(REQUEST).await.unwrap();
        let mut half = TcpStream::connect(address).await.unwrap();
        half.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        // Let the server take all three before the stop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        tokio::time::timeout(PATIENCE, served)
            .await
            .expect("the server stopped despite a request that never ends")
            .unwrap();
        until_closed(&mut idle).await;
        until_closed(&mut busy).await;
        until_closed(&mut half).await;
        assert!(
            TcpStream::connect(address).await.is_err(),
            "still listening"
        );
    }
}
