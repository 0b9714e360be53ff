//! `gigafactory top` end to end, read off a real terminal: tmux (a server of the test's own)
//! runs it against a coordinator and two factories; the test reads the screen with
//! `tmux capture-pane` and types with `tmux send-keys`. A drain and an undrain confirmed with
//! `y` show in the API; `l` opens a running job's log; a coordinator that goes away shows as
//! disconnected with the last data kept, and as connected again when it is back; `q` ends the
//! process. tmux must be installed (`.ci/run` installs it): without it the test fails saying
//! so rather than passing unrun.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// How long the screen may take to show what a step expects.
const SCREEN_WAIT: Duration = Duration::from_secs(30);

/// Fails the test, saying why, where tmux cannot run: a test that needs it must not pass
/// without it.
fn require_tmux() {
    match Command::new("tmux").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "tmux is needed to run `gigafactory top` on a terminal in this test, and it \
             could not be run ({other:?}); install it (Debian: apt-get install tmux; \
             .ci/run does)"
        ),
    }
}

/// A tmux server of this test's own with one session running `gigafactory top`; the server
/// (and `top` with it) is killed when this drops.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(coord: &Coordinator, token: &str) -> Self {
        let t = Tmux {
            socket: format!("gf-top-{}-{}", std::process::id(), free_port()),
        };
        // The line after `top` shows once it has ended, on the screen it gave back.
        let top = format!(
            "{BIN} top --coordinator {}; echo top exited with status $?",
            coord.url
        );
        let out = t.tmux(&[
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "45",
            "-s",
            "top",
            "-e",
            &format!("GIGAFACTORY_TOKEN={token}"),
            &top,
            // Keep the pane once its command has ended, to read how `top` ended.
            ";",
            "set-option",
            "-t",
            "top",
            "remain-on-exit",
            "on",
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "top"]).stdout)
            .into_owned()
    }

    /// The screen with the lines scrolled off its top: once the pane's command has ended,
    /// tmux's "Pane is dead" line scrolls the screen.
    fn screen_and_history(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-S", "-", "-t", "top"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen passes `check`; the screen then.
    fn wait_screen(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_until(what, Self::screen, check)
    }

    /// Waits until what `read` reads of the pane passes `check`; that text then.
    fn wait_until(
        &self,
        what: &str,
        read: impl Fn(&Self) -> String,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = read(self);
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the screen to show {what}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the screen shows each of `texts`; the screen then.
    fn wait_for_all(&self, what: &str, texts: &[&str]) -> String {
        self.wait_screen(&format!("{what} {texts:?}"), |screen| {
            texts.iter().all(|t| screen.contains(t))
        })
    }

    fn wait_for(&self, what: &str, text: &str) -> String {
        self.wait_for_all(what, &[text])
    }

    /// Types `keys` (tmux key names: `d`, `Enter`, `Escape`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        let out = self.tmux(&args);
        assert!(out.status.success(), "tmux send-keys {keys:?}: {out:?}");
    }

    /// Types `text` as it is.
    fn type_text(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", "top", "-l", text]);
        assert!(out.status.success(), "tmux send-keys -l {text:?}: {out:?}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

fn factory_status(coord: &Coordinator, name: &str) -> String {
    get(coord, "/v1/factories")
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no factory {name}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Shows only the factory `name` (filtered by what `/` takes), so that it is the selected row.
fn select_factory(top: &Tmux, name: &str) {
    top.keys(&["/"]);
    top.wait_for("the filter prompt", "filter: ");
    top.type_text(name);
    top.keys(&["Enter"]);
    top.wait_for("the filtered factories", &format!("filter: {name}"));
}

#[test]
fn top_shows_the_fleet_drains_undrains_opens_a_log_survives_a_restart_and_quits() {
    require_tmux();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(dir.path(), 30_000);
    let _a = Factory::start(&coord, "top-a", 1, "linux", &dir.path().join("fa"));
    let _b = Factory::start(&coord, "top-b", 1, "linux", &dir.path().join("fb"));
    let ids = submit_manifest(
        &coord,
        "product = \"toptest\"\n\
         [[jobs]]\nkey = \"long\"\ntitle = \"long runner\"\ncapabilities = [\"linux\"]\n\
         command = \"echo top-log-marker-line; sleep 60\"\n\
         [[jobs]]\nkey = \"gpu\"\ntitle = \"waits for a gpu\"\ncapabilities = [\"gpu\"]\n\
         command = \"true\"\n",
    );
    let long = &ids[0].1;
    wait_for(Duration::from_secs(30), "the long job to run", || {
        state(&coord, long) == "running"
    });
    let node = get(&coord, "/v1/cluster")["this_node"]
        .as_str()
        .unwrap()
        .to_string();
    let (operator, _) = mint(&coord, "operator", "top-e2e");
    let top = Tmux::start(&coord, &operator);

    let screen = top.wait_for_all(
        "the factories, the queue's product and the node",
        &[
            "top-a",
            "top-b",
            "toptest",
            &node[node.len() - 8..],
            "long runner",
        ],
    );
    assert!(screen.contains("connected"), "{screen}");

    // Drain top-b after y, then undrain it after y; a key other than y cancels.
    select_factory(&top, "top-b");
    top.keys(&["d"]);
    top.wait_for("the drain prompt", "Drain factory top-b? y to confirm");
    top.keys(&["n"]);
    top.wait_for("the drain cancelled", "drain of top-b cancelled");
    assert_eq!(factory_status(&coord, "top-b"), "online");
    top.keys(&["d"]);
    top.wait_for("the drain prompt", "Drain factory top-b?");
    top.keys(&["y"]);
    top.wait_for("the drain's outcome", "top-b drains");
    wait_for(Duration::from_secs(10), "top-b to drain", || {
        factory_status(&coord, "top-b") == "draining"
    });
    top.wait_for("top-b draining", "draining");
    assert_eq!(factory_status(&coord, "top-a"), "online");
    top.keys(&["u"]);
    top.wait_for("the undrain prompt", "Undrain factory top-b?");
    top.keys(&["y"]);
    top.wait_for("the undrain's outcome", "top-b takes new jobs again");
    wait_for(Duration::from_secs(10), "top-b to take jobs again", || {
        factory_status(&coord, "top-b") == "online"
    });
    // An undrain of a factory that does not drain: the API's refusal shows.
    top.keys(&["u"]);
    top.wait_for("the undrain prompt", "Undrain factory top-b?");
    top.keys(&["y"]);
    top.wait_for("the API's refusal", "it is online, not draining");

    // Sorting and help.
    top.keys(&["s"]);
    top.wait_for("the factories sorted by status", "sort: status");
    top.keys(&["?"]);
    top.wait_for("the help", "drain the selected factory (asks for y)");
    top.keys(&["Escape"]);
    top.wait_screen("the help closed", |s| !s.contains("(asks for y)"));

    // The log of the job running on its factory.
    let holder = job(&coord, long)["lease"]["factory_id"]
        .as_str()
        .unwrap()
        .to_string();
    let holder_name = get(&coord, &format!("/v1/factories/{holder}"))["name"]
        .as_str()
        .unwrap()
        .to_string();
    select_factory(&top, &holder_name);
    top.keys(&["l"]);
    top.wait_for_all(
        "the job's log",
        &["Log of long runner", "top-log-marker-line"],
    );
    top.keys(&["Escape"]);
    top.wait_for("the fleet again", "CURRENT JOBS");

    // The coordinator goes away: the last data stays, marked; it comes back: live again.
    coord.kill();
    let screen = top.wait_for("the lost coordinator", "DISCONNECTED, retrying");
    assert!(
        screen.contains("stale") && screen.contains(&holder_name),
        "{screen}"
    );
    coord.restart();
    top.wait_for("the coordinator back", "● connected");

    top.keys(&["q"]);
    let screen = top.wait_until("top's end", Tmux::screen_and_history, |s| {
        s.contains("top exited with status 0")
    });
    assert!(
        !screen.contains("Factories"),
        "the terminal is given back as it was: {screen}"
    );
}

#[test]
fn top_refuses_to_start_without_a_terminal_with_exit_2() {
    let out = Command::new(BIN)
        .args(["top", "--coordinator", "http://127.0.0.1:9"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("draws on a terminal, and standard output is not one"),
        "{err}"
    );
}
