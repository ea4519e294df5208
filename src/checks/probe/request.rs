//! One probe: a request (or a cycle of them) with a timeout, sorted into an outcome class.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::config::RequestConfig;
use crate::workspace::evidence::ProbeRecord;

use super::transport::{State, Transport};
use crate::openstack::keystone::Tokens;

/// How one probe went.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `ok`, `status`, `timeout`, `refused`, `reset`, `closed` or `other`.
    pub class: &'static str,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency: Duration,
    /// The connection of the failing request (of every request, when it passed: `new` if
    /// any went out on a new one); `None` for probes without connections of their own.
    pub connection: Option<&'static str>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.class == "ok"
    }

    pub fn record(
        &self,
        service: &str,
        t: DateTime<Utc>,
        action: String,
        late: std::time::Duration,
    ) -> ProbeRecord {
        ProbeRecord {
            service: service.to_string(),
            t,
            latency_ms: self.latency.as_secs_f64() * 1000.0,
            outcome: self.class.to_string(),
            status: self.status,
            error: self.error.clone(),
            action: Some(action),
            late_ms: late.as_secs_f64() * 1000.0,
            connection: self.connection.map(str::to_string),
        }
    }
}

/// A client for single requests outside a probe schedule (persistent resources, tokens): a
/// new connection each time, no proxy from the environment, the lab's tunnel if any.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(Transport::new_connections()?.client)
}

/// A TCP connection to `target`, through the lab's SOCKS tunnel when there is one.
async fn open(target: &str) -> std::io::Result<tokio::net::TcpStream> {
    let Some(proxy) = crate::route::socks() else {
        return tokio::net::TcpStream::connect(target).await;
    };
    let through = tokio_socks::tcp::Socks5Stream::connect(proxy.as_str(), target).await;
    through.map(|s| s.into_inner()).map_err(|e| match e {
        tokio_socks::Error::Io(e) => e,
        tokio_socks::Error::ConnectionRefused => std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused (through the tunnel)",
        ),
        other => std::io::Error::other(format!("through the tunnel: {other}")),
    })
}

/// The placeholder of a probe's own OpenStack token (`auth = "openstack"`) in bodies and
/// headers: a Keystone cycle issues a new token from it (the `token` auth method).
pub const AUTH_TOKEN: &str = "auth_token";

/// Replaces `{name}` with `vars[name]`; unknown names stay as they are.
pub fn expand(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Runs the requests in order; the first that fails decides the outcome.
pub async fn send(
    transport: &Transport,
    requests: &[RequestConfig],
    timeout: Duration,
    auth: Option<&Tokens>,
) -> Outcome {
    let started = Instant::now();
    let mut captured = BTreeMap::new();
    let mut last_status = None;
    let mut states = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let sent = one(
            transport,
            request,
            timeout,
            auth,
            &mut captured,
            &mut states,
        )
        .await;
        match sent {
            Ok(status) => last_status = Some(status),
            Err((class, status, error)) => {
                // A cycle's failure names its step: "the token was issued, then not valid"
                // and "no token was issued" are different bugs.
                let error = match requests.len() {
                    1 => error,
                    n => format!("step {}/{n} ({}): {error}", i + 1, request.method),
                };
                return Outcome {
                    class,
                    status,
                    error: Some(error),
                    latency: started.elapsed(),
                    connection: states.last().map(|s: &State| s.as_str()),
                };
            }
        }
    }
    Outcome {
        class: "ok",
        status: last_status,
        error: None,
        latency: started.elapsed(),
        connection: overall(&states).map(State::as_str),
    }
}

/// A passed probe's connection: `new` if any request opened one, `unknown` if any could
/// not tell, else `reused`.
fn overall(states: &[State]) -> Option<State> {
    [State::New, State::Unknown, State::Reused]
        .into_iter()
        .find(|s| states.contains(s))
}

