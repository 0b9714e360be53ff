//! The prefix-watch registry of one namespace, as data. FoundationDB has no prefix watch, so a
//! prefix to be watched gets a change counter that every write under it bumps with an atomic
//! add, and a prefix watch is a key watch on that counter. For every writer to bump it, whatever
//! handle it writes through, the registered prefixes are kept in the store, inside the
//! namespace's reserved keys:
//!
//! | key (after the namespace) | value |
//! | --- | --- |
//! | `\xff/watch/` + prefix | the prefix's change counter (i64 LE, atomic add) |
//! | `\xff/watched/` + prefix | empty: the prefix is registered |
//! | `\xff/watched` | the registry's version (i64 LE), bumped by every registration |
//!
//! A handle reads the registry before its first transaction. Every transaction that writes
//! reads the version too, with a read conflict, and fails as a conflict if the registry changed
//! since its handle read it: a registration committed after it started makes it conflict, one
//! committed before is seen. Either way it runs again with the new registry, so no write under
//! a registered prefix commits without bumping its counter.

use crate::error::{Error, Result};
use crate::limits::{FDB_KEY_MAX_BYTES, TXN_BOOKKEEPING_BYTES, is_reserved};
use crate::txn::KeyRange;

/// Where each registered prefix's change counter lives: past every user key.
const COUNTERS: &[u8] = b"\xff/watch/";
/// Where the registered prefixes are listed, one key each.
const LISTING: &[u8] = b"\xff/watched/";
/// The registry's version.
const VERSION: &[u8] = b"\xff/watched";
/// Bytes of an atomic add's operand.
const COUNTER_OPERAND_BYTES: usize = 8;

/// A registered prefix and its counter's full key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchedPrefix {
    pub(crate) prefix: Vec<u8>,
    pub(crate) counter: Vec<u8>,
}

/// The registered prefixes of one namespace, as read at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registry {
    /// The version key's value when the registry was read (`None`: never registered to).
    version: Option<Vec<u8>>,
    /// The version key, namespace included.
    version_key: Vec<u8>,
    /// Sorted by prefix, without duplicates.
    prefixes: Vec<WatchedPrefix>,
}

impl Registry {
    /// The registry of `namespace` that read `version` and listed `prefixes`.
    pub(crate) fn new(
        namespace: &[u8],
        version: Option<Vec<u8>>,
        prefixes: impl IntoIterator<Item = Vec<u8>>,
    ) -> Self {
        let mut prefixes: Vec<Vec<u8>> = prefixes.into_iter().collect();
        prefixes.sort();
        prefixes.dedup();
        Registry {
            version,
            version_key: Self::version_key_in(namespace),
            prefixes: prefixes
                .into_iter()
                .map(|prefix| WatchedPrefix {
                    counter: [namespace, COUNTERS, &prefix].concat(),
                    prefix,
                })
                .collect(),
        }
    }

    /// The key holding `namespace`'s registry version.
    pub(crate) fn version_key_in(namespace: &[u8]) -> Vec<u8> {
        [namespace, VERSION].concat()
    }

    /// Where `namespace` lists its registered prefixes.
    pub(crate) fn listing(namespace: &[u8]) -> KeyRange {
        KeyRange::prefix(&[namespace, LISTING].concat())
    }

    /// The key listing `prefix` in `namespace`.
    pub(crate) fn listing_key(namespace: &[u8], prefix: &[u8]) -> Vec<u8> {
        [namespace, LISTING, prefix].concat()
    }

