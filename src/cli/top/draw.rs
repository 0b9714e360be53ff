//! Drawing `top`'s screen from its state, read only: a header with the link's state, the
//! nodes, the queue by product and the throughput side by side, the factories, the recent
//! events, and a footer with the keys or the prompt of the mode; a job's log in place of the
//! panes while it is open, and help above them. Data kept from before a failed refresh is
//! drawn marked stale, never as if it were live.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState};

use gigafactory_core::wire::LogStream;

use super::model::{Fleet, SortBy, age, per_second, printable, short};
use super::state::{App, Link, LogView, Mode, Pane};
use crate::cli::output::{Style as Paint, now_ms, span};

const KEYS: &str =
    "q quit  Tab/←→ pane  ↑↓ row  s sort  / filter  l log  d drain  u undrain  ? help";

pub fn draw(f: &mut Frame, app: &App, now: Instant) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(header_line(app, now)), header);
    f.render_widget(Paragraph::new(footer_line(app)), footer);
    if let Mode::Log(view) = &app.mode {
        draw_log(f, view, body);
        return;
    }
    let [top, factories, events] = Layout::vertical([
        Constraint::Length(7),
        Constraint::Fill(3),
        Constraint::Fill(2),
    ])
    .areas(body);
    let [nodes, queue, throughput] = Layout::horizontal([
        Constraint::Percentage(50),
        Constraint::Percentage(25),
        Constraint::Percentage(25),
    ])
    .areas(top);
    draw_nodes(f, app, nodes);
    draw_queue(f, app, queue);
    draw_throughput(f, app, throughput);
    draw_factories(f, app, factories);
    draw_events(f, app, events);
    if app.mode == Mode::Help {
        draw_help(f, body);
    }
}

fn header_line(app: &App, now: Instant) -> Line<'static> {
    let mut spans = vec![
        Span::styled(
            " gigafactory top ",
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(" {}  ", app.coordinator)),
    ];
    match &app.link {
        Link::Connecting => spans.push(Span::styled("connecting…", Style::new().fg(Color::Yellow))),
        Link::Up { at } => {
            spans.push(Span::styled("● connected", Style::new().fg(Color::Green)));
            spans.push(Span::raw(format!(
                "  updated {} ago",
                span(now.duration_since(*at).as_millis() as u64)
            )));
        }
        Link::Lost {
            since,
            error,
            unreachable,
        } => {
            let what = if *unreachable {
                "DISCONNECTED, retrying"
            } else {
                "REFUSED, retrying"
            };
            let shown = match app.fleet {
                Some(_) => "showing stale data",
                None => "no data yet",
            };
            spans.push(Span::styled(
                format!(
                    "✖ {what} (for {}; {shown}): ",
                    span(now.duration_since(*since).as_millis() as u64)
                ),
                Style::new()
                    .fg(Color::White)
                    .bg(Color::Red)
                    .add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::styled(printable(error), Style::new().fg(Color::Red)));
        }
    }
    Line::from(spans)
}

