//! The embedded engine's write-ahead log: one record per committed batch, appended and
//! `fdatasync`ed before any transaction of the batch is acknowledged. Segments are named by the
//! first version they hold (`wal-00000000000000000042.log`); a segment is deleted once the base
//! file holds everything in it.
//!
//! Record: `[payload length: u32][crc32 of version and payload: u32][version: u64][payload]`,
//! payload `[entries: u32]` then per entry `[key length: u32][key][0 | 1 + value length: u32 +
//! value]`, all little-endian. Only the tail of the last segment can be torn (appends are
//! sequential and synced); replay stops at the first record that does not check out.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::memtable::Entry;

const HEADER_BYTES: usize = 16;
/// A record larger than this is corrupt: a batch holds at most `BATCH_MAX_TXNS` transactions of
/// at most `TXN_MAX_BYTES` each, far below.
const RECORD_MAX_BYTES: usize = 1 << 36;

pub(super) struct Wal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
}

pub(super) fn segment_path(dir: &Path, first_version: u64) -> PathBuf {
    dir.join(format!("wal-{first_version:020}.log"))
}

/// Existing segments, oldest first.
pub(super) fn segments(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("wal-") && n.ends_with(".log"))
        })
        .collect();
    out.sort();
    Ok(out)
}

impl Wal {
    /// Starts a new segment whose first record will be `first_version`.
    pub fn create(dir: &Path, first_version: u64) -> io::Result<Self> {
        let path = segment_path(dir, first_version);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        // The new file's directory entry must be durable before records in it are trusted.
        File::open(dir)?.sync_all()?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            file,
            path,
            buf: Vec::new(),
        })
    }

    /// Closes this segment and starts the next; returns the closed segment's path.
    pub fn rotate(&mut self, first_version: u64) -> io::Result<PathBuf> {
        let next = Wal::create(&self.dir, first_version)?;
        let old = std::mem::replace(self, next);
        Ok(old.path)
    }

    /// Appends one batch and makes it durable.
    pub fn append(&mut self, version: u64, entries: &[Entry]) -> io::Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER_BYTES]);
        self.buf
            .extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (key, value) in entries {
            self.buf
                .extend_from_slice(&(key.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(key);
            match value {
                None => self.buf.push(0),
                Some(v) => {
                    self.buf.push(1);
                    self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    self.buf.extend_from_slice(v);
                }
            }
        }
        let payload_len = (self.buf.len() - HEADER_BYTES) as u32;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&version.to_le_bytes());
        crc.update(&self.buf[HEADER_BYTES..]);
        self.buf[0..4].copy_from_slice(&payload_len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        self.buf[8..16].copy_from_slice(&version.to_le_bytes());
        self.file.write_all(&self.buf)?;
        self.file.sync_data()
    }
}

/// Reads every intact record of `path` in order, calling `apply(version, entries)`.
pub(super) fn replay(path: &Path, mut apply: impl FnMut(u64, Vec<Entry>)) -> io::Result<()> {
    let mut r = BufReader::new(File::open(path)?);
    loop {
        let mut header = [0u8; HEADER_BYTES];
        if read_full(&mut r, &mut header)? < HEADER_BYTES {
            return Ok(());
        }
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let version = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        if len > RECORD_MAX_BYTES {
            return Ok(());
        }
        let mut payload = vec![0u8; len];
        if read_full(&mut r, &mut payload)? < len {
            return Ok(());
        }
        let mut check = crc32fast::Hasher::new();
        check.update(&version.to_le_bytes());
        check.update(&payload);
        if check.finalize() != crc {
            tracing::warn!(path = %path.display(), version, "torn write-ahead log record ignored");
            return Ok(());
        }
        match decode(&payload) {
            Some(entries) => apply(version, entries),
            None => return Ok(()),
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn decode(payload: &[u8]) -> Option<Vec<Entry>> {
    let mut p = payload;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = p.split_at_checked(n)?;
        p = rest;
        Some(head)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let klen = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let key = take(klen)?.to_vec();
        let value = match take(1)?[0] {
            0 => None,
            1 => {
                let vlen = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
                Some(take(vlen)?.to_vec())
            }
            _ => return None,
        };
        out.push((key, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_replay_in_order_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), 1).unwrap();
        wal.append(
            1,
            &[(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)],
        )
        .unwrap();
        wal.append(2, &[(b"c".to_vec(), Some(vec![9; 300]))])
            .unwrap();
        let path = segment_path(dir.path(), 1);
        drop(wal);
        // A crash in the middle of a third append.
        let full = std::fs::read(&path).unwrap();
        let mut torn = full.clone();
        torn.extend_from_slice(&full[..20]);
        std::fs::write(&path, &torn).unwrap();
        let mut seen = Vec::new();
        replay(&path, |v, entries| seen.push((v, entries.len()))).unwrap();
        assert_eq!(seen, vec![(1, 2), (2, 1)]);
        // A flipped bit ends the replay at that record.
        let mut flipped = full;
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let mut seen = Vec::new();
        replay(&path, |v, _| seen.push(v)).unwrap();
        assert_eq!(seen, vec![1]);
        assert_eq!(segments(dir.path()).unwrap(), vec![path]);
    }
}