    /// The prefix a key of the listing registers.
    pub(crate) fn listed_prefix<'a>(namespace: &[u8], key: &'a [u8]) -> Option<&'a [u8]> {
        key.strip_prefix(namespace)?.strip_prefix(LISTING)
    }

    /// Refuses a prefix that cannot be registered: a reserved one (nothing is written there)
    /// or one whose keys would pass FoundationDB's key limit.
    pub(crate) fn check_prefix(namespace: &[u8], prefix: &[u8]) -> Result<()> {
        if is_reserved(prefix) || Self::listing_key(namespace, prefix).len() > FDB_KEY_MAX_BYTES {
            return Err(Error::Config(format!(
                "watch prefix \"{}\" is reserved or too long for its counter key",
                prefix.escape_ascii()
            )));
        }
        Ok(())
    }

    /// Which of `wanted` are not registered.
    pub(crate) fn missing(&self, wanted: &[Vec<u8>]) -> Vec<Vec<u8>> {
        wanted
            .iter()
            .filter(|w| self.counter(w).is_none())
            .cloned()
            .collect()
    }

    /// This registry with `added` registered, at `version`; refused if the bookkeeping it
    /// adds to every writing transaction would pass what the size guard allows for it.
    pub(crate) fn with(
        &self,
        namespace: &[u8],
        added: &[Vec<u8>],
        version: Vec<u8>,
    ) -> Result<Registry> {
        let prefixes = self.prefixes.iter().map(|w| w.prefix.clone());
        let grown = Registry::new(
            namespace,
            Some(version),
            prefixes.chain(added.iter().cloned()),
        );
        if grown.bookkeeping_bytes() > TXN_BOOKKEEPING_BYTES {
            return Err(Error::Config(format!(
                "{} watch prefixes would add {} bytes to every transaction, over the {} allowed",
                grown.prefixes.len(),
                grown.bookkeeping_bytes(),
                TXN_BOOKKEEPING_BYTES
            )));
        }
        Ok(grown)
    }

    /// What this registry adds, at most, to a transaction that writes, as FoundationDB counts
    /// it: the read conflict on the version, and one add to each counter (the adds take no
    /// write conflict range).
    pub(crate) fn bookkeeping_bytes(&self) -> usize {
        let version_read = 2 * self.version_key.len() + 1;
        let adds: usize = self
            .prefixes
            .iter()
            .map(|w| w.counter.len() + COUNTER_OPERAND_BYTES)
            .sum();
        version_read + adds
    }

    /// The counter key of a registered `prefix`.
    pub(crate) fn counter(&self, prefix: &[u8]) -> Option<&[u8]> {
        self.prefixes
            .binary_search_by(|w| w.prefix.as_slice().cmp(prefix))
            .ok()
            .map(|i| self.prefixes[i].counter.as_slice())
    }

    /// The registered prefixes, in order.
    pub(crate) fn prefixes(&self) -> &[WatchedPrefix] {
        &self.prefixes
    }

    /// The version key, namespace included.
    pub(crate) fn version_key(&self) -> &[u8] {
        &self.version_key
    }

    /// Whether the store's registry is still this one, given the version key's stored value.
    pub(crate) fn is_current(&self, stored: Option<&[u8]>) -> bool {
        self.version.as_deref() == stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &[u8] = b"ns/";

    #[test]
    fn the_registry_sits_past_every_user_key_and_apart_from_the_counters() {
        let r = Registry::new(NS, None, [b"w/p/".to_vec()]);
        let counter = r.counter(b"w/p/").unwrap();
        let listing = Registry::listing(NS);
        let version = r.version_key().to_vec();
        assert_eq!(version, Registry::version_key_in(NS));
        let user_keys = KeyRange::new(NS.to_vec(), [NS, &[0xff]].concat());
        for key in [
            counter,
            version.as_slice(),
            &Registry::listing_key(NS, b"w/p/"),
        ] {
            assert!(key.starts_with(NS) && !user_keys.contains(key));
        }
        assert!(!listing.contains(counter) && !listing.contains(&version));
        let counters = KeyRange::prefix(&[NS, COUNTERS].concat());
        assert!(!counters.contains(&version));
        assert!(!counters.contains(&Registry::listing_key(NS, b"")));
    }

    #[test]
    fn listed_keys_give_back_their_prefix() {
        let key = Registry::listing_key(NS, b"fleet/");
        assert_eq!(
            Registry::listed_prefix(NS, &key),
            Some(b"fleet/".as_slice())
        );
        assert_eq!(Registry::listed_prefix(b"other/", &key), None);
    }

    #[test]
    fn registering_merges_with_what_the_store_holds() {
        let stored = Registry::new(NS, Some(vec![1]), [b"b".to_vec(), b"a".to_vec()]);
        let wanted = vec![b"a".to_vec(), b"c".to_vec()];
        assert_eq!(stored.missing(&wanted), vec![b"c".to_vec()]);
        let grown = stored.with(NS, &stored.missing(&wanted), vec![2]).unwrap();
        let prefixes: Vec<&[u8]> = grown
            .prefixes()
            .iter()
            .map(|w| w.prefix.as_slice())
            .collect();
        assert_eq!(prefixes, [b"a".as_slice(), b"b", b"c"]);
        assert!(grown.is_current(Some(&[2])) && !grown.is_current(Some(&[1])));
        assert!(grown.missing(&wanted).is_empty());
    }

    #[test]
    fn a_registry_too_costly_for_every_transaction_is_refused() {
        let empty = Registry::new(NS, None, []);
        let many: Vec<Vec<u8>> = (0..200)
            .map(|n| format!("prefix/{n:03}/").into_bytes())
            .collect();
        assert!(matches!(
            empty.with(NS, &many, vec![1]),
            Err(Error::Config(m)) if m.contains("watch prefixes")
        ));
        assert!(empty.with(NS, &many[..10], vec![1]).is_ok());
    }

    #[test]
    fn reserved_or_overlong_prefixes_cannot_be_registered() {
        assert!(Registry::check_prefix(NS, b"fleet/").is_ok());
        assert!(Registry::check_prefix(NS, b"\xff").is_err());
        assert!(Registry::check_prefix(NS, &vec![b'p'; FDB_KEY_MAX_BYTES]).is_err());
    }
}
