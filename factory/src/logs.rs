//! A job's output on its way to the coordinator. One pump task reads the job's stdout and
//! stderr, decodes them as UTF-8 (lossily, without splitting a character across reads) and
//! batches them into chunks of at most [`LOG_CHUNK_MAX_BYTES`] or [`LOG_BATCH_MS`] of output,
//! one stream per chunk, in the order the output arrived. Chunks wait in a bounded queue for the
//! sender; when the coordinator is slower than the job, new output beyond
//! [`LOG_QUEUE_MAX_BYTES`] is dropped and a marker line says how much. Once the coordinator
//! takes no more of the job's output (its per-job log limit), the queue is discarded: it holds
//! nothing and takes nothing more.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gigafactory_core::redact::{RedactStream, Redactor};
use gigafactory_core::wire::{LogChunk, LogStream};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// A chunk is sent once it holds this much output...
pub const LOG_CHUNK_MAX_BYTES: usize = 16 * 1024;
/// ...or once its oldest output is this old.
pub const LOG_BATCH_MS: u64 = 200;
/// Output waiting for the coordinator, per job; beyond it output is dropped.
pub const LOG_QUEUE_MAX_BYTES: usize = 4 * 1024 * 1024;
/// One read from a pipe takes at most this much.
const READ_BUF_BYTES: usize = 8 * 1024;

/// Decodes a byte stream as UTF-8 without replacing a character that a read boundary split in
/// two: the incomplete tail (at most 3 bytes) waits for the next read.
#[derive(Debug, Default)]
pub struct Utf8Carry {
    tail: Vec<u8>,
}

impl Utf8Carry {
    /// The text of `bytes` (invalid sequences become U+FFFD), holding back an incomplete
    /// character at the end.
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        let mut data = std::mem::take(&mut self.tail);
        data.extend_from_slice(bytes);
        let keep = incomplete_tail_len(&data);
        self.tail = data.split_off(data.len() - keep);
        String::from_utf8_lossy(&data).into_owned()
    }

    /// The held-back bytes at the end of the stream, as text.
    pub fn finish(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.tail)).into_owned()
    }
}

/// How many bytes at the end of `data` start a UTF-8 character that is not complete yet.
fn incomplete_tail_len(data: &[u8]) -> usize {
    // A character is at most 4 bytes: look back at most 3 for its lead byte.
    for back in 1..=data.len().min(3) {
        let byte = data[data.len() - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: the lead is further back
        }
        let width = match byte {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return 0, // not a lead byte: invalid, let the lossy decoder replace it
        };
        return if width > back { back } else { 0 };
    }
    0
}

/// Batches text into chunks: one stream per chunk, at most `max_bytes` each (cut after a line
/// break when there is one), and none older than `max_age`.
#[derive(Debug)]
pub struct LogBatcher {
    max_bytes: usize,
    max_age: Duration,
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    stream: LogStream,
    data: String,
    /// When the oldest output in `data` arrived.
    since: Instant,
}

impl LogBatcher {
    pub fn new(max_bytes: usize, max_age: Duration) -> Self {
        assert!(max_bytes >= 4, "a chunk must hold any one character");
        LogBatcher {
            max_bytes,
            max_age,
            pending: None,
        }
    }

    /// Adds output that arrived at `now`; returns the chunks it completed, in order.
    pub fn push(
        &mut self,
        stream: LogStream,
        text: &str,
        now: Instant,
    ) -> Vec<(LogStream, String)> {
        let mut out = Vec::new();
        if text.is_empty() {
            return out;
        }
        // A chunk holds one stream; output of the other stream closes it, which keeps the two
        // streams in the order they were read. A chunk past its age closes too, even when a
        // flood of output keeps the flush timer from running.
        if let Some(p) = &self.pending
            && (p.stream != stream || now.duration_since(p.since) >= self.max_age)
        {
            out.extend(self.flush());
        }
        let pending = self.pending.get_or_insert_with(|| Pending {
            stream,
            data: String::new(),
            since: now,
        });
        pending.data.push_str(text);
        while pending.data.len() >= self.max_bytes {
            let cut = cut_point(&pending.data, self.max_bytes);
            let rest = pending.data.split_off(cut);
            out.push((stream, std::mem::replace(&mut pending.data, rest)));
            pending.since = now;
        }
        if pending.data.is_empty() {
            self.pending = None;
        }
        debug_assert!(
            out.iter()
                .all(|(_, d)| d.len() <= self.max_bytes && !d.is_empty())
        );
        out
    }

