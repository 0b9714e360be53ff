//! How the CLI prints what the API answers. `--output text` (the default) prints tables with a
//! header row and lines for people, coloured only when standard output is a terminal (and
//! `NO_COLOR` is unset), so a pipe gets plain text with the same headers; `--output json`
//! (`-o json`) prints the API's answer as it came, for scripts. Times read relative to now
//! ("3m ago", "in 2h 5m", "for 2m 10s") unless `--utc` asks for ISO-8601 UTC; no command prints
//! epoch milliseconds.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use gigafactory_core::job::Millis;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Tables and lines for people.
    #[default]
    Text,
    /// The API's answer, as JSON.
    Json,
}

/// The output flags of every command that prints what the API answers.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct View {
    /// `text`: tables for people (coloured on a terminal, plain when piped); `json`: the API's
    /// answer as it came.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
    /// Print times as ISO-8601 UTC (2026-12-02T15:30:06Z) instead of relative to now (3m ago).
    #[arg(long, global = true)]
    pub utc: bool,
}

impl View {
    pub fn json(&self) -> bool {
        self.output == Output::Json
    }

    /// How text is written now: colour when standard output is a terminal.
    pub fn fmt(&self) -> Fmt {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Fmt {
            colour: std::io::stdout().is_terminal() && !no_color,
            utc: self.utc,
            now: now_ms(),
        }
    }

    /// Prints `answer` as JSON with `-o json`; else reads it as `T` and prints `text` of it.
    pub fn print<T: DeserializeOwned>(
        &self,
        answer: Value,
        text: impl FnOnce(&Fmt, &T) -> String,
    ) -> Result<()> {
        if self.json() {
            return print_json(&answer);
        }
        let read: T = serde_json::from_value(answer.clone())
            .with_context(|| format!("unexpected answer: {answer}"))?;
        print!("{}", text(&self.fmt(), &read));
        Ok(())
    }
}

pub fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Text styles the tables use; each is plain without colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Bold,
    Dim,
    Green,
    Red,
    Yellow,
    Cyan,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Bold => "1",
            Style::Dim => "2",
            Style::Green => "32",
            Style::Red => "31",
            Style::Yellow => "33",
            Style::Cyan => "36",
        }
    }

    /// A job's state, coloured by how it stands: green done well, red ended badly, yellow
    /// holding a lease, cyan waiting for a person, dim waiting or stopped.
    pub fn of_state(state: &str) -> Style {
        match state {
            "succeeded" | "shipped" => Style::Green,
            "dead" | "failed" | "rejected" => Style::Red,
            "leased" | "running" | "preempting" => Style::Yellow,
            "review" => Style::Cyan,
            "cancelled" | "pending" => Style::Dim,
            _ => Style::Plain,
        }
    }
}

/// How text is written: with colour or not, times relative to `now` or in UTC.
#[derive(Clone, Copy, Debug)]
pub struct Fmt {
    pub colour: bool,
    pub utc: bool,
    pub now: Millis,
}

impl Fmt {
    /// Plain, relative to `now`: what tests compare against.
    #[cfg(test)]
    pub fn plain(now: Millis) -> Self {
        Fmt {
            colour: false,
            utc: false,
            now,
        }
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        if !self.colour || style == Style::Plain {
            return text.to_owned();
        }
        format!("\x1b[{}m{text}\x1b[0m", style.code())
    }

    /// A moment: "3m ago", "in 2h 5m", or with `--utc` "2026-12-02T15:30:06Z".
    pub fn at(&self, at: Millis) -> String {
        if self.utc {
            return iso8601(at);
        }
        match self.now.checked_sub(at) {
            Some(ago) if ago < 1_000 => "just now".to_owned(),
            Some(ago) => format!("{} ago", span(ago)),
            None => format!("in {}", span(at - self.now)),
        }
    }

    /// A moment in a JSON value (ms since the epoch), or `-` when it has none.
    pub fn at_value(&self, v: &Value) -> String {
        v.as_u64()
            .map(|ms| self.at(ms))
            .unwrap_or_else(|| "-".into())
    }

    /// Since when a state holds: "for 2m 10s", or with `--utc` "since 2026-...Z".
    pub fn since(&self, at: Millis) -> String {
        if self.utc {
            format!("since {}", iso8601(at))
        } else {
            format!("for {}", span(self.now.saturating_sub(at)))
        }
    }
}

/// `at` (ms since the epoch) as ISO-8601 UTC to the second.
pub fn iso8601(at: Millis) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(at)).to_string()
}

