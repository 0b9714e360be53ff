//! The listener over real sockets on loopback: its time limits, its connection cap, TLS with
//! certificates made here, their reload, and client certificates.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[path = "../../tests/common/ca.rs"]
mod ca;

use axum::Router;
use axum::routing::get;
use gigafactory_api::listener::{ListenerLimits, TlsFiles, TlsReloader, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use ca::{Purpose, TestCa};

/// Longest any test waits for something that must happen.
const DEADLINE: Duration = Duration::from_secs(10);
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n";

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            // A slow handler (a long poll), not a wait for state.
            tokio::time::sleep(Duration::from_millis(800)).await;
            "done"
        }),
    )
}

async fn start(limits: ListenerLimits, tls: Option<TlsReloader>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app(), limits, tls));
    addr
}

fn limits(header_ms: u64, idle_ms: u64, connections_max: usize) -> ListenerLimits {
    ListenerLimits {
        header_read_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        connections_max,
    }
}

/// Reads one answer (whose body ends with `end`) from `stream`, keeping the connection open.
async fn answer(stream: &mut TcpStream, end: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).ends_with(end) {
        let n = timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// How long after `start` the server closes `stream`, which must get no more bytes meanwhile.
async fn closed_after(stream: &mut TcpStream, start: Instant) -> Duration {
    let mut buf = [0u8; 1024];
    match timeout(DEADLINE, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => start.elapsed(),
        Ok(Ok(n)) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => panic!("still open after {DEADLINE:?}"),
    }
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_read_timeout() {
    let addr = start(limits(300, 60_000, 16), None).await;
    let mut half = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    half.write_all(b"GET / HTTP/1.1\r\nhost: te").await.unwrap();
    let waited = closed_after(&mut half, start).await;
    assert!(
        waited >= Duration::from_millis(300),
        "closed after {waited:?}"
    );
    let mut whole = TcpStream::connect(addr).await.unwrap();
    whole.write_all(REQUEST).await.unwrap();
    assert!(answer(&mut whole, "ok").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let addr = start(limits(60_000, 300, 16), None).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    conn.write_all(REQUEST).await.unwrap();
    answer(&mut conn, "ok").await;
    let waited = closed_after(&mut conn, start).await;
    assert!(
        waited >= Duration::from_millis(300),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn a_request_being_served_outlasts_both_timeouts() {
    let addr = start(limits(200, 200, 16), None).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    assert!(answer(&mut conn, "done").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let addr = start(limits(60_000, 60_000, 1), None).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(REQUEST).await.unwrap();
    answer(&mut first, "ok").await;
    // The kernel completes the second connection; the node does not take it while the first
    // holds the only place.
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(REQUEST).await.unwrap();
    let mut buf = [0u8; 64];
    let early = timeout(Duration::from_millis(400), second.read(&mut buf)).await;
    assert!(early.is_err(), "answered beyond the cap: {early:?}");
    drop(first);
    assert!(answer(&mut second, "ok").await.starts_with("HTTP/1.1 200"));
}

fn server_files(ca: &TestCa, dir: &Path) -> (String, String) {
    let (cert, key) = ca.leaf(&["localhost"], Purpose::ServerAuth);
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    (cert, key)
}

/// A client trusting `ca`, presenting `identity` (certificate and key, PEM) if given.
fn client(ca: &TestCa, identity: Option<(String, String)>) -> tokio_rustls::TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![der_of(&cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn der_of(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn files(dir: &Path, client_ca: Option<&Path>, required: bool) -> TlsFiles {
    TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        client_ca: client_ca.map(Path::to_path_buf),
        client_cert_required: required,
    }
}

/// Connects over TLS and asks for `/`: the certificate the node showed, or why it failed.
async fn tls_get(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> Result<CertificateDer<'static>, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let shown = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    // With TLS 1.3 a refused client certificate shows up on the first read, not the handshake.
    tls.write_all(REQUEST).await.map_err(|e| e.to_string())?;
    let mut got = String::new();
    timeout(DEADLINE, async {
        let mut buf = [0u8; 1024];
        while !got.ends_with("ok") {
            match tls.read(&mut buf).await {
                Ok(0) => return Err(format!("closed: {got:?}")),
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    })
    .await
    .expect("an answer in time")?;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    Ok(shown)
}

#[tokio::test]
async fn a_new_connection_sees_a_replaced_certificate_and_a_bad_pair_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test ca");
    let (first, _) = server_files(&ca, dir.path());
    let reloader = TlsReloader::load(files(dir.path(), None, false)).unwrap();
    let addr = start(ListenerLimits::default(), Some(reloader)).await;
    let trusting = client(&ca, None);
    assert_eq!(tls_get(addr, &trusting).await.unwrap(), der_of(&first));

    let (second, second_key) = server_files(&ca, dir.path());
    assert_eq!(tls_get(addr, &trusting).await.unwrap(), der_of(&second));

    // A certificate whose key is not the one beside it: the node keeps the second pair.
    let (third, _) = ca.leaf(&["localhost"], Purpose::ServerAuth);
    std::fs::write(dir.path().join("cert.pem"), third).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("key.pem")).unwrap(),
        second_key
    );
    assert_eq!(tls_get(addr, &trusting).await.unwrap(), der_of(&second));
}

#[tokio::test]
async fn client_certificates_are_checked_against_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server ca");
    server_files(&ca, dir.path());
    let factories = TestCa::new("factory ca");
    let ca_file = dir.path().join("factories.pem");
    factories.write(&ca_file);
    let signed = factories.leaf(&["factory-1"], Purpose::ClientAuth);
    let stranger = TestCa::new("other ca").leaf(&["x"], Purpose::ClientAuth);

    let optional = TlsReloader::load(files(dir.path(), Some(&ca_file), false)).unwrap();
    let addr = start(ListenerLimits::default(), Some(optional)).await;
    assert!(tls_get(addr, &client(&ca, None)).await.is_ok());
    assert!(
        tls_get(addr, &client(&ca, Some(signed.clone())))
            .await
            .is_ok()
    );
    let refused = tls_get(addr, &client(&ca, Some(stranger)))
        .await
        .unwrap_err();
    assert!(refused.contains("UnknownCA"), "{refused}");

    let required = TlsReloader::load(files(dir.path(), Some(&ca_file), true)).unwrap();
    let addr = start(ListenerLimits::default(), Some(required)).await;
    assert!(tls_get(addr, &client(&ca, None)).await.is_err());
    assert!(tls_get(addr, &client(&ca, Some(signed))).await.is_ok());
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test ca");
    let (_, key) = server_files(&ca, dir.path());
    server_files(&ca, dir.path());
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let err = TlsReloader::load(files(dir.path(), None, false))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("key"), "{err}");
}
