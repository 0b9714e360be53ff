//! What an etcd failure means: whether the request may have been applied, whether another
//! endpoint or a fresh attempt may succeed, and which store error it becomes. Each cause maps
//! to what the FoundationDB engine reports for the same cause (the table in ARCHITECTURE.md).

use tonic::Code as tonic_code;

use crate::error::Error;

/// Whether a failed request may have been applied, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// Never reached a server (connection refused, no leader yet): safe to send elsewhere.
    NotSent(String),
    /// Reached a server, or may have.
    Maybe(String),
    /// Refused before it was applied, for a reason that passes: a member behind the
    /// transaction's revision, a revision compacted away, a member shedding load. The
    /// transaction starts over (FoundationDB's "retryable, not committed").
    Retry(String),
    /// The server refused it for good.
    Refused(String),
}

impl Failure {
    /// What the failure means for the caller once no other endpoint will be tried: for a
    /// commit, always; for a read, when it is a refusal (it rotates otherwise).
    pub(super) fn into_error(self) -> Error {
        match self {
            Failure::NotSent(msg) => Error::Unavailable(msg),
            Failure::Maybe(msg) => Error::CommitUnknown(msg),
            Failure::Retry(msg) => {
                tracing::debug!(error = %msg, "etcd asked for a retry");
                Error::Conflict
            }
            Failure::Refused(msg) => Error::Engine(msg),
        }
    }
}

pub(super) fn classify(e: etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    match e {
        E::TransportError(t) => Failure::NotSent(t.to_string()),
        E::IoError(io) => Failure::NotSent(io.to_string()),
        E::GRpcStatus(status) => classify_status(status.code(), status.message()),
        other => Failure::Refused(other.to_string()),
    }
}

/// What a gRPC status from an etcd member means, from its code and message (etcd's
/// `rpctypes` errors carry their cause only in the message).
fn classify_status(code: tonic_code, message: &str) -> Failure {
    let lower = message.to_ascii_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let msg = message.to_string();
    if says(&["future revision", "compacted", "too many requests"]) {
        return Failure::Retry(msg);
    }
    match code {
        tonic_code::Unavailable
            if says(&[
                "connect",
                "connection refused",
                "no leader",
                "not capable",
                "dns error",
            ]) =>
        {
            Failure::NotSent(msg)
        }
        tonic_code::Unavailable
        | tonic_code::DeadlineExceeded
        | tonic_code::Cancelled
        | tonic_code::Unknown
        | tonic_code::Internal => Failure::Maybe(msg),
        _ => Failure::Refused(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure's class and its error's variant, by name, so the table below reads as one.
    fn names(failure: &Failure) -> (&'static str, &'static str) {
        let class = match failure {
            Failure::NotSent(_) => "not sent",
            Failure::Maybe(_) => "maybe",
            Failure::Retry(_) => "retry",
            Failure::Refused(_) => "refused",
        };
        let error = match failure.clone().into_error() {
            Error::Conflict => "Conflict",
            Error::Unavailable(_) => "Unavailable",
            Error::CommitUnknown(_) => "CommitUnknown",
            Error::Engine(_) => "Engine",
            other => panic!("unexpected {other:?}"),
        };
        (class, error)
    }

    /// etcd's own messages (`rpctypes`), each with its FoundationDB counterpart.
    #[test]
    fn every_etcd_failure_maps_like_its_foundationdb_counterpart() {
        use tonic_code as C;
        // One row per cause: status, message, class, and the error once no endpoint helps.
        #[rustfmt::skip]
        let cases = [
            // FoundationDB's future_version, process_behind
            (C::OutOfRange, "etcdserver: mvcc: required revision is a future revision", "retry", "Conflict"),
            // transaction_too_old inside the age limit
            (C::OutOfRange, "etcdserver: mvcc: required revision has been compacted", "retry", "Conflict"),
            // tag_throttled, commit_proxy_memory_limit_exceeded, ...
            (C::ResourceExhausted, "etcdserver: too many requests", "retry", "Conflict"),
            // a cluster that cannot be reached
            (C::Unavailable, "etcdserver: no leader", "not sent", "Unavailable"),
            (C::Unavailable, "tcp connect error: Connection refused", "not sent", "Unavailable"),
            // commit_unknown_result
            (C::Unavailable, "etcdserver: leader changed", "maybe", "CommitUnknown"),
            (C::Unavailable, "etcdserver: request timed out", "maybe", "CommitUnknown"),
            (C::DeadlineExceeded, "deadline has elapsed", "maybe", "CommitUnknown"),
            // members with limits below the store's, a full disk
            (C::InvalidArgument, "etcdserver: request is too large", "refused", "Engine"),
            (C::InvalidArgument, "etcdserver: too many operations in txn request", "refused", "Engine"),
            (C::ResourceExhausted, "etcdserver: mvcc: database space exceeded", "refused", "Engine"),
        ];
        for (code, message, class, error) in cases {
            let failure = classify_status(code, message);
            assert_eq!(names(&failure), (class, error), "{message}");
        }
    }
}