type Failure = (&'static str, Option<u16>, String);

/// A `tcp` probe: the connection (and, when `banner` is set, the server's first bytes
/// holding it) within `timeout`. Passing counts as status 0.
async fn connect(target: &str, banner: Option<&str>, timeout: Duration) -> Result<u16, Failure> {
    use tokio::io::AsyncReadExt;
    let work = async {
        let mut stream = open(target).await.map_err(|e| {
            let class = io_class(e.kind()).unwrap_or("other");
            (class, None, format!("connect to {target}: {e}"))
        })?;
        let Some(banner) = banner else {
            return Ok(0);
        };
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        while seen.len() < 4096 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| ("other", None, format!("read from {target}: {e}")))?;
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains(banner) {
                return Ok(0);
            }
        }
        let got = String::from_utf8_lossy(&seen)
            .trim()
            .chars()
            .take(80)
            .collect::<String>();
        Err((
            "status",
            None,
            format!("{target} said `{got}`, not `{banner}`"),
        ))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err((
            "timeout",
            None,
            format!("{target}: no answer within {timeout:?}"),
        )),
    }
}

async fn one(
    transport: &Transport,
    request: &RequestConfig,
    timeout: Duration,
    auth: Option<&Tokens>,
    captured: &mut BTreeMap<String, String>,
    states: &mut Vec<State>,
) -> Result<u16, Failure> {
    if let Some(target) = request.url.strip_prefix("tcp://") {
        states.push(State::New);
        return connect(target, request.body_contains.as_deref(), timeout).await;
    }
    let client = &transport.client;
    let mut watched = async |builder| {
        let (reply, state) = transport.watch(fetch(builder)).await;
        states.push(state);
        reply
    };
    let token = match auth {
        Some(tokens) => Some(tokens.get(client, timeout).await?),
        None => None,
    };
    if let Some((token, _)) = &token {
        captured.insert(AUTH_TOKEN.into(), token.clone());
    }
    let mut reply = watched(build(client, request, timeout, captured, token.as_ref())?).await?;
    if let (401, Some(tokens), Some((_, generation))) = (reply.0, auth, &token) {
        // An expired or revoked token: renew it once (for every probe) and try again.
        let fresh = tokens.renew(client, timeout, *generation).await?;
        captured.insert(AUTH_TOKEN.into(), fresh.0.clone());
        reply = watched(build(client, request, timeout, captured, Some(&fresh))?).await?;
    }
    let (status, body, headers) = reply;
    check(request, status, &body)?;
    if let Some(name) = &request.capture_header {
        let value = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        let Some(value) = value else {
            return Err((
                "status",
                Some(status),
                format!("no `{name}` header in the response"),
            ));
        };
        captured.insert(name.clone(), value.to_string());
    }
    if let Some(field) = &request.capture {
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let text = match &value[field.as_str()] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => {
                return Err((
                    "status",
                    Some(status),
                    format!("no `{field}` in the response"),
                ));
            }
            other => other.to_string(),
        };
        captured.insert(field.clone(), text);
    }
    Ok(status)
}

fn build(
    client: &reqwest::Client,
    request: &RequestConfig,
    timeout: Duration,
    captured: &BTreeMap<String, String>,
    token: Option<&(String, u64)>,
) -> Result<reqwest::RequestBuilder, Failure> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| ("other", None, format!("bad method `{}`", request.method)))?;
    let mut builder = client
        .request(method, expand(&request.url, captured))
        .timeout(timeout);
    for (k, v) in &request.headers {
        builder = builder.header(k, expand(v, captured));
    }
    if let Some((token, _)) = token {
        builder = builder.header("x-auth-token", token);
    }
    if let Some(body) = &request.body {
        builder = builder
            .header("content-type", "application/json")
            .body(expand(body, captured));
    }
    Ok(builder)
}

async fn fetch(
    builder: reqwest::RequestBuilder,
) -> Result<(u16, String, reqwest::header::HeaderMap), Failure> {
    let response = builder.send().await.map_err(classify)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(classify)?;
    Ok((status, body, headers))
}