    /// When the pending chunk must be sent, if there is one.
    pub fn due(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.since + self.max_age)
    }

    /// The pending chunk, now.
    pub fn flush(&mut self) -> Option<(LogStream, String)> {
        self.pending.take().map(|p| (p.stream, p.data))
    }
}

/// Where to cut `data` (longer than `max`) so the first part is at most `max` bytes: after the
/// last line break that fits, else at the last character boundary that fits.
fn cut_point(data: &str, max: usize) -> usize {
    let limit = data.floor_char_boundary(max);
    match data[..limit].rfind('\n') {
        Some(i) => i + 1,
        None => limit,
    }
}

/// The bytes-bounded queue of chunks between the pump and the sender, with sequence numbers.
#[derive(Debug)]
pub struct QueueState {
    chunks: VecDeque<LogChunk>,
    /// Bytes of `data` in `chunks`.
    queued_bytes: usize,
    max_bytes: usize,
    /// Output dropped since the last marker.
    dropped_bytes: u64,
    next_seq: u64,
    closed: bool,
    /// The coordinator takes no more of this job's output: nothing is queued from now on, not
    /// even a drop marker (nobody would receive it).
    discarded: bool,
}

impl QueueState {
    pub fn new(max_bytes: usize) -> Self {
        QueueState {
            chunks: VecDeque::new(),
            queued_bytes: 0,
            max_bytes,
            dropped_bytes: 0,
            next_seq: 0,
            closed: false,
            discarded: false,
        }
    }

    /// Queues a chunk, or drops it when the queue is full.
    pub fn push(&mut self, stream: LogStream, data: String) {
        debug_assert!(!self.closed, "no output after the end");
        if self.discarded {
            return;
        }
        if self.queued_bytes + data.len() > self.max_bytes {
            self.dropped_bytes += data.len() as u64;
            return;
        }
        self.push_drop_marker();
        self.enqueue(stream, data);
    }

    /// No more output will come; a drop not yet reported gets its marker now.
    pub fn close(&mut self) {
        self.push_drop_marker();
        self.closed = true;
    }

    /// Drops what is queued and everything pushed from now on.
    pub fn discard(&mut self) {
        self.discarded = true;
        self.chunks.clear();
        self.queued_bytes = 0;
        self.dropped_bytes = 0;
    }

    pub fn pop(&mut self) -> Option<LogChunk> {
        let chunk = self.chunks.pop_front()?;
        self.queued_bytes -= chunk.data.len();
        Some(chunk)
    }

    pub fn is_finished(&self) -> bool {
        self.closed && self.chunks.is_empty()
    }

    fn push_drop_marker(&mut self) {
        if self.dropped_bytes > 0 {
            // The marker may overshoot the bound by its own few bytes: losing the fact that
            // output was lost would be worse.
            let marker = format!(
                "[gigafactory: {} bytes of output dropped]\n",
                self.dropped_bytes
            );
            self.dropped_bytes = 0;
            self.enqueue(LogStream::Stderr, marker);
        }
    }

    fn enqueue(&mut self, stream: LogStream, data: String) {
        self.queued_bytes += data.len();
        self.chunks.push_back(LogChunk {
            seq: self.next_seq,
            stream,
            data,
        });
        self.next_seq += 1;
    }
}

/// [`QueueState`] shared by the pump (and the job, for its own notices) and the one sender.
#[derive(Debug)]
pub struct LogQueue {
    state: Mutex<QueueState>,
    ready: Notify,
}

impl LogQueue {
    pub fn new(max_bytes: usize) -> Arc<Self> {
        Arc::new(LogQueue {
            state: Mutex::new(QueueState::new(max_bytes)),
            ready: Notify::new(),
        })
    }

    pub fn push(&self, stream: LogStream, data: String) {
        self.state
            .lock()
            .expect("log queue lock")
            .push(stream, data);
        // One consumer: `notify_one` keeps a permit if it is not waiting yet, so no wakeup is lost.
        self.ready.notify_one();
    }

