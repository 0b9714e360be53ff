//! `top`'s screen state: the last fleet reading (kept, and marked stale, while the
//! coordinator is out of reach), the recent events, which pane and row are selected, the
//! factories' sort and filter, the mode the keys act in (a filter being typed, a drain
//! waiting for `y`, help, a job's log) and the outcome of the last action. Readers' messages
//! and keys change it; drawing only reads it.

use std::collections::VecDeque;
use std::time::Instant;

use gigafactory_core::wire::{FleetEvent, LogLine, LogStream};

use super::model::{FactoryRow, Fleet, SortBy, Throughput, printable, visible_factories};

/// Events kept for the events pane, newest first (the node keeps its own backlog).
pub const EVENTS_KEPT: usize = 500;
/// Lines kept of an open log; older ones are dropped, and the pane says how many.
pub const LOG_LINES_KEPT: usize = 20_000;

/// The panes that hold rows, in the order Tab visits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Nodes,
    Factories,
    Queue,
    Events,
}

impl Pane {
    const ALL: [Pane; 4] = [Pane::Nodes, Pane::Factories, Pane::Queue, Pane::Events];

    fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    pub fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % Pane::ALL.len()]
    }

    pub fn prev(self) -> Pane {
        Pane::ALL[(self.index() + Pane::ALL.len() - 1) % Pane::ALL.len()]
    }
}

/// What a fleet refresh last came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// Nothing answered yet.
    Connecting,
    Up {
        at: Instant,
    },
    /// The last refreshes failed since `since`; the shown data is from before.
    Lost {
        since: Instant,
        error: String,
        /// No answer at all (rather than a refusal, a bad token say).
        unreachable: bool,
    },
}

/// A drain or an undrain of a factory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetAction {
    Drain,
    Undrain,
}

impl FleetAction {
    /// The API's verb: `POST /v1/factories/{id}/{verb}`.
    pub fn verb(self) -> &'static str {
        match self {
            FleetAction::Drain => "drain",
            FleetAction::Undrain => "undrain",
        }
    }
}

/// An action that waits for `y`.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub action: FleetAction,
    pub factory_id: String,
    pub name: String,
}

/// One line of an open log, and the stream it came on.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputLine {
    pub stream: Option<LogStream>,
    pub text: String,
}

/// A job's log, as its chunks arrive: split into lines, a line between attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct LogView {
    pub job_id: String,
    pub title: String,
    pub lines: VecDeque<OutputLine>,
    /// Lines dropped from the front past [`LOG_LINES_KEPT`].
    pub dropped: u64,
    /// Whether the last line is still open (its chunk ended without a newline).
    open: bool,
    last_attempt: Option<u32>,
    /// Lines scrolled up from the end; 0 follows new output.
    pub scroll_back: usize,
    /// Why the last read failed, until one succeeds.
    pub error: Option<String>,
}

impl LogView {
    pub fn new(job_id: String, title: String) -> Self {
        LogView {
            job_id,
            title,
            lines: VecDeque::new(),
            dropped: 0,
            open: false,
            last_attempt: None,
            scroll_back: 0,
            error: None,
        }
    }

    pub fn push(&mut self, l: &LogLine) {
        if self.last_attempt.is_some_and(|a| a != l.attempt) {
            self.open = false;
            self.add(None, format!("--- attempt {} ---", l.attempt));
        }
        self.last_attempt = Some(l.attempt);
        // A chunk ending in a newline closes its last line; the next chunk starts a new one.
        let body = l.data.strip_suffix('\n').unwrap_or(&l.data);
        let mut pieces = body.split('\n');
        if let Some(first) = pieces.next() {
            match self.lines.back_mut() {
                Some(last) if self.open && last.stream == Some(l.stream) => {
                    last.text.push_str(&printable(first))
                }
                _ => self.add(Some(l.stream), printable(first)),
            }
        }
        for piece in pieces {
            self.add(Some(l.stream), printable(piece));
        }
        self.open = !l.data.ends_with('\n');
    }

    fn add(&mut self, stream: Option<LogStream>, text: String) {
        self.lines.push_back(OutputLine { stream, text });
        if self.lines.len() > LOG_LINES_KEPT {
            self.lines.pop_front();
            self.dropped += 1;
        }
    }
}

/// How the keys act.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    /// Typing the factories' filter after `/`.
    Filter,
    Confirm(Confirm),
    Help,
    Log(Box<LogView>),
}

/// The outcome of the last action, or why a key did nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
}

pub struct App {
    pub coordinator: String,
    /// The last fleet reading that succeeded.
    pub fleet: Option<Fleet>,
    pub link: Link,
    pub throughput: Throughput,
    /// Newest first.
    pub events: VecDeque<FleetEvent>,
    /// Whether the events stream is connected.
    pub events_live: bool,
    pub focus: Pane,
    /// The selected row of each pane, in [`Pane::ALL`] order.
    selected: [usize; 4],
    pub sort: SortBy,
    pub filter: String,
    pub mode: Mode,
    pub notice: Option<Notice>,
}

impl App {
    pub fn new(coordinator: String) -> Self {
        App {
            coordinator,
            fleet: None,
            link: Link::Connecting,
            throughput: Throughput::default(),
            events: VecDeque::new(),
            events_live: false,
            focus: Pane::Factories,
            selected: [0; 4],
            sort: SortBy::default(),
            filter: String::new(),
            mode: Mode::Normal,
            notice: None,
        }
    }

