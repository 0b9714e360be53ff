//! Job output in the store: the chunk format, the per-job bound, and reading it back in
//! order. A stored chunk is one byte naming the stream (`o` stdout, `e` stderr) then the
//! text, keyed by `(job, attempt, seq)`; a counter of the bytes kept guards the bound and is
//! the key log followers watch.

use gigafactory_core::job::{Job, JobId};
use gigafactory_core::wire::{LogChunk, LogLine, LogStream};

use crate::error::Error;
use crate::keys;
use crate::txn::{KeyRange, RangeOptions, Transaction, Watch, WatchTarget};

/// Most log bytes kept per job, over all its attempts; later chunks are refused.
pub const LOG_MAX_BYTES_PER_JOB: i64 = 16 * 1024 * 1024;

/// What became of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAppend {
    Kept,
    /// The job's output is at its bound: the chunk was not stored. `first` is true for the
    /// first refusal of this attempt, which the timeline should record.
    Refused {
        first: bool,
    },
}

/// Appends `chunk` to the output of `job`'s current attempt, unless the job's output is full.
/// The caller has checked the writer's lease.
pub async fn append_log<T: Transaction>(
    tx: &mut T,
    job: &Job,
    chunk: &LogChunk,
) -> Result<LogAppend, Error> {
    let id = job.id.0;
    let chunk_key = keys::log_chunk(id, job.attempts, chunk.seq);
    // A retried chunk (its answer was lost) is kept once and counted once.
    if tx.get(&chunk_key).await?.is_some() {
        return Ok(LogAppend::Kept);
    }
    let size_key = keys::log_bytes(id);
    let used = tx.get_snapshot(&size_key).await?.map_or(0, |v| {
        i64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8]))
    });
    let data = encode_chunk(chunk);
    if used + data.len() as i64 > LOG_MAX_BYTES_PER_JOB {
        let cut_key = keys::log_cut(id);
        let cut_in = tx
            .get(&cut_key)
            .await?
            .map(|v| u32::from_le_bytes(v[..4].try_into().unwrap_or([0; 4])));
        let first = cut_in != Some(job.attempts);
        if first {
            tx.set(&cut_key, &job.attempts.to_le_bytes())?;
        }
        return Ok(LogAppend::Refused { first });
    }
    tx.set(&chunk_key, &data)?;
    tx.atomic_add(&size_key, data.len() as i64)?;
    Ok(LogAppend::Kept)
}

/// Stored output after position `(attempt, seq)`, in order, at most `limit` chunks.
pub async fn logs_after<T: Transaction>(
    tx: &mut T,
    id: JobId,
    after: Option<(u32, u64)>,
    limit: usize,
) -> Result<Vec<LogLine>, Error> {
    let mut range = keys::logs_of(id.0);
    if let Some((a, s)) = after {
        range.begin = KeyRange::single(&keys::log_chunk(id.0, a, s)).end;
    }
    let rows = tx
        .get_range(&range, RangeOptions::limit(limit).snapshot())
        .await?;
    rows.into_iter()
        .map(|(k, v)| {
            let (_, attempt, seq) = keys::log_chunk_parts(&k)?;
            Ok(decode_chunk(attempt, seq, &v))
        })
        .collect()
}

/// A watch that fires when the job gets more output, armed at this transaction's read
/// version: a follower reads, waits on it, and reads again, missing nothing.
pub async fn watch_logs<T: Transaction>(tx: &mut T, id: JobId) -> Result<Watch, Error> {
    tx.watch(WatchTarget::Key(keys::log_bytes(id.0))).await
}

fn encode_chunk(chunk: &LogChunk) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.data.len() + 1);
    out.push(match chunk.stream {
        LogStream::Stdout => b'o',
        LogStream::Stderr => b'e',
    });
    out.extend_from_slice(chunk.data.as_bytes());
    out
}

fn decode_chunk(attempt: u32, seq: u64, v: &[u8]) -> LogLine {
    let stream = if v.first() == Some(&b'e') {
        LogStream::Stderr
    } else {
        LogStream::Stdout
    };
    LogLine {
        attempt,
        seq,
        stream,
        data: String::from_utf8_lossy(v.get(1..).unwrap_or_default()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_reads_back_with_its_stream_and_position() {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let chunk = LogChunk {
                seq: 3,
                stream,
                data: "héllo\n".into(),
            };
            let line = decode_chunk(2, 3, &encode_chunk(&chunk));
            assert_eq!(
                line,
                LogLine {
                    attempt: 2,
                    seq: 3,
                    stream,
                    data: "héllo\n".into()
                }
            );
        }
    }
}
