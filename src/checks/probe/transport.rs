//! How a probe's requests reach the service: a new connection every time, or a small pool
//! kept alive and reused as clients do, and which of the two a request got.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::config::Connection;

/// Idle connections a keep-alive probe keeps per host: requests' pool keeps 10, a probe
/// sends one request at a time but may overlap itself when a service slows down.
const POOL: usize = 4;

/// How long an idle connection is kept: hyper's default, and well above the idle timeouts
/// of the servers and balancers a probe meets (which close first: that is the race a
/// client meets, and what the probe is there to see).
const IDLE: Duration = Duration::from_secs(90);

/// The connection a request went out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    New,
    Reused,
    /// Another request of the same probe was in flight: which connection was whose is not
    /// known.
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Reused => "reused",
            State::Unknown => "unknown",
        }
    }
}

/// One probe's HTTP client: a keep-alive probe has its own (its pool is its own, as one
/// user's session is), new-connection probes share one without a pool.
#[derive(Clone)]
pub struct Transport {
    pub client: reqwest::Client,
    counts: Option<Arc<Counts>>,
}

impl Transport {
    /// New connections for every request (no pool).
    pub fn new_connections() -> anyhow::Result<Transport> {
        Ok(Transport {
            client: builder().pool_max_idle_per_host(0).build()?,
            counts: None,
        })
    }

    /// A pool of kept-alive connections. No request is retried once it was sent: hyper
    /// only sends again a request whose pooled connection closed before it was written,
    /// as urllib3 does when it finds a pooled connection dropped.
    pub fn keep_alive() -> anyhow::Result<Transport> {
        let counts = Arc::new(Counts::default());
        let client = builder()
            .pool_max_idle_per_host(POOL)
            .pool_idle_timeout(IDLE)
            .connector_layer(CountConnects(Arc::clone(&counts)))
            .build()?;
        Ok(Transport {
            client,
            counts: Some(counts),
        })
    }

    pub fn for_mode(mode: Connection) -> anyhow::Result<Transport> {
        match mode {
            Connection::KeepAlive => Transport::keep_alive(),
            Connection::New => Transport::new_connections(),
        }
    }

    /// Runs one request (`work`) and tells which connection it went out on.
    pub async fn watch<T>(&self, work: impl Future<Output = T>) -> (T, State) {
        let Some(counts) = &self.counts else {
            return (work.await, State::New);
        };
        let before = counts.begin();
        let out = work.await;
        (out, counts.end(before))
    }
}

/// No proxy from the environment; the lab's SOCKS tunnel when a provider opened one (names
/// resolved at the far end: `socks5h`).
fn builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder().no_proxy();
    match crate::route::socks()
        .and_then(|address| reqwest::Proxy::all(format!("socks5h://{address}")).ok())
    {
        Some(proxy) => builder.proxy(proxy),
        None => builder,
    }
}

/// Connections opened, and requests started and in flight, of one keep-alive client.
#[derive(Default)]
struct Counts {
    connects: AtomicU64,
    started: AtomicU64,
    in_flight: AtomicUsize,
}

struct Before {
    connects: u64,
    started: u64,
    alone: bool,
}

impl Counts {
    fn begin(&self) -> Before {
        let alone = self.in_flight.fetch_add(1, Ordering::SeqCst) == 0;
        Before {
            started: self.started.fetch_add(1, Ordering::SeqCst),
            connects: self.connects.load(Ordering::SeqCst),
            alone,
        }
    }

    /// A request alone on its client (none in flight when it began, none begun since)
    /// went out on a new connection exactly when one was opened meanwhile.
    fn end(&self, before: Before) -> State {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let alone = before.alone && self.started.load(Ordering::SeqCst) == before.started + 1;
        match (
            alone,
            self.connects.load(Ordering::SeqCst) > before.connects,
        ) {
            (false, _) => State::Unknown,
            (true, true) => State::New,
            (true, false) => State::Reused,
        }
    }
}

/// A connector layer that counts every connection the client opens (or tries to).
#[derive(Clone)]
struct CountConnects(Arc<Counts>);

impl<S> tower::Layer<S> for CountConnects {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counts: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
struct Counted<S> {
    inner: S,
    counts: Arc<Counts>,
}

impl<S, R> tower::Service<R> for Counted<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.counts.connects.fetch_add(1, Ordering::SeqCst);
        Box::pin(self.inner.call(request))
    }
}