/// One request outside a probe schedule: its status and body, or why it failed
/// (`refused`, `timeout`, `other` and a message). Statuses are not judged here.
pub async fn exchange(
    client: &reqwest::Client,
    request: &RequestConfig,
    timeout: Duration,
) -> Result<(u16, String), (&'static str, String)> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| ("other", format!("bad method `{}`", request.method)))?;
    let mut builder = client.request(method, &request.url).timeout(timeout);
    for (k, v) in &request.headers {
        builder = builder.header(k, v);
    }
    if let Some(body) = &request.body {
        builder = builder
            .header("content-type", "application/json")
            .body(body.clone());
    }
    fetch(builder)
        .await
        .map(|(status, body, _)| (status, body))
        .map_err(|(class, _, text)| (class, text))
}

/// Whether a status is one the request accepts (any 2xx when it names none).
pub fn accepted(request: &RequestConfig, status: u16) -> bool {
    if request.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        request.expect_status.contains(&status)
    }
}

fn check(request: &RequestConfig, status: u16, body: &str) -> Result<(), Failure> {
    if !accepted(request, status) {
        return Err((
            "status",
            Some(status),
            format!("unexpected status {status}{}", excerpt(status, body)),
        ));
    }
    if let Some(needle) = request
        .body_contains
        .as_ref()
        .filter(|n| !body.contains(n.as_str()))
    {
        return Err(("status", Some(status), format!("body lacks {needle:?}")));
    }
    Ok(())
}

/// The start of an error answer's body, on one line: what the service said went wrong
/// (Keystone's "Could not find token", haproxy's "503 Service Unavailable"). Only for
/// 4xx/5xx: a success body may carry what no log should (a catalog, a credential).
fn excerpt(status: u16, body: &str) -> String {
    const MAX: usize = 160;
    if status < 400 {
        return String::new();
    }
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return String::new();
    }
    let mut cut: String = line.chars().take(MAX).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    format!(": {cut}")
}

/// Sorts a failed request by what a client met: `timeout`, `refused` (nothing listens),
/// `reset` (the peer reset the connection), `closed` (the connection closed before a whole
/// answer came: "Remote end closed connection without response" to requests), `other`.
fn classify(err: reqwest::Error) -> Failure {
    let text = error_text(&err);
    if err.is_timeout() {
        return ("timeout", None, text);
    }
    let chain = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source());
    for e in chain {
        if let Some(class) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|e| io_class(e.kind()))
        {
            return (class, None, text);
        }
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(|e| e.is_incomplete_message())
        {
            return ("closed", None, text);
        }
    }
    ("other", None, text)
}

fn io_class(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    match kind {
        ConnectionRefused => Some("refused"),
        ConnectionReset => Some("reset"),
        ConnectionAborted | UnexpectedEof | BrokenPipe => Some("closed"),
        TimedOut => Some("timeout"),
        _ => None,
    }
}