    pub fn close(&self) {
        self.state.lock().expect("log queue lock").close();
        self.ready.notify_one();
    }

    /// The coordinator takes no more of this job's output: drops what is queued and whatever
    /// the job writes from now on, so a job that keeps writing costs no memory.
    pub fn discard(&self) {
        self.state.lock().expect("log queue lock").discard();
    }

    /// The next chunk to send, waiting for one; `None` once the queue is closed and empty.
    pub async fn next(&self) -> Option<LogChunk> {
        loop {
            {
                let mut state = self.state.lock().expect("log queue lock");
                if let Some(chunk) = state.pop() {
                    return Some(chunk);
                }
                if state.is_finished() {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }
}

/// Reads the job's stdout and stderr until both end (or `give_up` fires, when the process has
/// exited but something outside its group holds a pipe open), feeding `queue` with the text
/// `redactor` left (each stream holds back what could still become a secret with its next
/// read). Does not close the queue: the job may add its own notices after the output.
pub async fn pump<O, E>(
    mut stdout: Option<O>,
    mut stderr: Option<E>,
    queue: Arc<LogQueue>,
    redactor: Arc<Redactor>,
    mut give_up: oneshot::Receiver<()>,
) where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let mut batcher = LogBatcher::new(LOG_CHUNK_MAX_BYTES, Duration::from_millis(LOG_BATCH_MS));
    let mut out_text = Redacting::new(&redactor);
    let mut err_text = Redacting::new(&redactor);
    let mut out_buf = vec![0u8; READ_BUF_BYTES];
    let mut err_buf = vec![0u8; READ_BUF_BYTES];
    let emit = |chunks: Vec<(LogStream, String)>| {
        for (stream, data) in chunks {
            queue.push(stream, data);
        }
    };
    while stdout.is_some() || stderr.is_some() {
        let due = batcher.due();
        // Biased, stdout first: when both pipes have data, what the job wrote first to stdout
        // was written before what is on stderr only if we look at stdout first; an unbiased
        // choice could reorder `echo a; echo b >&2`.
        tokio::select! {
            biased;
            _ = &mut give_up => break,
            read = read_some(&mut stdout, &mut out_buf) => match read {
                Ok(n) if n > 0 => emit(batcher.push(LogStream::Stdout, &out_text.decode(&out_buf[..n]), Instant::now())),
                _ => {
                    stdout = None;
                    emit(batcher.push(LogStream::Stdout, &out_text.finish(), Instant::now()));
                }
            },
            read = read_some(&mut stderr, &mut err_buf) => match read {
                Ok(n) if n > 0 => emit(batcher.push(LogStream::Stderr, &err_text.decode(&err_buf[..n]), Instant::now())),
                _ => {
                    stderr = None;
                    emit(batcher.push(LogStream::Stderr, &err_text.finish(), Instant::now()));
                }
            },
            _ = sleep_until_due(due) => emit(batcher.flush().into_iter().collect()),
        }
    }
    let now = Instant::now();
    emit(batcher.push(LogStream::Stdout, &out_text.finish(), now));
    emit(batcher.push(LogStream::Stderr, &err_text.finish(), now));
    emit(batcher.flush().into_iter().collect());
}

/// One stream's text: whole characters (`Utf8Carry`), then redacted (`RedactStream`).
struct Redacting<'a> {
    utf8: Utf8Carry,
    redact: RedactStream,
    redactor: &'a Redactor,
}

impl<'a> Redacting<'a> {
    fn new(redactor: &'a Redactor) -> Self {
        Redacting {
            utf8: Utf8Carry::default(),
            redact: RedactStream::default(),
            redactor,
        }
    }

    fn decode(&mut self, bytes: &[u8]) -> String {
        let text = self.utf8.decode(bytes);
        self.redact.push(self.redactor, &text)
    }

