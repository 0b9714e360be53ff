//! What each key does in `top`, by mode: it changes the screen state and returns what the
//! loop must do beyond it (quit, start a drain or undrain, follow or stop following a log).
//! `q` quits from anywhere but the filter being typed; Esc backs out of a mode, and quits
//! from the main view. A drain or undrain runs only after `y`; any other key cancels it.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::state::{App, Confirm, FleetAction, LogView, Mode, Pane};

/// Rows a page key moves in the log.
const PAGE_ROWS: usize = 20;

/// What the loop does after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Quit,
    /// `POST /v1/factories/{id}/{verb}` (confirmed).
    Act(Confirm),
    /// Start following the log of the job the log pane just opened on.
    FollowLog(String),
    /// The log pane closed: stop following.
    StopLog,
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Option<Effect> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Effect::Quit);
    }
    match &app.mode {
        Mode::Normal => normal(app, key),
        Mode::Filter => {
            filter(app, key);
            None
        }
        Mode::Confirm(c) => {
            let c = c.clone();
            app.mode = Mode::Normal;
            if key.code == KeyCode::Char('y') {
                app.notice(format!("{}ing {}…", c.action.verb(), c.name), false);
                Some(Effect::Act(c))
            } else {
                app.notice(
                    format!("{} of {} cancelled", c.action.verb(), c.name),
                    false,
                );
                None
            }
        }
        Mode::Help => {
            if key.code == KeyCode::Char('q') {
                return Some(Effect::Quit);
            }
            app.mode = Mode::Normal;
            None
        }
        Mode::Log(_) => log(app, key),
    }
}

fn normal(app: &mut App, key: KeyEvent) -> Option<Effect> {
    app.notice = None;
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => return Some(Effect::Quit),
        KeyCode::Tab | KeyCode::Right => app.focus = app.focus.next(),
        KeyCode::BackTab | KeyCode::Left => app.focus = app.focus.prev(),
        KeyCode::Down | KeyCode::Char('j') => app.move_selection(1),
        KeyCode::Up | KeyCode::Char('k') => app.move_selection(-1),
        KeyCode::PageDown => app.move_selection(PAGE_ROWS as isize),
        KeyCode::PageUp => app.move_selection(-(PAGE_ROWS as isize)),
        KeyCode::Char('s') => {
            app.sort = app.sort.next();
            app.focus = Pane::Factories;
        }
        // A new filter, as `/` starts a new search in less or vi.
        KeyCode::Char('/') => {
            app.focus = Pane::Factories;
            app.filter.clear();
            app.clamp_rows();
            app.mode = Mode::Filter;
        }
        KeyCode::Char('?') => app.mode = Mode::Help,
        KeyCode::Char('l') | KeyCode::Enter => return open_log(app),
        KeyCode::Char('d') => ask(app, FleetAction::Drain),
        KeyCode::Char('u') => ask(app, FleetAction::Undrain),
        _ => {}
    }
    None
}

/// Typing the filter: it applies as it is typed; Enter keeps it, Esc clears it.
fn filter(app: &mut App, key: KeyEvent) {
    match key.code {
        KeyCode::Enter => app.mode = Mode::Normal,
        KeyCode::Esc => {
            app.filter.clear();
            app.mode = Mode::Normal;
        }
        KeyCode::Backspace => {
            app.filter.pop();
        }
        KeyCode::Char(c) if !c.is_control() => app.filter.push(c),
        _ => {}
    }
    app.clamp_rows();
}

/// `d` or `u` on the selected factory: asks for `y` first.
fn ask(app: &mut App, action: FleetAction) {
    if app.focus != Pane::Factories {
        app.notice(
            format!(
                "select a factory to {} (Tab to the factories)",
                action.verb()
            ),
            true,
        );
        return;
    }
    let Some(f) = app.selected_factory() else {
        app.notice("no factory selected", true);
        return;
    };
    app.mode = Mode::Confirm(Confirm {
        action,
        factory_id: f.id.clone(),
        name: f.name.clone(),
    });
}

/// `l` or Enter: the log of the selected factory's first current job, or of the selected
/// event's job.
fn open_log(app: &mut App) -> Option<Effect> {
    let job = match app.focus {
        Pane::Factories => {
            let (Some(fleet), Some(f)) = (&app.fleet, app.selected_factory()) else {
                app.notice("no factory selected", true);
                return None;
            };
            match fleet.jobs_of(f).first() {
                Some(j) => (j.id.to_string(), j.title.clone()),
                None => {
                    app.notice(format!("{} runs no job", f.name), true);
                    return None;
                }
            }
        }
        Pane::Events => match app.selected_event() {
            Some(e) => (e.job_id.to_string(), e.title.clone()),
            None => {
                app.notice("no event selected", true);
                return None;
            }
        },
        Pane::Nodes | Pane::Queue => {
            app.notice("select a factory with a job, or an event", true);
            return None;
        }
    };
    app.mode = Mode::Log(Box::new(LogView::new(job.0.clone(), job.1)));
    Some(Effect::FollowLog(job.0))
}

