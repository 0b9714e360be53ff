//! Job output in the store: the chunk format, the per-job bound, and reading it back in
//! order. A stored chunk is one byte naming the stream (`o` stdout, `e` stderr) then the
//! text, keyed by `(job, attempt, seq)`; a counter of the bytes kept guards the bound and is
//! the key log followers watch.

use gigafactory_core::job::{Job, JobId};
use gigafactory_core::wire::{LogChunk, LogLine, LogStream};

use crate::error::Error;
use crate::keys;
use crate::limits::RANGE_MAX_ROWS;
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

/// Most bytes of output one page of a job's log holds (read through the API, or queued for a
/// follower), however many lines were asked for: what a reader holds is bounded by this, not
/// by the lines asked times the chunk size. A page holds at least one line, so a reader always
/// moves on.
pub const LOG_PAGE_MAX_BYTES: usize = 1024 * 1024;
/// Rows of the first range read of a page; later reads are sized by what the rows read so far
/// weigh, so a page of short lines takes one or two reads and a page of long chunks does not
/// read far past its bound.
const LOG_PAGE_FIRST_READ_ROWS: usize = 16;

/// A page of a job's output.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// The page stopped at its bound of lines or bytes: more output may follow at once.
    pub more: bool,
}

/// Stored output after position `(attempt, seq)`, in order: at most `lines_max` chunks and
/// at most `bytes_max` bytes (clamped to [`LOG_PAGE_MAX_BYTES`]; one chunk always).
pub async fn logs_after<T: Transaction>(
    tx: &mut T,
    id: JobId,
    after: Option<(u32, u64)>,
    lines_max: usize,
    bytes_max: usize,
) -> Result<LogPage, Error> {
    let bytes_max = bytes_max.min(LOG_PAGE_MAX_BYTES);
    let mut range = keys::logs_of(id.0);
    if let Some((a, s)) = after {
        range.begin = KeyRange::single(&keys::log_chunk(id.0, a, s)).end;
    }
    let mut lines = Vec::new();
    let mut bytes = 0usize;
    let mut want = LOG_PAGE_FIRST_READ_ROWS;
    while lines.len() < lines_max {
        let want_now = want.clamp(1, (lines_max - lines.len()).min(RANGE_MAX_ROWS));
        let rows = tx
            .get_range(&range, RangeOptions::limit(want_now).snapshot())
            .await?;
        let ended = rows.len() < want_now;
        for (k, v) in rows {
            if !lines.is_empty() && bytes + v.len() > bytes_max {
                return Ok(LogPage { lines, more: true });
            }
            bytes += v.len();
            let (_, attempt, seq) = keys::log_chunk_parts(&k)?;
            lines.push(decode_chunk(attempt, seq, &v));
            range.begin = KeyRange::single(&k).end;
        }
        if ended {
            return Ok(LogPage { lines, more: false });
        }
        // As many rows as would fill the rest of the page if they weigh what these did.
        let weight = (bytes / lines.len()).max(1);
        want = bytes_max.saturating_sub(bytes) / weight + 1;
    }
    Ok(LogPage { lines, more: true })
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