fn footer_line(app: &App) -> Line<'static> {
    let prompt = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    match &app.mode {
        Mode::Filter => Line::from(vec![
            Span::styled(" filter: ", prompt),
            Span::raw(format!("{}█", app.filter)),
            Span::raw("   (name or capability; Enter keeps it, Esc clears it)"),
        ]),
        Mode::Confirm(c) => Line::styled(
            format!(
                " {} factory {}? y to confirm, any other key cancels",
                capitalized(c.action.verb()),
                c.name
            ),
            prompt,
        ),
        Mode::Log(_) => Line::raw(" Esc back  ↑↓ PgUp PgDn scroll  Home top  End follow  q quit"),
        Mode::Help => Line::raw(" any key closes help  q quit"),
        Mode::Normal => match &app.notice {
            Some(n) => Line::styled(
                format!(" {}", printable(&n.text)),
                Style::new().fg(if n.error { Color::Red } else { Color::Green }),
            ),
            None => Line::styled(format!(" {KEYS}"), Style::new().fg(Color::DarkGray)),
        },
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|first| first.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A pane's frame: its title (marked stale when the data is), highlighted when focused.
fn pane(app: &App, which: Option<Pane>, title: String) -> Block<'static> {
    let focused = which.is_some_and(|p| p == app.focus);
    let stale = app.stale();
    let border = match (focused, stale) {
        (true, _) => Style::new().fg(Color::Cyan),
        (false, true) => Style::new().fg(Color::DarkGray),
        (false, false) => Style::new(),
    };
    let mut title_style = Style::new().add_modifier(Modifier::BOLD);
    if focused {
        title_style = title_style.fg(Color::Cyan);
    }
    let mut spans = vec![Span::styled(format!(" {title} "), title_style)];
    if stale {
        spans.push(Span::styled(
            "stale ",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    Block::bordered()
        .border_style(border)
        .title(Line::from(spans))
}

/// The selection of `which` when it has the focus: only the focused pane shows one.
fn selection(app: &App, which: Pane) -> TableState {
    let selected = (app.focus == which && app.rows(which) > 0).then(|| app.selected(which));
    TableState::default().with_selected(selected)
}

/// A pane of rows under a header of `columns` (title, width), its selection shown when focused.
fn draw_table(
    f: &mut Frame,
    app: &App,
    area: Rect,
    which: Pane,
    title: String,
    columns: &[(&str, Constraint)],
    rows: Vec<Row<'static>>,
) {
    let head = Row::new(columns.iter().map(|(name, _)| name.to_string()))
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let t = Table::new(rows, columns.iter().map(|(_, w)| *w))
        .header(head)
        .block(pane(app, Some(which), title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    f.render_stateful_widget(t, area, &mut selection(app, which));
}

/// The colour of a factory's status or a job's state.
fn colour(state: &str) -> Style {
    let paint = match state {
        "online" => Paint::Green,
        "draining" => Paint::Yellow,
        "offline" | "revoked" => Paint::Red,
        s => Paint::of_state(s),
    };
    match paint {
        Paint::Green => Style::new().fg(Color::Green),
        Paint::Red => Style::new().fg(Color::Red),
        Paint::Yellow => Style::new().fg(Color::Yellow),
        Paint::Cyan => Style::new().fg(Color::Cyan),
        Paint::Dim => Style::new().fg(Color::DarkGray),
        Paint::Bold => Style::new().add_modifier(Modifier::BOLD),
        Paint::Plain => Style::new(),
    }
}

fn draw_nodes(f: &mut Frame, app: &App, area: Rect) {
    let (rows, title) = match &app.fleet {
        // A node on a store of its own keeps no node records: it is the whole cluster.
        Some(fleet) if fleet.cluster.nodes.is_empty() => (
            vec![Row::new(vec![
                Cell::from(format!("{}*", short(&fleet.cluster.this_node))),
                Cell::from(printable(&app.coordinator)),
                Cell::from("up").style(Style::new().fg(Color::Green)),
                Cell::from("all"),
                Cell::from("-"),
            ])],
            "Nodes (1, standalone)".to_string(),
        ),
        Some(fleet) => (
            node_rows(fleet),
            format!("Nodes ({})", fleet.cluster.nodes.len()),
        ),
        None => (Vec::new(), "Nodes".to_string()),
    };
    let columns = [
        ("NODE", Constraint::Length(10)),
        ("ADDRESS", Constraint::Fill(1)),
        ("STATE", Constraint::Length(6)),
        ("SHARDS", Constraint::Length(7)),
        ("HEARTBEAT", Constraint::Length(10)),
    ];
    draw_table(f, app, area, Pane::Nodes, title, &columns, rows);
}

/// The nodes of a shared store, `*` marking the one that answered.
fn node_rows(fleet: &Fleet) -> Vec<Row<'static>> {
    let c = &fleet.cluster;
    c.nodes
        .iter()
        .map(|(alive, n)| {
            let id = n.id.to_string();
            let me = if id == c.this_node { "*" } else { "" };
            let (state, style) = match alive {
                true => ("up", Style::new().fg(Color::Green)),
                false => ("down", Style::new().fg(Color::Red)),
            };
            Row::new(vec![
                Cell::from(format!("{}{me}", short(&id))),
                Cell::from(printable(&n.addr)),
                Cell::from(state).style(style),
                Cell::from(c.shards_owned(n).to_string()),
                Cell::from(age(fleet.stats.now, n.heartbeat_at)),
            ])
        })
        .collect()
}

fn draw_queue(f: &mut Frame, app: &App, area: Rect) {
    let (rows, title) = match &app.fleet {
        Some(fleet) => (
            fleet
                .stats
                .queue_by_product()
                .into_iter()
                .map(|(p, n)| Row::new(vec![Cell::from(printable(p)), Cell::from(n.to_string())]))
                .collect(),
            format!("Queue ({} queued)", fleet.stats.queued),
        ),
        None => (Vec::new(), "Queue".to_string()),
    };
    let columns = [
        ("PRODUCT", Constraint::Fill(1)),
        ("QUEUED", Constraint::Length(7)),
    ];
    draw_table(f, app, area, Pane::Queue, title, &columns, rows);
}

fn draw_throughput(f: &mut Frame, app: &App, area: Rect) {
    let mut lines = Vec::new();
    if let Some(fleet) = &app.fleet {
        let s = &fleet.stats;
        let rates = app.throughput.rates();
        let rate = |r: Option<f64>| r.map_or("…".to_string(), per_second);
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}ms"));
        lines = vec![
            Line::raw(format!(
                "finished  {}",
                rate(rates.map(|r| r.finished_per_s))
            )),
            Line::raw(format!("claims    {}", rate(rates.map(|r| r.claims_per_s)))),
            Line::raw(format!(
                "claim p50 {}  p99 {}",
                ms(s.claim_latency_p50_ms),
                ms(s.claim_latency_p99_ms)
            )),
            Line::raw(format!("slots     {}/{} busy", s.slots_busy, s.slots)),
            Line::raw(format!("running   {}", s.running)),
        ];
    }
    let title = match app.throughput.rates() {
        Some(r) => format!("Throughput (over {})", span(r.over_ms)),
        None => "Throughput".into(),
    };
    f.render_widget(Paragraph::new(lines).block(pane(app, None, title)), area);
}

fn draw_factories(f: &mut Frame, app: &App, area: Rect) {
    let mark = |col: SortBy, name: &str| {
        if app.sort == col {
            format!("{name}▼")
        } else {
            name.to_string()
        }
    };
    let factories = app.factories();
    let rows = match &app.fleet {
        Some(fleet) => factories
            .iter()
            .map(|fr| {
                let jobs: Vec<String> = fleet
                    .jobs_of(fr)
                    .iter()
                    .map(|j| format!("{} ({})", printable(&j.title), short(&j.id.to_string())))
                    .collect();
                Row::new(vec![
                    Cell::from(printable(&fr.name)),
                    Cell::from(fr.status.clone()).style(colour(&fr.status)),
                    Cell::from(format!("{}/{}", fr.slots_busy, fr.slots)),
                    Cell::from(age(fleet.stats.now, fr.last_heartbeat)),
                    Cell::from(if jobs.is_empty() {
                        "-".into()
                    } else {
                        jobs.join(", ")
                    }),
                    Cell::from(printable(&fr.capabilities.join(","))),
                ])
            })
            .collect(),
        None => Vec::new(),
    };
    let total = app.fleet.as_ref().map_or(0, |f| f.factories.len());
    let mut title = format!(
        "Factories ({}/{total}) sort: {}",
        factories.len(),
        app.sort.label()
    );
    if !app.filter.is_empty() {
        title.push_str(&format!(" filter: {}", printable(&app.filter)));
    }
    if app.fleet.as_ref().is_some_and(|f| !f.jobs_complete) {
        title.push_str(" · current jobs from part of the store");
    }
    let columns = [
        (mark(SortBy::Name, "NAME"), Constraint::Length(18)),
        (mark(SortBy::Status, "STATUS"), Constraint::Length(9)),
        (mark(SortBy::Busy, "SLOTS"), Constraint::Length(6)),
        (mark(SortBy::Heartbeat, "HEARTBEAT"), Constraint::Length(10)),
        ("CURRENT JOBS".to_string(), Constraint::Fill(2)),
        ("CAPABILITIES".to_string(), Constraint::Fill(1)),
    ];
    let columns: Vec<(&str, Constraint)> = columns.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    draw_table(f, app, area, Pane::Factories, title, &columns, rows);
}

fn draw_events(f: &mut Frame, app: &App, area: Rect) {
    let now = now_ms();
    let rows = app
        .events
        .iter()
        .map(|e| {
            Row::new(vec![
                Cell::from(age(now, e.at)),
                Cell::from(e.kind.name()),
                Cell::from(e.state.clone()).style(colour(&e.state)),
                Cell::from(printable(&e.product)),
                Cell::from(format!(
                    "{} ({})",
                    printable(&e.title),
                    short(&e.job_id.to_string())
                )),
                Cell::from(printable(&by(app, &e.actor))),
            ])
        })
        .collect();
    let live = if app.events_live {
        ""
    } else {
        " · reconnecting"
    };
    let columns = [
        ("AGE", Constraint::Length(8)),
        ("EVENT", Constraint::Length(14)),
        ("STATE", Constraint::Length(10)),
        ("PRODUCT", Constraint::Length(14)),
        ("JOB", Constraint::Fill(2)),
        ("BY", Constraint::Fill(1)),
    ];
    draw_table(
        f,
        app,
        area,
        Pane::Events,
        format!("Events{live}"),
        &columns,
        rows,
    );
}

/// Who caused an event: a factory by its name when it is listed.
fn by(app: &App, actor: &gigafactory_core::event::Author) -> String {
    let name = actor.factory().and_then(|id| {
        app.fleet
            .as_ref()
            .and_then(|f| f.factory_name(&id.to_string()))
    });
    match name {
        Some(name) => format!("factory {name}"),
        None => actor.to_string(),
    }
}

fn draw_log(f: &mut Frame, view: &LogView, area: Rect) {
    let height = area.height.saturating_sub(2) as usize;
    let end = view.lines.len().saturating_sub(view.scroll_back);
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = view
        .lines
        .range(start..end)
        .map(|l| match l.stream {
            Some(LogStream::Stdout) => Line::raw(l.text.clone()),
            Some(LogStream::Stderr) => {
                Line::styled(l.text.clone(), Style::new().fg(Color::LightRed))
            }
            None => Line::styled(l.text.clone(), Style::new().fg(Color::DarkGray)),
        })
        .collect();
    let mut title = vec![Span::styled(
        format!(
            " Log of {} ({}) ",
            printable(&view.title),
            short(&view.job_id)
        ),
        Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan),
    )];
    title.push(Span::raw(match view.scroll_back {
        0 => "following ".to_string(),
        n => format!("{n} lines up ",),
    }));
    if view.dropped > 0 {
        title.push(Span::raw(format!(
            "({} earlier lines dropped) ",
            view.dropped
        )));
    }
    if let Some(e) = &view.error {
        title.push(Span::styled(
            format!("read failed: {} ", printable(e)),
            Style::new().fg(Color::Red),
        ));
    }
    let body = if lines.is_empty() {
        vec![Line::styled(
            "(no output yet)",
            Style::new().fg(Color::DarkGray),
        )]
    } else {
        lines
    };
    let block = Block::bordered()
        .border_style(Style::new().fg(Color::Cyan))
        .title(Line::from(title));
    f.render_widget(Paragraph::new(body).block(block), area);
}

const HELP: &[(&str, &str)] = &[
    (
        "q, Esc",
        "quit (Esc backs out of a prompt, the log or help)",
    ),
    ("Tab, ←/→", "move between panes"),
    ("↑/↓, j/k", "move between rows; PgUp/PgDn a page"),
    ("s", "sort the factories by the next column"),
    ("/", "filter the factories by name or capability"),
    (
        "l, Enter",
        "open the log of the factory's first job or the event's job",
    ),
    ("d", "drain the selected factory (asks for y)"),
    ("u", "undrain the selected factory (asks for y)"),
    ("?", "this help"),
];

fn draw_help(f: &mut Frame, body: Rect) {
    let width = body.width.min(76);
    let height = (HELP.len() as u16 + 4).min(body.height);
    let area = Rect {
        x: body.x + (body.width - width) / 2,
        y: body.y + (body.height - height) / 2,
        width,
        height,
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {k:<10}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " Refreshes every second; any key closes this.",
        Style::new().fg(Color::DarkGray),
    ));
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys ")),
        area,
    );
}
