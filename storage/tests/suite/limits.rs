//! The conformance tests of the rules every engine enforces through the shared guard: key,
//! value and transaction sizes (charged as FoundationDB charges them), the age limit, and the
//! reserved `0xff` keys. The same transaction must get the same answer on every engine.

use std::time::Duration;

use gigafactory_storage::limits::{
    KEY_MAX_BYTES, RANGE_MAX_ROWS, TXN_BOOKKEEPING_BYTES, TXN_MAX_BYTES, TXN_MAX_DURATION,
    VALUE_MAX_BYTES, point_read_charge, set_charge,
};
use gigafactory_storage::{
    Error, KeyRange, RangeOptions, Store, Transaction, WatchTarget, transact,
};

use super::{k, put, read, scan};

pub async fn oversized_writes_are_refused_and_write_nothing<S: Store>(store: S) {
    let long_key = vec![b'k'; KEY_MAX_BYTES + 1];
    let outcome = transact!(store, |tx| {
        tx.set(b"before", b"1")?;
        tx.set(&long_key, b"v")
    });
    assert_eq!(
        outcome,
        Err(Error::KeyTooLarge {
            len: KEY_MAX_BYTES + 1,
            max: KEY_MAX_BYTES
        })
    );

    let big = vec![7u8; VALUE_MAX_BYTES + 1];
    let mut tx = store.begin().await.unwrap();
    tx.set(b"before", b"1").unwrap();
    assert!(matches!(
        tx.set(b"v", &big),
        Err(Error::ValueTooLarge { .. })
    ));
    // A caller that ignores the error still cannot commit the rest.
    assert!(matches!(
        tx.commit().await,
        Err(Error::ValueTooLarge { .. })
    ));

    let chunk = vec![1u8; VALUE_MAX_BYTES];
    let outcome = transact!(store, |tx| {
        for n in 0..101 {
            tx.set(format!("big/{n}").as_bytes(), &chunk)?;
        }
        Ok::<_, Error>(())
    });
    assert!(
        matches!(outcome, Err(Error::TransactionTooLarge { .. })),
        "{outcome:?}"
    );
    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.get_range(
            &KeyRange::prefix(b""),
            RangeOptions::limit(RANGE_MAX_ROWS + 1)
        )
        .await
        .is_err()
    );
    assert_eq!(read(&store, b"before").await, None);
    assert!(scan(&store, &KeyRange::prefix(b"big/")).await.is_empty());
}

/// Length of the keys [`fill_to`] writes (`size/` and three digits).
const FILL_KEY_BYTES: usize = 8;

/// Makes `tx` one non-snapshot read (a snapshot one if `snapshot_read`), then writes under
/// `size/` until it is charged exactly `total` bytes, counting the read as non-snapshot.
async fn fill_to<T: Transaction>(
    tx: &mut T,
    total: usize,
    snapshot_read: bool,
) -> Result<(), Error> {
    let probe = b"size/probe";
    if snapshot_read {
        tx.get_snapshot(probe).await?;
    } else {
        tx.get(probe).await?;
    }
    let full = set_charge(FILL_KEY_BYTES, VALUE_MAX_BYTES);
    let empty = set_charge(FILL_KEY_BYTES, 0);
    let mut left = total - point_read_charge(probe.len()) - TXN_BOOKKEEPING_BYTES;
    let mut n = 0;
    let mut write = |tx: &mut T, value_len: usize| {
        n += 1;
        tx.set(format!("size/{n:03}").as_bytes(), &vec![7u8; value_len])
    };
    while left > full + 2 * empty {
        write(tx, VALUE_MAX_BYTES)?;
        left -= full;
    }
    // Two last writes share what is left, each within the value limit.
    let values = left - 2 * empty;
    write(tx, values / 2)?;
    write(tx, values - values / 2)
}

pub async fn a_transaction_charged_the_limit_commits_and_one_byte_more_does_not<S: Store>(
    store: S,
) {
    let over = transact!(store, |tx| fill_to(tx, TXN_MAX_BYTES + 1, false).await);
    assert_eq!(
        over,
        Err(Error::TransactionTooLarge {
            size: TXN_MAX_BYTES + 1,
            max: TXN_MAX_BYTES
        })
    );
    assert!(scan(&store, &KeyRange::prefix(b"size/")).await.is_empty());
    // Its read is what tipped it over: as a snapshot read, which is not charged, it fits.
    transact!(store, |tx| fill_to(tx, TXN_MAX_BYTES + 1, true).await).unwrap();
    transact!(store, |tx| tx.clear_range(&KeyRange::prefix(b"size/"))).unwrap();
    transact!(store, |tx| fill_to(tx, TXN_MAX_BYTES, false).await).unwrap();
    assert!(!scan(&store, &KeyRange::prefix(b"size/")).await.is_empty());
}

pub async fn reserved_keys_cannot_be_written_read_or_watched<S: Store>(store: S) {
    put(&store, b"\xfe", b"last user key").await;
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.set(b"\xff/x", b"1"), Err(Error::Engine(_))));
    assert!(
        matches!(tx.set(b"\xfe", b"2"), Err(Error::Engine(_))),
        "poisoned"
    );
    assert!(matches!(tx.commit().await, Err(Error::Engine(_))));
    assert!(matches!(
        transact!(store, |tx| tx.clear(&[0xff])),
        Err(Error::Engine(_))
    ));
    assert!(matches!(
        transact!(store, |tx| tx.atomic_add(b"\xff\xff", 1)),
        Err(Error::Engine(_))
    ));
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.get(b"\xff/x").await.unwrap(), None);
    let tail = KeyRange::new(b"\xfe".to_vec(), vec![0xff, 0xff]);
    let rows = tx.get_range(&tail, RangeOptions::limit(10)).await.unwrap();
    assert_eq!(rows, vec![(b"\xfe".to_vec(), k("last user key"))]);
    assert!(matches!(
        tx.watch(WatchTarget::Key(vec![0xff])).await,
        Err(Error::Engine(_))
    ));
    assert!(matches!(
        store.watch(WatchTarget::Prefix(b"\xff/".to_vec())).await,
        Err(Error::Engine(_))
    ));
    // A clear reaching into the reserved keys clears the user keys below them.
    transact!(store, |tx| tx.clear_range(&tail)).unwrap();
    assert_eq!(read(&store, b"\xfe").await, None);
}

/// Runs on a current-thread runtime: it pauses tokio's clock to age a transaction.
pub async fn a_transaction_past_its_time_limit_is_refused<S: Store>(store: S) {
    let mut tx = store.begin().await.unwrap();
    tx.set(b"slow", b"1").unwrap();
    tokio::time::pause();
    tokio::time::advance(TXN_MAX_DURATION + Duration::from_millis(1)).await;
    assert!(matches!(
        tx.get(b"slow").await,
        Err(Error::TransactionTooOld { .. })
    ));
    assert!(matches!(
        tx.set(b"x", b"1"),
        Err(Error::TransactionTooOld { .. })
    ));
    assert!(matches!(
        tx.commit().await,
        Err(Error::TransactionTooOld { .. })
    ));
    tokio::time::resume();
    assert_eq!(read(&store, b"slow").await, None);
}
