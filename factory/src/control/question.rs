//! A question through the control directory (`gigafactory job ask`): the job writes
//! `question.json` (atomically) and waits for `answer.json` with the same id; the agent sends
//! the question to the coordinator, polls its outcome and writes the answer. One question at a
//! time: a `question.json` without its answer is an open question, and a second ask is
//! refused.

use std::path::Path;

use gigafactory_core::job::question::{self, Ask};
use gigafactory_core::wire::{AskBody, QuestionView};
use serde::{Deserialize, Serialize};

use super::{control_dir_from_env, write_atomically};
use crate::error::{AgentError, Result};

/// The job's question, waiting for the agent.
pub const QUESTION_FILE: &str = "question.json";
/// The outcome of the job's question, written by the agent.
pub const ANSWER_FILE: &str = "answer.json";

/// A question as the job wrote it; `id` is the ask's request id (so a retry asks once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionFile {
    pub id: String,
    pub ask: AskBody,
}

/// How the job's question ended, as the agent tells the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerFile {
    pub id: String,
    /// `answered`, `defaulted`, `timed_out`, `closed` (the question's, see `QuestionView`), or
    /// `refused` (the coordinator refused the question: `message` says why).
    pub status: String,
    pub answer: Option<String>,
    pub by: Option<String>,
    pub message: Option<String>,
}

impl AnswerFile {
    /// The outcome of an ended question.
    pub fn of(view: &QuestionView) -> Self {
        AnswerFile {
            id: view.id.clone(),
            status: view.status.clone(),
            answer: view.answer.clone(),
            by: view.answered_by.clone(),
            message: view
                .closed_by
                .as_ref()
                .map(|by| format!("the lease ended ({by})")),
        }
    }

    /// A question the coordinator refused.
    pub fn refused(id: &str, why: String) -> Self {
        AnswerFile {
            id: id.to_owned(),
            status: "refused".into(),
            answer: None,
            by: None,
            message: Some(why),
        }
    }
}

/// Writes the calling job's question for its agent (`gigafactory job ask`), checked as the
/// coordinator checks it; its id. Refused while another question of the job waits.
pub fn write_question(ask: AskBody) -> Result<(std::path::PathBuf, String)> {
    let dir = control_dir_from_env()?;
    let id = write_question_in(&dir, ask)?;
    Ok((dir, id))
}

/// The lock two `job ask` calls of one job take in turn: the check that no question is open
/// and the write of the new one are one step, so two concurrent asks cannot both pass it.
const QUESTION_LOCK_FILE: &str = ".question.lock";

/// [`write_question`] into an explicit control directory.
pub fn write_question_in(dir: &Path, ask: AskBody) -> Result<String> {
    let lock_path = dir.join(QUESTION_LOCK_FILE);
    let io = |e| AgentError::io(format!("locking {}", lock_path.display()), e);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    // Released when `lock` is dropped, or by the system when the process dies mid-ask.
    lock.lock().map_err(io)?;
    if let Some(open) = read_question(dir)
        && read_answer(dir).is_none_or(|a| a.id != open.id)
    {
        return Err(AgentError::InvalidValue {
            what: "question",
            reason: format!(
                "the job asks {:?} already: one open question at a time",
                open.ask.text
            ),
        });
    }
    let id = uuid::Uuid::new_v4().to_string();
    let checked = question::check(Ask {
        id: id.clone(),
        text: ask.text,
        choices: ask.choices,
        default: ask.default,
        timeout_ms: ask.timeout_ms,
    })
    .map_err(|e| AgentError::InvalidValue {
        what: "question",
        reason: e.to_string(),
    })?;
    let file = QuestionFile {
        id: id.clone(),
        ask: AskBody {
            text: checked.text,
            choices: checked.choices,
            default: checked.default,
            timeout_ms: checked.timeout_ms,
        },
    };
    let bytes = serde_json::to_vec(&file).expect("a question serializes");
    // The last question's answer goes first, so the new one is open from the start.
    let _ = std::fs::remove_file(dir.join(ANSWER_FILE));
    write_atomically(dir, QUESTION_FILE, &bytes)?;
    Ok(id)
}

/// The job's question, if it wrote one.
pub fn read_question(dir: &Path) -> Option<QuestionFile> {
    serde_json::from_slice(&std::fs::read(dir.join(QUESTION_FILE)).ok()?).ok()
}

/// The outcome the agent wrote last, if any.
pub fn read_answer(dir: &Path) -> Option<AnswerFile> {
    serde_json::from_slice(&std::fs::read(dir.join(ANSWER_FILE)).ok()?).ok()
}

/// Tells the job how its question ended.
pub fn write_answer(dir: &Path, answer: &AnswerFile) -> Result<()> {
    let bytes = serde_json::to_vec(answer).expect("an answer serializes");
    write_atomically(dir, ANSWER_FILE, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(text: &str) -> AskBody {
        AskBody {
            text: text.into(),
            choices: vec!["yes".into(), "no".into()],
            default: None,
            timeout_ms: Some(60_000),
        }
    }

    #[test]
    fn a_second_question_is_refused_until_the_first_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let id = write_question_in(dir.path(), ask("Merge?")).unwrap();
        assert_eq!(read_question(dir.path()).unwrap().id, id);
        let again = write_question_in(dir.path(), ask("Deploy?"));
        assert!(
            matches!(&again, Err(AgentError::InvalidValue { reason, .. }) if reason.contains("one open question")),
            "{again:?}"
        );
        let answered = AnswerFile {
            id: id.clone(),
            status: "answered".into(),
            answer: Some("yes".into()),
            by: Some("ana".into()),
            message: None,
        };
        write_answer(dir.path(), &answered).unwrap();
        let next = write_question_in(dir.path(), ask("Deploy?")).unwrap();
        assert_ne!(next, id);
        assert!(read_answer(dir.path()).is_none(), "the old answer is gone");
    }

    #[test]
    fn of_concurrent_asks_one_opens_its_question_and_the_other_is_refused() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let start = std::sync::Barrier::new(4);
            let opened = std::thread::scope(|s| {
                let asks: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            write_question_in(dir.path(), ask("Merge?")).is_ok()
                        })
                    })
                    .collect();
                asks.into_iter()
                    .filter_map(|a| a.join().unwrap().then_some(()))
                    .count()
            });
            assert_eq!(opened, 1, "exactly one question opens");
        }
    }

    #[test]
    fn a_question_out_of_bounds_is_refused_before_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let bad = AskBody {
            default: Some("maybe".into()),
            ..ask("Merge?")
        };
        assert!(write_question_in(dir.path(), bad).is_err());
        assert!(read_question(dir.path()).is_none());
    }
}