    fn finish(&mut self) -> String {
        let text = self.utf8.finish();
        let mut out = self.redact.push(self.redactor, &text);
        out.push_str(&self.redact.finish(self.redactor));
        out
    }
}

/// Reads from a pipe that may be gone (then never ready).
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match reader {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: Duration = Duration::from_millis(LOG_BATCH_MS);

    #[test]
    fn keeps_a_split_character_for_the_next_read() {
        let mut carry = Utf8Carry::default();
        let text = "héllo €";
        let bytes = text.as_bytes();
        let mut out = String::new();
        // Every split point, including inside the 2-byte é and the 3-byte €.
        for cut in 0..=bytes.len() {
            out.clear();
            out.push_str(&carry.decode(&bytes[..cut]));
            out.push_str(&carry.decode(&bytes[cut..]));
            out.push_str(&carry.finish());
            assert_eq!(out, text, "cut at {cut}");
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut carry = Utf8Carry::default();
        assert_eq!(carry.decode(b"a\xffb"), "a\u{fffd}b");
        // A lone lead byte at the very end waits, and at the end of the stream is replaced.
        assert_eq!(carry.decode(b"c\xe2"), "c");
        assert_eq!(carry.finish(), "\u{fffd}");
    }

    #[test]
    fn small_output_waits_until_its_age_then_flushes() {
        let t0 = Instant::now();
        let mut b = LogBatcher::new(LOG_CHUNK_MAX_BYTES, AGE);
        assert!(b.push(LogStream::Stdout, "hello\n", t0).is_empty());
        assert!(
            b.push(LogStream::Stdout, "world\n", t0 + AGE / 2)
                .is_empty()
        );
        assert_eq!(
            b.due(),
            Some(t0 + AGE),
            "the age counts from the oldest output"
        );
        assert_eq!(
            b.flush(),
            Some((LogStream::Stdout, "hello\nworld\n".into()))
        );
        assert_eq!(b.due(), None);
    }

    #[test]
    fn output_past_the_age_closes_the_chunk_on_the_next_push() {
        let t0 = Instant::now();
        let mut b = LogBatcher::new(LOG_CHUNK_MAX_BYTES, AGE);
        b.push(LogStream::Stdout, "old\n", t0);
        let out = b.push(LogStream::Stdout, "new\n", t0 + AGE);
        assert_eq!(out, [(LogStream::Stdout, "old\n".into())]);
        assert_eq!(b.flush(), Some((LogStream::Stdout, "new\n".into())));
    }

    #[test]
    fn a_stream_switch_closes_the_chunk_in_order() {
        let t0 = Instant::now();
        let mut b = LogBatcher::new(LOG_CHUNK_MAX_BYTES, AGE);
        b.push(LogStream::Stdout, "hello\n", t0);
        let out = b.push(LogStream::Stderr, "oops\n", t0);
        assert_eq!(out, [(LogStream::Stdout, "hello\n".into())]);
        assert_eq!(b.flush(), Some((LogStream::Stderr, "oops\n".into())));
    }

    #[test]
    fn big_output_is_cut_after_line_breaks_within_the_limit() {
        let t0 = Instant::now();
        let max = 64;
        let mut b = LogBatcher::new(max, AGE);
        let line = format!("{}\n", "x".repeat(29)); // 30 bytes
        let mut chunks = Vec::new();
        for _ in 0..5 {
            chunks.extend(b.push(LogStream::Stdout, &line, t0));
        }
        chunks.extend(b.flush());
        // Two lines (60 bytes) fit in 64; the cut never splits a line.
        assert_eq!(chunks.len(), 3);
        assert!(
            chunks
                .iter()
                .all(|(_, d)| d.len() <= max && d.ends_with('\n'))
        );
        assert_eq!(
            chunks.iter().map(|(_, d)| d.as_str()).collect::<String>(),
            line.repeat(5)
        );
    }

    #[test]
    fn a_line_longer_than_a_chunk_is_cut_on_a_character_boundary() {
        let t0 = Instant::now();
        let max = 16;
        let mut b = LogBatcher::new(max, AGE);
        let text = "€".repeat(20); // 60 bytes, 3 per character: 16 is not a boundary
        let mut chunks = b.push(LogStream::Stderr, &text, t0);
        chunks.extend(b.flush());
        assert!(chunks.iter().all(|(_, d)| d.len() <= max));
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|(_, d)| d.len() == 15),
            "5 whole characters each"
        );
        assert_eq!(
            chunks.iter().map(|(_, d)| d.as_str()).collect::<String>(),
            text
        );
        // Exactly at the limit, the chunk goes out at once.
        let mut b = LogBatcher::new(max, AGE);
        assert_eq!(b.push(LogStream::Stdout, &"y".repeat(max), t0).len(), 1);
        assert_eq!(b.flush(), None);
    }

