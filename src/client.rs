//! The CLI's HTTP client of the REST API: the coordinator's address and the caller's token
//! (`--coordinator`, `--token` or `GIGAFACTORY_COORDINATOR`, `GIGAFACTORY_TOKEN`), one request
//! at a time, over `https` with the system's roots and `--ca-file` (`GIGAFACTORY_CA_FILE`). An error answer becomes an error carrying the server's `error` code, its message
//! and its details, which the binary prints before exiting non-zero.

use anyhow::{Context, Result, bail};
use gigafactory_core::wire::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Remote;

/// The media type every write without a body of its own says it has: the API refuses a
/// write of any other (a cross-site form cannot send it).
const JSON: &str = "application/json";

/// How many times [`Client::post_idempotent`] sends a request whose answer was lost, and how
/// long it waits between them.
const IDEMPOTENT_TRIES_MAX: u32 = 3;
const IDEMPOTENT_RETRY_MS: u64 = 1_000;

/// The coordinator did not answer (refused, reset, timed out): it may be restarting, so a
/// follower waits and tries again where a one-shot command gives up.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// Whether `e` says the coordinator could not be reached (rather than that it refused).
pub fn unreachable(e: &anyhow::Error) -> bool {
    e.is::<Unreachable>()
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of `remote`; over `https` it trusts the system's roots and `--ca-file`.
    pub fn new(remote: &Remote) -> Result<Self> {
        let http = remote
            .tls
            .client_tls()
            .apply(reqwest::Client::builder())?
            .build()
            .context("building the http client")?;
        Ok(Client {
            http,
            base: remote.coordinator.trim_end_matches('/').to_string(),
            token: remote.token.clone(),
        })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends `r`: the answer if it is a success, else an error with the server's message.
    async fn answer(&self, r: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = r.send().await.map_err(|e| {
            Unreachable(format!(
                "cannot reach the coordinator at {}: {}",
                self.base,
                gigafactory_factory::tls::explain(&e)
            ))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await?;
        let message = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => {
                let details = e
                    .details
                    .iter()
                    .map(|d| format!("\n  {d}"))
                    .collect::<String>();
                format!("{} ({}): {}{details}", e.error, status.as_u16(), e.message)
            }
            Err(_) => format!("{status}: {text}"),
        };
        // A node starting up or a proxy without a node behind it: the same as no answer.
        if matches!(status.as_u16(), 502..=504) {
            return Err(Unreachable(message).into());
        }
        bail!(message)
    }

    async fn send<T: DeserializeOwned>(&self, r: reqwest::RequestBuilder) -> Result<T> {
        let text = self.answer(r).await?.text().await?;
        let text = if text.is_empty() {
            "null".to_string()
        } else {
            text
        };
        serde_json::from_str(&text).with_context(|| format!("unexpected answer: {text}"))
    }

    /// A `GET` whose body is read as it comes (a download).
    pub async fn get_stream(&self, path: &str) -> Result<reqwest::Response> {
        self.answer(self.req(reqwest::Method::GET, path)).await
    }

    /// An event stream (SSE) of `path`, resumed after `last_event_id` when given.
    pub async fn get_events(
        &self,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response> {
        let r = self
            .req(reqwest::Method::GET, path)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let r = match last_event_id {
            Some(id) => r.header("Last-Event-ID", id),
            None => r,
        };
        self.answer(r).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: Option<&Value>) -> Result<T> {
        let r = self.req(reqwest::Method::POST, path);
        let r = match body {
            Some(b) => r.json(b),
            None => r.header(reqwest::header::CONTENT_TYPE, JSON),
        };
        self.send(r).await
    }

    /// A `POST` without a body under idempotency key `key`: the server does it once per key,
    /// so a request whose answer was lost (no answer, or a gateway's 502 to 504) is sent
    /// again, up to `IDEMPOTENT_TRIES_MAX` times, `IDEMPOTENT_RETRY_MS` apart.
    pub async fn post_idempotent<T: DeserializeOwned>(&self, path: &str, key: &str) -> Result<T> {
        let mut tries = 1;
        loop {
            let r = self
                .req(reqwest::Method::POST, path)
                .header(reqwest::header::CONTENT_TYPE, JSON)
                .header("Idempotency-Key", key);
            match self.send(r).await {
                Err(e) if unreachable(&e) && tries < IDEMPOTENT_TRIES_MAX => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(IDEMPOTENT_RETRY_MS)).await;
                }
                answer => return answer,
            }
        }
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.req(reqwest::Method::PUT, path).json(body))
            .await
    }

    /// Deletes `path`; an answer without a body (`204`) reads as `()`.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.send::<Value>(
            self.req(reqwest::Method::DELETE, path)
                .header(reqwest::header::CONTENT_TYPE, JSON),
        )
        .await
        .map(drop)
    }

    /// Posts `body` as it is, of `media_type` (a manifest's TOML or JSON, a tracker's JSON).
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        media_type: &str,
        body: String,
    ) -> Result<T> {
        self.send(
            self.req(reqwest::Method::POST, path)
                .header(reqwest::header::CONTENT_TYPE, media_type)
                .body(body),
        )
        .await
    }
}
