//! How a node sends what it owes the outside world (tracker callbacks): a [`Courier`] the
//! binary gives the node, so the actors know no HTTP. A delivery is a POST of a body with
//! headers; the answer is its status, or why there was none.

use std::future::Future;
use std::pin::Pin;

/// A POST's outcome: the HTTP status, or why no answer came (refused, timed out).
pub type Sent = Result<u16, String>;

pub trait Courier: Send + Sync + 'static {
    fn post(
        &self,
        url: String,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Pin<Box<dyn Future<Output = Sent> + Send>>;
}

/// For a node that sends nothing: every try fails, saying so.
pub struct NoCourier;

impl Courier for NoCourier {
    fn post(
        &self,
        _url: String,
        _body: Vec<u8>,
        _headers: Vec<(String, String)>,
    ) -> Pin<Box<dyn Future<Output = Sent> + Send>> {
        Box::pin(async { Err("this node was started without a courier".to_owned()) })
    }
}