fn log(app: &mut App, key: KeyEvent) -> Option<Effect> {
    let Mode::Log(view) = &mut app.mode else {
        return None;
    };
    let most = view.lines.len().saturating_sub(1);
    let back = &mut view.scroll_back;
    match key.code {
        KeyCode::Char('q') => return Some(Effect::Quit),
        KeyCode::Esc | KeyCode::Backspace => {
            app.mode = Mode::Normal;
            return Some(Effect::StopLog);
        }
        KeyCode::Up | KeyCode::Char('k') => *back = (*back + 1).min(most),
        KeyCode::Down | KeyCode::Char('j') => *back = back.saturating_sub(1),
        KeyCode::PageUp => *back = (*back + PAGE_ROWS).min(most),
        KeyCode::PageDown => *back = back.saturating_sub(PAGE_ROWS),
        KeyCode::Home | KeyCode::Char('g') => *back = most,
        KeyCode::End | KeyCode::Char('G') => *back = 0,
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::top::model::{Cluster, FactoryRow, Fleet, Stats};

    fn press(app: &mut App, code: KeyCode) -> Option<Effect> {
        on_key(app, KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    fn app_with(names: &[&str]) -> App {
        let mut app = App::new("http://x".into());
        let factories = names
            .iter()
            .map(|n| FactoryRow {
                id: format!("id-{n}"),
                name: n.to_string(),
                status: "online".into(),
                capabilities: vec!["linux".into()],
                slots: 1,
                slots_busy: 0,
                last_heartbeat: 0,
            })
            .collect();
        let stats: Stats = serde_json::from_value(serde_json::json!({
            "now": 0, "slots": 1, "slots_busy": 0, "queued": 0, "running": 0,
            "finished_total": 0, "claims_total": 0,
            "claim_latency_p50_ms": null, "claim_latency_p99_ms": null
        }))
        .unwrap();
        let cluster = Cluster {
            this_node: String::new(),
            nodes: Vec::new(),
            shards: Vec::new(),
        };
        app.on_fleet(
            Fleet {
                cluster,
                factories,
                stats,
                jobs: Vec::new(),
                jobs_complete: true,
            },
            std::time::Instant::now(),
        );
        app
    }

    #[test]
    fn a_drain_runs_only_after_y_on_the_selected_factory() {
        let mut app = app_with(&["a", "b"]);
        press(&mut app, KeyCode::Down);
        assert_eq!(press(&mut app, KeyCode::Char('d')), None);
        assert!(matches!(app.mode, Mode::Confirm(_)));
        let Some(Effect::Act(c)) = press(&mut app, KeyCode::Char('y')) else {
            panic!("y confirms");
        };
        assert_eq!(
            (c.action, c.factory_id.as_str()),
            (FleetAction::Drain, "id-b")
        );
        assert_eq!(app.mode, Mode::Normal);
    }

    #[test]
    fn any_key_but_y_cancels_an_undrain() {
        let mut app = app_with(&["a"]);
        press(&mut app, KeyCode::Char('u'));
        assert_eq!(press(&mut app, KeyCode::Char('n')), None);
        assert_eq!(app.mode, Mode::Normal);
        assert!(app.notice.unwrap().text.contains("cancelled"));
    }

    #[test]
    fn the_filter_applies_as_typed_enter_keeps_it_and_esc_clears_it() {
        let mut app = app_with(&["alpha", "beta", "alps"]);
        press(&mut app, KeyCode::Char('/'));
        typed(&mut app, "alq");
        press(&mut app, KeyCode::Backspace);
        assert_eq!(app.factories().len(), 2);
        press(&mut app, KeyCode::Enter);
        assert_eq!(
            (app.mode.clone(), app.filter.as_str()),
            (Mode::Normal, "al")
        );
        press(&mut app, KeyCode::Char('/'));
        typed(&mut app, "b");
        assert_eq!(app.filter, "b", "/ starts a new filter");
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.factories().len(), 3);
        assert_eq!(app.mode, Mode::Normal, "Esc leaves the filter, not top");
    }

    #[test]
    fn q_quits_but_is_a_letter_while_typing_the_filter() {
        let mut app = app_with(&["a"]);
        press(&mut app, KeyCode::Char('/'));
        assert_eq!(press(&mut app, KeyCode::Char('q')), None);
        assert_eq!(app.filter, "q");
        press(&mut app, KeyCode::Enter);
        assert_eq!(press(&mut app, KeyCode::Char('q')), Some(Effect::Quit));
        assert_eq!(press(&mut app, KeyCode::Esc), Some(Effect::Quit));
    }

    #[test]
    fn a_factory_without_a_job_has_no_log_to_open() {
        let mut app = app_with(&["idle"]);
        assert_eq!(press(&mut app, KeyCode::Char('l')), None);
        assert_eq!(app.mode, Mode::Normal);
        assert!(app.notice.as_ref().unwrap().error);
    }

    #[test]
    fn esc_closes_the_log_and_stops_following_it() {
        let mut app = app_with(&["a"]);
        app.mode = Mode::Log(Box::new(LogView::new("j".into(), "t".into())));
        assert_eq!(press(&mut app, KeyCode::Esc), Some(Effect::StopLog));
        assert_eq!(app.mode, Mode::Normal);
    }

    #[test]
    fn selection_stays_within_the_rows() {
        let mut app = app_with(&["a", "b"]);
        for _ in 0..5 {
            press(&mut app, KeyCode::Down);
        }
        assert_eq!(app.selected_factory().unwrap().name, "b");
        press(&mut app, KeyCode::Up);
        press(&mut app, KeyCode::Up);
        assert_eq!(app.selected_factory().unwrap().name, "a");
    }
}