/// A length of time in its two largest units: "850ms", "42s", "2m 10s", "3h 5m", "2d 4h".
pub fn span(ms: Millis) -> String {
    const UNITS: [(Millis, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let mut parts = Vec::new();
    let mut rest = ms;
    for (unit, name) in UNITS {
        if rest >= unit || !parts.is_empty() {
            parts.push((rest / unit, name));
            rest %= unit;
        }
        if parts.len() == 2 {
            break;
        }
    }
    // "2m 0s" reads as "2m".
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n}{name}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One cell of a table: its text and how it is painted.
pub struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    pub fn styled(text: impl Into<String>, style: Style) -> Self {
        Cell {
            text: text.into(),
            style,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::styled(text, Style::Plain)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::styled(text, Style::Plain)
    }
}

/// Rows under a header, each column as wide as its widest cell, two spaces apart.
pub struct Table {
    head: Vec<&'static str>,
    /// Columns aligned to the right (numbers, amounts).
    right: Vec<usize>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(head: &[&'static str]) -> Self {
        Table {
            head: head.to_vec(),
            right: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Aligns `columns` (by index) to the right.
    pub fn right(mut self, columns: &[usize]) -> Self {
        self.right = columns.to_vec();
        self
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.head.len(), "a cell per column");
        self.rows.push(cells);
    }

    pub fn render(&self, fmt: &Fmt) -> String {
        let width = |c: &str| c.chars().count();
        let mut widths: Vec<usize> = self.head.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(&cell.text));
            }
        }
        let last = self.head.len().saturating_sub(1);
        let line = |cells: Vec<(&str, Style)>| {
            let mut out = String::new();
            for (i, (text, style)) in cells.into_iter().enumerate() {
                // Padding is counted on the text, outside the colour codes, so columns line
                // up on a terminal too; the last column is not padded on the left.
                let pad = " ".repeat(widths[i] - width(text));
                let painted = fmt.paint(style, text);
                match (self.right.contains(&i), i == last) {
                    (true, _) => out.push_str(&format!("{pad}{painted}")),
                    (false, true) => out.push_str(&painted),
                    (false, false) => out.push_str(&format!("{painted}{pad}")),
                }
                if i != last {
                    out.push_str("  ");
                }
            }
            format!("{}\n", out.trim_end())
        };
        let mut out = line(self.head.iter().map(|h| (*h, Style::Bold)).collect());
        for row in &self.rows {
            out.push_str(&line(
                row.iter().map(|c| (c.text.as_str(), c.style)).collect(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 15:30:00 UTC.
    const NOW: Millis = 1_796_225_400_000;

    #[test]
    fn times_read_relative_to_now_and_in_iso_utc_with_utc() {
        let fmt = Fmt::plain(NOW);
        assert_eq!(fmt.at(NOW - 130_000), "2m 10s ago");
        assert_eq!(fmt.at(NOW - 400), "just now");
        assert_eq!(fmt.at(NOW + 2 * 3_600_000 + 300_000), "in 2h 5m");
        assert_eq!(fmt.since(NOW - 42_000), "for 42s");
        let utc = Fmt { utc: true, ..fmt };
        assert_eq!(utc.at(NOW + 6_000), "2026-12-02T15:30:06Z");
        assert_eq!(utc.since(NOW), "since 2026-12-02T15:30:00Z");
    }

    #[test]
    fn a_span_keeps_its_two_largest_units() {
        assert_eq!(span(850), "850ms");
        assert_eq!(span(59_999), "59s");
        assert_eq!(span(120_000), "2m");
        assert_eq!(span(3 * 86_400_000 + 4 * 3_600_000 + 59_000), "3d 4h");
    }

    #[test]
    fn a_table_has_a_header_and_colour_only_when_asked() {
        let mut t = Table::new(&["NAME", "COUNT", "NOTE"]).right(&[1]);
        t.row(vec![
            "a".into(),
            "7".into(),
            Cell::styled("ok", Style::Green),
        ]);
        t.row(vec!["longer".into(), "1234".into(), "".into()]);
        let plain = t.render(&Fmt::plain(NOW));
        assert_eq!(
            plain,
            "NAME    COUNT  NOTE\na           7  ok\nlonger   1234\n"
        );
        let coloured = t.render(&Fmt {
            colour: true,
            ..Fmt::plain(NOW)
        });
        assert!(
            coloured.starts_with("\x1b[1mNAME\x1b[0m    "),
            "{coloured:?}"
        );
        assert!(coloured.contains("\x1b[32mok\x1b[0m"), "{coloured:?}");
        assert!(!plain.contains('\x1b'));
    }
}
