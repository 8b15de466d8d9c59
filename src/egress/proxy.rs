//! foreman's side of a turn's sockets: the proxy that decides, and the forwards that don't
//! need to (their destination is fixed by foreman).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::JoinSet;

use super::BlockedLog;
use crate::model::Clock;
use crate::model::network::{Allowlist, split_host_port};

/// Largest request head read (request line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Longest wait for a request head, a name to resolve, or a connection to open.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections one turn may have open through one socket.
const MAX_CONNECTIONS: usize = 256;

/// Accepts connections on `listener` and runs `handle` on each, at most
/// [`MAX_CONNECTIONS`] at once. The connections belong to this task: when it is aborted (the
/// turn's [`super::Gate`] dropped) they end with it.
async fn serve<F, Fut>(listener: UnixListener, handle: F)
where
    F: Fn(UnixStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            connections.join_next().await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(handle(stream));
            }
            // Out of descriptors, say: wait rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Serves a forward: every connection goes to `target`.
pub async fn serve_forward(listener: UnixListener, target: (String, u16)) {
    let target = Arc::new(target);
    serve(listener, move |mut inside| {
        let target = target.clone();
        async move {
            let connect = TcpStream::connect((target.0.as_str(), target.1));
            if let Ok(Ok(mut outside)) = tokio::time::timeout(STEP_TIMEOUT, connect).await {
                let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
            }
        }
    })
    .await;
}

/// Serves the proxy: each connection asks for one destination, which `allowlist` permits or
/// the refusal is recorded in `blocked`.
pub async fn serve_proxy(
    listener: UnixListener,
    allowlist: Arc<Allowlist>,
    blocked: Arc<BlockedLog>,
    clock: Arc<dyn Clock>,
) {
    serve(listener, move |stream| {
        let (allowlist, blocked, clock) = (allowlist.clone(), blocked.clone(), clock.clone());
        async move {
            let _ = proxy_one(stream, &allowlist, &blocked, clock.as_ref()).await;
        }
    })
    .await;
}

/// One client request, as the proxy understood it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub host: String,
    pub port: u16,
    /// `CONNECT`: a tunnel; otherwise the head to send on, in origin form.
    pub tunnel: bool,
    pub head: Vec<u8>,
}