/// The error and its causes on one line (reqwest's Display hides the cause).
fn error_text(err: &reqwest::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_replaces_known_names_only() {
        let vars = BTreeMap::from([("lb".to_string(), "127.0.0.2:80".to_string())]);
        assert_eq!(
            expand("http://{lb}/x/{id}", &vars),
            "http://127.0.0.2:80/x/{id}"
        );
    }

    #[tokio::test]
    async fn refused_connection_is_classified() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let request = RequestConfig::get(format!("http://127.0.0.1:{port}/"));
        let outcome = send(
            &Transport::new_connections().unwrap(),
            &[request],
            Duration::from_secs(1),
            None,
        )
        .await;
        assert_eq!(outcome.class, "refused", "{outcome:?}");
    }

    #[test]
    fn tcp_probes_connect_and_read_a_banner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                use std::io::Write;
                let _ = stream.unwrap().write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
            }
        });
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let t = Duration::from_secs(2);
        let target = addr.to_string();
        runtime.block_on(async {
            assert_eq!(connect(&target, Some("SSH-2.0"), t).await, Ok(0));
            let wrong = connect(&target, Some("HTTP/1.1"), t).await.unwrap_err();
            assert_eq!(wrong.0, "status", "{wrong:?}");
            let refused = connect(&closed.to_string(), None, t).await.unwrap_err();
            assert_eq!(refused.0, "refused");
        });
    }

    /// A server that issues `X-Subject-Token: t-42` on POST and answers 200 to a GET that
    /// sends it back, 404 otherwise; it records the request heads it saw.
    fn token_server() -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                std::io::Read::read_exact(&mut reader, &mut body).unwrap();
                head.push_str(&String::from_utf8_lossy(&body));
                let answer = if head.starts_with("POST") {
                    "201 Created\r\nX-Subject-Token: t-42"
                } else if head.to_ascii_lowercase().contains("x-subject-token: t-42") {
                    "200 OK"
                } else {
                    "404 Not Found"
                };
                let reply =
                    format!("HTTP/1.1 {answer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                stream.write_all(reply.as_bytes()).unwrap();
                tx.send(head).unwrap();
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn a_cycle_captures_a_header_and_sends_it_back() {
        let (addr, seen) = token_server();
        let issue = RequestConfig {
            method: "POST".into(),
            body: Some("{\"token\": \"{auth_token}\"}".into()),
            capture_header: Some("X-Subject-Token".into()),
            ..RequestConfig::get(format!("http://{addr}/v3/auth/tokens"))
        };
        let validate = RequestConfig {
            headers: BTreeMap::from([("X-Subject-Token".into(), "{X-Subject-Token}".into())]),
            ..RequestConfig::get(format!("http://{addr}/v3/auth/tokens"))
        };
        let t = Duration::from_secs(5);
        let outcome = send(
            &Transport::new_connections().unwrap(),
            &[issue, validate],
            t,
            None,
        )
        .await;
        assert!(outcome.ok(), "{outcome:?}");
        let first = seen.recv().unwrap();
        assert!(
            first.ends_with("{\"token\": \"{auth_token}\"}"),
            "no token: kept as is"
        );
        assert!(
            seen.recv()
                .unwrap()
                .to_ascii_lowercase()
                .contains("x-subject-token: t-42")
        );
    }

    #[tokio::test]
    async fn a_failed_cycle_names_its_step_and_what_the_server_said() {
        let (addr, _seen) = token_server();
        let issue = RequestConfig {
            method: "POST".into(),
            capture_header: Some("X-Subject-Token".into()),
            ..RequestConfig::get(format!("http://{addr}/v3/auth/tokens"))
        };
        // Sent without the captured token: the server answers 404.
        let validate = RequestConfig::get(format!("http://{addr}/v3/auth/tokens"));
        let t = Duration::from_secs(5);
        let outcome = send(
            &Transport::new_connections().unwrap(),
            &[issue, validate],
            t,
            None,
        )
        .await;
        assert_eq!(outcome.class, "status");
        assert_eq!(outcome.status, Some(404));
        let error = outcome.error.unwrap();
        assert!(
            error.starts_with("step 2/2 (GET): unexpected status 404"),
            "{error}"
        );
    }

    #[test]
    fn an_error_body_is_quoted_on_one_line_and_a_success_body_never() {
        let said = excerpt(
            404,
            "{\"error\": {\n  \"message\": \"Could not find token\"}}",
        );
        assert_eq!(
            said,
            ": {\"error\": { \"message\": \"Could not find token\"}}"
        );
        assert_eq!(excerpt(200, "{\"token\": \"secret\"}"), "");
        assert_eq!(excerpt(502, " \n "), "");
        let long = excerpt(500, &"x".repeat(1000));
        assert_eq!(long.chars().count(), 2 + 160 + 1, "cut, with an ellipsis");
    }

    #[tokio::test]
    async fn a_missing_captured_header_fails_the_step() {
        let (addr, _seen) = token_server();
        let issue = RequestConfig {
            capture_header: Some("X-Other".into()),
            method: "POST".into(),
            ..RequestConfig::get(format!("http://{addr}/v3/auth/tokens"))
        };
        let outcome = send(
            &Transport::new_connections().unwrap(),
            &[issue],
            Duration::from_secs(5),
            None,
        )
        .await;
        assert_eq!(outcome.class, "status");
        assert!(outcome.error.unwrap().contains("no `X-Other` header"));
    }
}
