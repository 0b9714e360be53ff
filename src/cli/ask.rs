//! `gigafactory job ask`: a job asks its operator a question and waits for the answer. The
//! question goes through the job's control directory to its agent (the job never holds a
//! token); the answer comes back the same way. Exit codes, for the job's script to decide:
//! `0` with the answer on stdout (an operator's, or the default at the timeout, said on
//! stderr); [`TIMED_OUT_EXIT`] when nobody answered by the timeout and there is no default;
//! `1` when the question was refused or closed (its lease ended), with why on stderr.

use std::time::{Duration, Instant};

use gigafactory_core::wire::AskBody;

/// The exit code of a question nobody answered by its timeout, without a default.
pub const TIMED_OUT_EXIT: i32 = 3;
/// How often `job ask` looks for its answer (a local file).
const ANSWER_POLL_MS: u64 = 200;
/// How long past the timeout `job ask` waits for its agent to bring the coordinator's
/// outcome before it gives up as timed out (the agent may be gone).
const AGENT_GRACE_MS: u64 = 60_000;

#[derive(clap::Args)]
pub struct AskArgs {
    /// The question.
    pub text: String,
    /// An answer the operator may pick (repeat the flag); none: a free-text answer.
    #[arg(long = "choice")]
    pub choices: Vec<String>,
    /// How long to wait for an answer (`30m`, `2h`; at most a week; default an hour).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// The answer taken at the timeout when nobody answered (one of the choices).
    #[arg(long)]
    pub default: Option<String>,
}

/// Asks, waits, prints the answer; exits with [`TIMED_OUT_EXIT`] or 1 when there is none.
pub fn run(args: AskArgs) -> anyhow::Result<()> {
    let timeout_ms = args.timeout.map(|t| t.as_millis() as u64);
    let ask = AskBody {
        text: args.text,
        choices: args.choices,
        default: args.default,
        timeout_ms,
    };
    let (dir, id) = gigafactory_factory::write_question(ask)?;
    let wait = timeout_ms.unwrap_or(gigafactory_core::job::question::QUESTION_TIMEOUT_DEFAULT_MS);
    let deadline = Instant::now() + Duration::from_millis(wait + AGENT_GRACE_MS);
    loop {
        if let Some(answer) = gigafactory_factory::read_answer(&dir).filter(|a| a.id == id) {
            match (answer.status.as_str(), answer.answer) {
                ("answered", Some(text)) => {
                    let by = answer.by.unwrap_or_default();
                    eprintln!("answered by {by}");
                    println!("{text}");
                    return Ok(());
                }
                ("defaulted", Some(text)) => {
                    eprintln!("no answer by the timeout: taking the default");
                    println!("{text}");
                    return Ok(());
                }
                ("timed_out", _) => {
                    eprintln!("no answer by the timeout, and no default");
                    std::process::exit(TIMED_OUT_EXIT);
                }
                (status, _) => {
                    let why = answer.message.unwrap_or_default();
                    anyhow::bail!("the question was {status}: {why}");
                }
            }
        }
        if Instant::now() >= deadline {
            eprintln!("no outcome came from the factory agent by the timeout");
            std::process::exit(TIMED_OUT_EXIT);
        }
        std::thread::sleep(Duration::from_millis(ANSWER_POLL_MS));
    }
}