/// Parses a request head (everything up to the blank line). Plain requests are rewritten for
/// the origin: origin-form target, proxy headers dropped, `Connection: close` (one request
/// per connection, so a kept-alive connection cannot carry a request for another host).
pub fn parse_request(head: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(head).map_err(|_| "the request is not text".to_owned())?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("`{first}` is not an HTTP request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("{version} is not spoken here (HTTP/1.x only)"));
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_host_port(target)
            .and_then(|(h, p)| Some((h, p?)))
            .ok_or_else(|| format!("CONNECT needs host:port, not `{target}`"))?;
        return Ok(Request {
            host: host.to_owned(),
            port,
            tunnel: true,
            head: Vec::new(),
        });
    }
    let url = url::Url::parse(target)
        .ok()
        .filter(|u| u.scheme() == "http")
        .ok_or_else(|| format!("`{target}` is not an http:// URL (use CONNECT for https)"))?;
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(format!("`{target}` names no host"));
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut out = format!("{method} {path} {version}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default().trim();
        let dropped = [
            "proxy-connection",
            "proxy-authorization",
            "connection",
            "keep-alive",
        ]
        .iter()
        .any(|d| name.eq_ignore_ascii_case(d));
        if !dropped {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok(Request {
        host,
        port,
        tunnel: false,
        head: out.into_bytes(),
    })
}

async fn proxy_one(
    mut client: UnixStream,
    allowlist: &Allowlist,
    blocked: &BlockedLog,
    clock: &dyn Clock,
) -> std::io::Result<()> {
    let Ok(read) = tokio::time::timeout(STEP_TIMEOUT, read_head(&mut client)).await else {
        return Ok(());
    };
    let (head, rest) = match read? {
        Some(found) => found,
        None => {
            return refuse(
                &mut client,
                400,
                "the request head is too long or cut short",
            )
            .await;
        }
    };
    let request = match parse_request(&head) {
        Ok(r) => r,
        Err(why) => return refuse(&mut client, 400, &why).await,
    };
    let destination = if request.host.contains(':') {
        format!("[{}]:{}", request.host, request.port)
    } else {
        format!("{}:{}", request.host, request.port)
    };
    let Some(rule) = allowlist.permits(&request.host, request.port) else {
        blocked.record(destination.clone(), clock.now());
        let why = format!(
            "foreman: {destination} is not on this repository's network allowlist (an operator \
             or the repository's .github/foreman.yml `network.allow` can add it)"
        );
        return refuse(&mut client, 403, &why).await;
    };
    let wildcard = rule.is_wildcard();
    let reached = tokio::time::timeout(STEP_TIMEOUT, reach(&request.host, request.port, wildcard));
    let mut upstream = match reached.await {
        Ok(Reach::Connected(stream)) => stream,
        Ok(Reach::Internal) => {
            blocked.record(destination.clone(), clock.now());
            let why = format!(
                "foreman: {destination} resolves to an internal address, which a wildcard \
                 never allows"
            );
            return refuse(&mut client, 403, &why).await;
        }
        Ok(Reach::Failed(e)) => {
            return refuse(&mut client, 502, &format!("foreman: {destination}: {e}")).await;
        }
        Err(_) => {
            return refuse(
                &mut client,
                504,
                &format!("foreman: {destination} did not answer"),
            )
            .await;
        }
    };
    if request.tunnel {
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
    } else {
        upstream.write_all(&request.head).await?;
    }
    upstream.write_all(&rest).await?;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}

/// How a connection to an allowed destination went.
enum Reach {
    Connected(TcpStream),
    /// A name a wildcard matched resolved onto this machine or a private network.
    Internal,
    Failed(std::io::Error),
}

async fn reach(host: &str, port: u16, wildcard: bool) -> Reach {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(found) => found.collect(),
        Err(e) => return Reach::Failed(e),
    };
    if wildcard && addrs.iter().any(|a| internal(a.ip())) {
        return Reach::Internal;
    }
    let mut last = std::io::Error::other("the name resolves to no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Reach::Connected(stream),
            Err(e) => last = e,
        }
    }
    Reach::Failed(last)
}

/// Reads up to the end of the request head: `(head, bytes read after it)`, or `None` when the
/// head is too long or the connection ends first.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        let searched_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf[searched_from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
        {
            let end = searched_from + end + 4;
            let rest = buf.split_off(end);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    why: &str,
) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        502 => "Bad Gateway",
        _ => "Gateway Timeout",
    };
    let body = format!("{why}\n");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Whether an address is this machine's or a private network's (or means nothing outside).
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
        }
        IpAddr::V6(v6) => {
            let mapped = v6.to_ipv4_mapped().is_some_and(|v4| internal(v4.into()));
            mapped
                || v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_requests_name_their_destination() {
        let r = parse_request(b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.tunnel),
            ("api.example.com", 443, true)
        );
        let r = parse_request(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 8443));
        assert!(parse_request(b"CONNECT api.example.com HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request(b"GARBAGE\r\n\r\n").is_err());
        assert!(
            parse_request(b"GET / HTTP/1.1\r\n\r\n").is_err(),
            "origin form is not a proxy request"
        );
        assert!(parse_request(b"GET https://x/ HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn plain_requests_are_rewritten_for_the_origin() {
        let r = parse_request(
            b"GET http://pkgs.example:8080/a/b?c=d HTTP/1.1\r\nHost: pkgs.example:8080\r\n\
              Proxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.tunnel),
            ("pkgs.example", 8080, false)
        );
        assert_eq!(
            String::from_utf8(r.head).unwrap(),
            "GET /a/b?c=d HTTP/1.1\r\nHost: pkgs.example:8080\r\nAccept: */*\r\n\
             Connection: close\r\n\r\n"
        );
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["140.82.112.3", "2606:4700::1"] {
            assert!(!internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn heads_are_read_to_the_blank_line_and_no_further() {
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            a.write_all(b"CONNECT h:1 HTTP/1.1\r\n").await.unwrap();
            a.write_all(b"\r\nhello").await.unwrap();
        });
        let (head, rest) = read_head(&mut b).await.unwrap().unwrap();
        assert_eq!(head, b"CONNECT h:1 HTTP/1.1\r\n\r\n");
        assert_eq!(rest, b"hello");
    }
}