    pub fn on_fleet(&mut self, fleet: Fleet, now: Instant) {
        self.throughput.push(fleet.stats.counters());
        self.fleet = Some(fleet);
        self.link = Link::Up { at: now };
        self.clamp_rows();
    }

    /// A failed refresh: the last reading stays, marked stale.
    pub fn on_fleet_failed(&mut self, error: String, unreachable: bool, now: Instant) {
        let since = match &self.link {
            Link::Lost { since, .. } => *since,
            _ => now,
        };
        self.link = Link::Lost {
            since,
            error,
            unreachable,
        };
    }

    pub fn on_event(&mut self, e: FleetEvent) {
        self.events.push_front(e);
        self.events.truncate(EVENTS_KEPT);
        // Keep the selected event selected as new ones arrive above it.
        let i = Pane::Events.index();
        if self.selected[i] > 0 {
            self.selected[i] = (self.selected[i] + 1).min(self.events.len() - 1);
        }
    }

    /// Whether what is shown is older than the last refresh attempt.
    pub fn stale(&self) -> bool {
        matches!(self.link, Link::Lost { .. })
    }

    /// The factories as the pane lists them.
    pub fn factories(&self) -> Vec<&FactoryRow> {
        match &self.fleet {
            Some(f) => visible_factories(&f.factories, self.sort, &self.filter),
            None => Vec::new(),
        }
    }

    pub fn rows(&self, pane: Pane) -> usize {
        let Some(fleet) = &self.fleet else {
            return match pane {
                Pane::Events => self.events.len(),
                _ => 0,
            };
        };
        match pane {
            // A standalone node shows itself.
            Pane::Nodes => fleet.cluster.nodes.len().max(1),
            Pane::Factories => self.factories().len(),
            Pane::Queue => fleet.stats.queue_by_product().len(),
            Pane::Events => self.events.len(),
        }
    }

    /// The selected row of `pane` (0 when it has none).
    pub fn selected(&self, pane: Pane) -> usize {
        self.selected[pane.index()]
    }

    /// Moves the selection of the focused pane by `by` rows, within its rows.
    pub fn move_selection(&mut self, by: isize) {
        let rows = self.rows(self.focus);
        let i = &mut self.selected[self.focus.index()];
        *i = i.saturating_add_signed(by).min(rows.saturating_sub(1));
    }

    /// Keeps every selection within its pane's rows (a refresh or a filter may shorten one).
    pub fn clamp_rows(&mut self) {
        for pane in Pane::ALL {
            let last = self.rows(pane).saturating_sub(1);
            let i = &mut self.selected[pane.index()];
            *i = (*i).min(last);
        }
    }

    pub fn selected_factory(&self) -> Option<&FactoryRow> {
        self.factories()
            .get(self.selected(Pane::Factories))
            .copied()
    }

    pub fn selected_event(&self) -> Option<&FleetEvent> {
        self.events.get(self.selected(Pane::Events))
    }

    pub fn notice(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(attempt: u32, seq: u64, stream: LogStream, data: &str) -> LogLine {
        LogLine {
            attempt,
            seq,
            stream,
            data: data.into(),
            at: None,
        }
    }

    fn texts(v: &LogView) -> Vec<&str> {
        v.lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn log_chunks_join_into_lines_with_a_line_between_attempts() {
        let mut v = LogView::new("j".into(), "t".into());
        v.push(&chunk(1, 0, LogStream::Stdout, "hel"));
        v.push(&chunk(1, 1, LogStream::Stdout, "lo\nwor"));
        v.push(&chunk(1, 2, LogStream::Stdout, "ld\n"));
        v.push(&chunk(1, 3, LogStream::Stdout, "\n"));
        v.push(&chunk(1, 4, LogStream::Stderr, "\x1b[31moops\x1b[0m\n"));
        v.push(&chunk(2, 0, LogStream::Stdout, "again\n"));
        assert_eq!(
            texts(&v),
            ["hello", "world", "", "oops", "--- attempt 2 ---", "again"]
        );
        assert_eq!(v.lines[3].stream, Some(LogStream::Stderr));
    }

    #[test]
    fn an_open_line_is_not_continued_by_the_other_stream() {
        let mut v = LogView::new("j".into(), "t".into());
        v.push(&chunk(1, 0, LogStream::Stdout, "progress "));
        v.push(&chunk(1, 1, LogStream::Stderr, "warning\n"));
        assert_eq!(texts(&v), ["progress ", "warning"]);
    }

    #[test]
    fn a_long_log_keeps_its_last_lines_and_counts_the_dropped() {
        let mut v = LogView::new("j".into(), "t".into());
        let many = "x\n".repeat(LOG_LINES_KEPT + 5);
        v.push(&chunk(1, 0, LogStream::Stdout, &many));
        assert_eq!(v.lines.len(), LOG_LINES_KEPT);
        assert_eq!(v.dropped, 5);
    }

    #[test]
    fn tab_visits_every_pane_and_comes_back() {
        let mut p = Pane::Nodes;
        for _ in 0..4 {
            p = p.next();
        }
        assert_eq!(p, Pane::Nodes);
        assert_eq!(Pane::Nodes.prev(), Pane::Events);
    }
}