    #[test]
    fn a_full_queue_drops_output_and_says_how_much() {
        let mut q = QueueState::new(10);
        q.push(LogStream::Stdout, "12345678".into());
        q.push(LogStream::Stdout, "abcdef".into()); // dropped: 8 + 6 > 10
        q.push(LogStream::Stdout, "ghi".into()); // dropped too
        let first = q.pop().unwrap();
        assert_eq!((first.seq, first.data.as_str()), (0, "12345678"));
        q.push(LogStream::Stdout, "xy".into());
        let marker = q.pop().unwrap();
        assert_eq!(marker.seq, 1);
        assert_eq!(marker.stream, LogStream::Stderr);
        assert_eq!(marker.data, "[gigafactory: 9 bytes of output dropped]\n");
        let next = q.pop().unwrap();
        assert_eq!((next.seq, next.data.as_str()), (2, "xy"));
        assert!(q.pop().is_none());
    }

    #[test]
    fn closing_reports_a_drop_not_yet_reported() {
        let mut q = QueueState::new(4);
        q.push(LogStream::Stdout, "1234".into());
        q.push(LogStream::Stdout, "5".into());
        q.close();
        assert!(!q.is_finished());
        assert_eq!(q.pop().unwrap().data, "1234");
        assert_eq!(
            q.pop().unwrap().data,
            "[gigafactory: 1 bytes of output dropped]\n"
        );
        assert!(q.is_finished());
    }

    #[test]
    fn a_discarded_queue_holds_nothing_and_takes_nothing_more() {
        let mut q = QueueState::new(10);
        q.push(LogStream::Stdout, "12345678".into());
        q.push(LogStream::Stdout, "abcdef".into()); // dropped: the queue is full
        q.discard();
        q.push(LogStream::Stderr, "later".into());
        q.close();
        assert!(q.pop().is_none(), "no chunk and no drop marker");
        assert!(q.is_finished());
    }

    #[tokio::test]
    async fn the_pump_keeps_output_order_and_ends_with_the_pipes() {
        let queue = LogQueue::new(LOG_QUEUE_MAX_BYTES);
        let (_keep, give_up) = oneshot::channel();
        let stdout: &[u8] = b"hello\nworld\n";
        let stderr: &[u8] = b"oops\n";
        let redactor = Arc::new(Redactor::default());
        pump(Some(stdout), Some(stderr), queue.clone(), redactor, give_up).await;
        queue.close();
        let mut chunks = Vec::new();
        while let Some(c) = queue.next().await {
            chunks.push(c);
        }
        let seqs: Vec<u64> = chunks.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, (0..chunks.len() as u64).collect::<Vec<_>>());
        let out: String = chunks
            .iter()
            .filter(|c| c.stream == LogStream::Stdout)
            .map(|c| c.data.as_str())
            .collect();
        let err: String = chunks
            .iter()
            .filter(|c| c.stream == LogStream::Stderr)
            .map(|c| c.data.as_str())
            .collect();
        assert_eq!(out, "hello\nworld\n");
        assert_eq!(err, "oops\n");
    }

    #[tokio::test]
    async fn the_pump_redacts_a_secret_written_across_two_reads() {
        let queue = LogQueue::new(LOG_QUEUE_MAX_BYTES);
        let (_keep, give_up) = oneshot::channel();
        let (mut writer, reader) = tokio::io::duplex(64);
        let redactor = Arc::new(Redactor::new([("API_KEY", "sk-live-0123456789")]));
        let pumped = tokio::spawn(pump(
            Some(reader),
            None::<&[u8]>,
            queue.clone(),
            redactor,
            give_up,
        ));
        use tokio::io::AsyncWriteExt as _;
        writer.write_all(b"key=sk-live-01").await.unwrap();
        writer.flush().await.unwrap();
        // The pump must read the first half alone before the second is written.
        tokio::task::yield_now().await;
        writer.write_all(b"23456789 done\n").await.unwrap();
        drop(writer);
        pumped.await.unwrap();
        queue.close();
        let mut out = String::new();
        while let Some(c) = queue.next().await {
            out.push_str(&c.data);
        }
        assert_eq!(out, "key=[secret API_KEY] done\n");
    }
}
