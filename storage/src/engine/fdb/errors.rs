//! FoundationDB's errors as the store's: one pure function of the error code, what
//! FoundationDB's client library says of it (`fdb_error_predicate`), and where it surfaced. Pure,
//! so it is unit-tested code by code in every build, without libfdb_c.
//!
//! The rule: FoundationDB's "retryable, not committed" errors (a conflict, a read version too
//! old after a recovery, a storage server behind, throttling, a locked database) are
//! `Conflict`, the one error `transact!` retries; `TransactionTooOld` only for a transaction
//! really past the age limit. "Maybe committed" errors at a commit are `CommitUnknown`; before
//! the commit nothing of the transaction was sent, so they are conflicts too. The store's own
//! transaction timeout cutting off a commit may leave it applied (`CommitUnknown`); cutting off
//! a read that waited the timeout's margin means the cluster did not answer (`Unavailable`).

use std::time::Duration;

use crate::error::Error;
use crate::limits::{self, TXN_MAX_BYTES, TXN_MAX_DURATION};

/// FoundationDB error codes this mapping tells apart (`flow/error_definitions.h`).
pub(crate) const TRANSACTION_TOO_OLD: i32 = 1007;
const TRANSACTION_TIMED_OUT: i32 = 1031;
const OPERATION_CANCELLED: i32 = 1101;
const TRANSACTION_TOO_LARGE: i32 = 2101;

/// How much longer than the guard's age limit FoundationDB's own transaction `timeout` is. The
/// guard refuses work on a transaction past its limit, so a request the timeout cuts off was
/// issued before that and had waited at least this long: a cluster that does not answer.
pub(crate) const TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// What FoundationDB's client library says of an error (`fdb_error_predicate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Certainly not committed, and a fresh attempt may succeed.
    RetryableNotCommitted,
    /// May have been committed.
    MaybeCommitted,
    /// Neither: trying the same transaction again will not help.
    Final,
}

#[cfg(feature = "fdb")]
impl Verdict {
    /// The client library's verdict on `e`: the library in use knows its own codes, including
    /// ones added after this was written.
    pub(crate) fn of(e: foundationdb::FdbError) -> Self {
        if e.is_maybe_committed() {
            Verdict::MaybeCommitted
        } else if e.is_retryable_not_committed() {
            Verdict::RetryableNotCommitted
        } else {
            Verdict::Final
        }
    }
}

/// Where an error surfaced: the same code means different things at a read and at a commit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage {
    /// A read, or the arming of a watch for a transaction, by a transaction `age` old, whose
    /// request waited `waited`.
    Read { age: Duration, waited: Duration },
    /// The commit of a transaction `age` old that the guard charged `charged` bytes.
    Commit { age: Duration, charged: usize },
    /// Outside a transaction's work: creating one, setting an option, arming a watch for the
    /// store, an armed watch waiting, registering watch prefixes.
    Outside,
}

