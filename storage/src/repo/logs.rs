//! Job output in the store: the chunk format, the per-job bound, and reading it back in
//! order. A stored chunk is one byte naming the stream (`O` stdout, `E` stderr), the time the
//! coordinator kept it (8 bytes, little-endian Unix ms), then the text, keyed by `(job,
//! attempt, seq)`; chunks kept before they had a time start with `o` or `e` and the text
//! follows at once. A counter of the bytes kept guards the bound and is the key log followers
//! watch.

use gigafactory_core::job::{Job, JobId, Millis};
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

/// Appends `chunk`, kept at `now`, to the output of `job`'s current attempt, unless the job's
/// output is full. The caller has checked the writer's lease.
pub async fn append_log<T: Transaction>(
    tx: &mut T,
    job: &Job,
    chunk: &LogChunk,
    now: Millis,
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
    let data = encode_chunk(chunk, now);
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

/// Bytes before a timed chunk's text: the stream's byte and the time.
const TIMED_HEADER_BYTES: usize = 9;

fn encode_chunk(chunk: &LogChunk, at: Millis) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.data.len() + TIMED_HEADER_BYTES);
    out.push(match chunk.stream {
        LogStream::Stdout => b'O',
        LogStream::Stderr => b'E',
    });
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(chunk.data.as_bytes());
    out
}

fn decode_chunk(attempt: u32, seq: u64, v: &[u8]) -> LogLine {
    let first = v.first().copied().unwrap_or(b'o');
    let stream = if first.eq_ignore_ascii_case(&b'e') {
        LogStream::Stderr
    } else {
        LogStream::Stdout
    };
    let timed = first.is_ascii_uppercase() && v.len() >= TIMED_HEADER_BYTES;
    let (at, text) = if timed {
        let at = u64::from_le_bytes(v[1..TIMED_HEADER_BYTES].try_into().unwrap_or([0; 8]));
        (Some(at), &v[TIMED_HEADER_BYTES..])
    } else {
        (None, v.get(1..).unwrap_or_default())
    };
    LogLine {
        attempt,
        seq,
        stream,
        data: String::from_utf8_lossy(text).into_owned(),
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_reads_back_with_its_stream_position_and_time() {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let chunk = LogChunk {
                seq: 3,
                stream,
                data: "héllo\n".into(),
            };
            let line = decode_chunk(2, 3, &encode_chunk(&chunk, 1_700_000_000_123));
            assert_eq!(
                line,
                LogLine {
                    attempt: 2,
                    seq: 3,
                    stream,
                    data: "héllo\n".into(),
                    at: Some(1_700_000_000_123),
                }
            );
        }
    }

    /// The stored bytes are a format: pinned, so a change of them is a decision.
    #[test]
    fn a_timed_chunk_has_these_bytes() {
        let chunk = LogChunk {
            seq: 0,
            stream: LogStream::Stderr,
            data: "hi".into(),
        };
        assert_eq!(
            encode_chunk(&chunk, 0x0102_0304_0506),
            [b'E', 6, 5, 4, 3, 2, 1, 0, 0, b'h', b'i']
        );
    }

    #[test]
    fn a_chunk_kept_before_chunks_had_a_time_reads_without_one() {
        for (bytes, stream) in [
            (&b"ohi"[..], LogStream::Stdout),
            (b"ehi", LogStream::Stderr),
        ] {
            let line = decode_chunk(1, 0, bytes);
            assert_eq!(
                (line.stream, line.data.as_str(), line.at),
                (stream, "hi", None)
            );
        }
    }
}
