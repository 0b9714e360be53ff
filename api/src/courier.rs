//! The node's HTTP client for tracker callbacks: the [`Courier`] the binary hands the actors,
//! so that only this crate knows HTTP. No redirects are followed and proxies from the
//! environment are not used, so a callback goes exactly where the config says.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use gigafactory_actors::{Courier, Sent};

/// Longest a connection may take to open.
const CONNECT_TIMEOUT_MS: u64 = 5_000;

pub struct HttpCourier {
    client: reqwest::Client,
}

impl HttpCourier {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        Ok(HttpCourier { client })
    }
}

impl Courier for HttpCourier {
    fn post(
        &self,
        url: String,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Pin<Box<dyn Future<Output = Sent> + Send>> {
        let mut request = self.client.post(url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        Box::pin(async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        })
    }
}