/// Maps FoundationDB error `code` (described by `message`, judged `verdict`) at `stage` onto
/// the store's errors.
pub(crate) fn store_error(code: i32, verdict: Verdict, message: &str, stage: Stage) -> Error {
    let what = format!("{message} (FoundationDB error {code})");
    match (code, verdict, stage) {
        // The guard charges at least what FoundationDB counts, so this means its model fell
        // short; `size` is the guard's count, the only one known.
        (TRANSACTION_TOO_LARGE, _, Stage::Commit { charged, .. }) => {
            tracing::warn!(charged, "FoundationDB counted more than the size guard");
            Error::TransactionTooLarge {
                size: charged,
                max: TXN_MAX_BYTES,
            }
        }
        // FoundationDB's own commit logging counts a commit cut off by the timeout or
        // cancelled as maybe committed: it may still be applied.
        (TRANSACTION_TIMED_OUT | OPERATION_CANCELLED, _, Stage::Commit { .. })
        | (_, Verdict::MaybeCommitted, Stage::Commit { .. }) => Error::CommitUnknown(what),
        (TRANSACTION_TIMED_OUT, _, Stage::Read { waited, .. }) if waited >= TIMEOUT_MARGIN => {
            Error::Unavailable(format!("no answer in {waited:?}: {what}"))
        }
        (TRANSACTION_TIMED_OUT, _, Stage::Read { age, .. }) => Error::TransactionTooOld {
            elapsed: age,
            max: TXN_MAX_DURATION,
        },
        // After a recovery the read version may fall out of the cluster's window for a
        // transaction that ran milliseconds: only the age limit makes it too old.
        (TRANSACTION_TOO_OLD, _, Stage::Read { age, .. } | Stage::Commit { age, .. }) => {
            limits::check_age(age).err().unwrap_or(Error::Conflict)
        }
        (_, Verdict::RetryableNotCommitted, Stage::Read { .. } | Stage::Commit { .. })
        | (_, Verdict::MaybeCommitted, Stage::Read { .. }) => Error::Conflict,
        // No transaction to start over: the caller retries later.
        (TRANSACTION_TIMED_OUT, _, Stage::Outside)
        | (_, Verdict::RetryableNotCommitted | Verdict::MaybeCommitted, Stage::Outside) => {
            Error::Unavailable(what)
        }
        _ => Error::Engine(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FoundationDB's "retryable, not committed" codes (`fdb_error_predicate`, 7.1 to 7.4;
    /// 1223 and 1235 are newer than 7.1).
    const RETRYABLE_NOT_COMMITTED: &[(i32, &str)] = &[
        (1007, "transaction_too_old"),
        (1009, "future_version"),
        (1020, "not_committed"),
        (1037, "process_behind"),
        (1038, "database_locked"),
        (1042, "commit_proxy_memory_limit_exceeded"),
        (1051, "batch_transaction_throttled"),
        (1078, "grv_proxy_memory_limit_exceeded"),
        (1213, "tag_throttled"),
        (1223, "proxy_tag_throttled"),
        (1235, "transaction_throttled_hot_shard"),
    ];
    /// FoundationDB's "maybe committed" codes.
    const MAYBE_COMMITTED: &[(i32, &str)] = &[
        (1021, "commit_unknown_result"),
        (1039, "cluster_version_changed"),
    ];
    /// Codes neither retryable nor maybe committed that this engine can meet.
    const FINAL: &[(i32, &str)] = &[
        (1004, "timed_out"),
        (1025, "transaction_cancelled"),
        (1031, "transaction_timed_out"),
        (1032, "too_many_watches"),
        (1101, "operation_cancelled"),
        (2004, "key_outside_legal_range"),
        (2017, "used_during_commit"),
        (2101, "transaction_too_large"),
        (2102, "key_too_large"),
    ];

    const YOUNG: Duration = Duration::from_millis(10);
    const PAST_LIMIT: Duration = Duration::from_millis(5_001);

    fn read(age: Duration, waited: Duration) -> Stage {
        Stage::Read { age, waited }
    }

    fn commit(age: Duration) -> Stage {
        Stage::Commit { age, charged: 42 }
    }

    fn map(code: i32, verdict: Verdict, stage: Stage) -> Error {
        store_error(code, verdict, "message", stage)
    }

    #[test]
    fn every_retryable_not_committed_code_is_a_conflict_inside_a_transaction() {
        for &(code, name) in RETRYABLE_NOT_COMMITTED {
            let v = Verdict::RetryableNotCommitted;
            assert_eq!(map(code, v, read(YOUNG, YOUNG)), Error::Conflict, "{name}");
            assert_eq!(map(code, v, commit(YOUNG)), Error::Conflict, "{name}");
            assert!(
                matches!(map(code, v, Stage::Outside), Error::Unavailable(_)),
                "{name}"
            );
        }
    }

    #[test]
    fn too_old_is_a_conflict_inside_the_age_limit_and_too_old_past_it() {
        let v = Verdict::RetryableNotCommitted;
        let too_old = Error::TransactionTooOld {
            elapsed: PAST_LIMIT,
            max: TXN_MAX_DURATION,
        };
        assert_eq!(
            map(TRANSACTION_TOO_OLD, v, read(YOUNG, YOUNG)),
            Error::Conflict
        );
        assert_eq!(map(TRANSACTION_TOO_OLD, v, commit(YOUNG)), Error::Conflict);
        assert_eq!(
            map(TRANSACTION_TOO_OLD, v, read(PAST_LIMIT, YOUNG)),
            too_old
        );
        assert_eq!(map(TRANSACTION_TOO_OLD, v, commit(PAST_LIMIT)), too_old);
    }

    #[test]
    fn maybe_committed_codes_are_unknown_at_commit_and_conflicts_before_it() {
        for &(code, name) in MAYBE_COMMITTED {
            let v = Verdict::MaybeCommitted;
            assert!(
                matches!(map(code, v, commit(YOUNG)), Error::CommitUnknown(m) if m.contains(&code.to_string())),
                "{name}"
            );
            assert_eq!(map(code, v, read(YOUNG, YOUNG)), Error::Conflict, "{name}");
            assert!(
                matches!(map(code, v, Stage::Outside), Error::Unavailable(_)),
                "{name}"
            );
        }
    }

    #[test]
    fn a_commit_cut_off_by_the_timeout_or_cancelled_may_have_applied() {
        for code in [TRANSACTION_TIMED_OUT, OPERATION_CANCELLED] {
            assert!(matches!(
                map(code, Verdict::Final, commit(YOUNG)),
                Error::CommitUnknown(_)
            ));
        }
    }

    #[test]
    fn a_read_cut_off_by_the_timeout_after_the_margin_is_unavailable() {
        let stalled = read(PAST_LIMIT, TIMEOUT_MARGIN);
        assert!(matches!(
            map(TRANSACTION_TIMED_OUT, Verdict::Final, stalled),
            Error::Unavailable(m) if m.contains("no answer")
        ));
        assert_eq!(
            map(
                TRANSACTION_TIMED_OUT,
                Verdict::Final,
                read(PAST_LIMIT, YOUNG)
            ),
            Error::TransactionTooOld {
                elapsed: PAST_LIMIT,
                max: TXN_MAX_DURATION
            }
        );
        assert!(matches!(
            map(TRANSACTION_TIMED_OUT, Verdict::Final, Stage::Outside),
            Error::Unavailable(_)
        ));
    }

    #[test]
    fn transaction_too_large_at_commit_is_the_stores_too_large() {
        assert_eq!(
            map(TRANSACTION_TOO_LARGE, Verdict::Final, commit(YOUNG)),
            Error::TransactionTooLarge {
                size: 42,
                max: TXN_MAX_BYTES
            }
        );
    }

    #[test]
    fn other_final_codes_are_engine_refusals() {
        let special = [
            TRANSACTION_TIMED_OUT,
            OPERATION_CANCELLED,
            TRANSACTION_TOO_LARGE,
        ];
        for &(code, name) in FINAL.iter().filter(|(c, _)| !special.contains(c)) {
            for stage in [read(YOUNG, YOUNG), commit(YOUNG), Stage::Outside] {
                assert!(
                    matches!(map(code, Verdict::Final, stage), Error::Engine(_)),
                    "{name}"
                );
            }
        }
    }

    /// Runs where libfdb_c is installed: the verdicts this table assumes are the library's.
    /// Only codes every 7.x library classifies alike are compared.
    #[cfg(feature = "fdb")]
    #[test]
    fn the_tables_agree_with_the_client_library() {
        let newer_than_7_1 = [1223, 1235];
        let tables = [
            (RETRYABLE_NOT_COMMITTED, Verdict::RetryableNotCommitted),
            (MAYBE_COMMITTED, Verdict::MaybeCommitted),
            (FINAL, Verdict::Final),
        ];
        for (table, verdict) in tables {
            for &(code, name) in table.iter().filter(|(c, _)| !newer_than_7_1.contains(c)) {
                let e = foundationdb::FdbError::from_code(code);
                assert_eq!(Verdict::of(e), verdict, "{name}");
            }
        }
    }
}
