//! Questions a running job asks an operator (`gigafactory job ask`): what a question may say,
//! the one open question a job may hold, and how it ends. `apply` calls these. It keeps, with
//! `apply`:
//!
//! - **Q1** a job holds at most one open question, and only while it holds a lease: whatever
//!   ends or revokes the lease (complete, fail, release, expiry, cancel, a forced requeue)
//!   closes it, so an answer that comes later is refused and changes nothing;
//! - **Q2** a question ends once: answered by an operator (one of its choices, when it has
//!   any), or at `timeout_at` with its default answer or as timed out, or closed with its
//!   lease. Its outcome is kept on the job until the next question replaces it.

use serde::{Deserialize, Serialize};

use super::{Job, JobError, Millis};

/// Longest question text, in bytes.
pub const QUESTION_TEXT_MAX_BYTES: usize = 2_000;
/// Most choices a question may offer.
pub const CHOICES_MAX: usize = 20;
/// Longest choice (and so a choice's answer), in bytes.
pub const CHOICE_MAX_BYTES: usize = 100;
/// Longest free-text answer (to a question without choices), in bytes.
pub const ANSWER_MAX_BYTES: usize = 2_000;
/// Longest note an operator may add to an answer, in bytes.
pub const NOTE_MAX_BYTES: usize = 500;
/// Longest question id (the ask's request id), in bytes.
pub const QUESTION_ID_MAX_BYTES: usize = 128;
/// Longest a question may wait for its answer: a week.
pub const QUESTION_TIMEOUT_MAX_MS: u64 = 7 * 24 * 3_600_000;
/// How long a question waits when the job names no timeout: an hour.
pub const QUESTION_TIMEOUT_DEFAULT_MS: u64 = 3_600_000;

/// A question a job asked, open or ended (Q2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// The ask's request id: the job's agent polls its outcome by it.
    pub id: String,
    pub text: String,
    /// The answers an operator may give; empty: free text.
    pub choices: Vec<String>,
    /// The answer taken at `timeout_at` when nobody answered first.
    pub default: Option<String>,
    pub asked_at: Millis,
    pub timeout_at: Millis,
    /// How it ended; `None` while it is open.
    pub outcome: Option<Outcome>,
}

/// How a question ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// An operator (a token's name) answered, with an optional note.
    Answered {
        answer: String,
        by: String,
        note: Option<String>,
        at: Millis,
    },
    /// Nobody answered by `timeout_at`: the question's default is the answer.
    Defaulted { answer: String, at: Millis },
    /// Nobody answered by `timeout_at`, and the question has no default.
    TimedOut { at: Millis },
    /// The job's lease ended first (by the command named), so nobody waits for an answer (Q1).
    Closed { by: String, at: Millis },
}

impl Outcome {
    /// The stable name the API and the UI show.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Answered { .. } => "answered",
            Outcome::Defaulted { .. } => "defaulted",
            Outcome::TimedOut { .. } => "timed_out",
            Outcome::Closed { .. } => "closed",
        }
    }

    /// The answer the job gets, if it gets one.
    pub fn answer(&self) -> Option<&str> {
        match self {
            Outcome::Answered { answer, .. } | Outcome::Defaulted { answer, .. } => Some(answer),
            Outcome::TimedOut { .. } | Outcome::Closed { .. } => None,
        }
    }

    pub fn at(&self) -> Millis {
        match self {
            Outcome::Answered { at, .. }
            | Outcome::Defaulted { at, .. }
            | Outcome::TimedOut { at }
            | Outcome::Closed { at, .. } => *at,
        }
    }
}

/// Why a question, or an answer to one, was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuestionError {
    /// There is nothing to answer (any more): the conflict is with the job's state.
    #[error("the job has no open question{0}")]
    NoOpenQuestion(String),
    /// Q1: the job asks another question already; answer or wait for that one.
    #[error("the job has an open question already ({0:?}): one at a time")]
    AlreadyOpen(String),
    /// The question has not reached its timeout.
    #[error("the question waits until {0}")]
    NotDue(Millis),
    /// The answer names a question that is no longer the open one: the operator read an old
    /// page, so the answer would go to a question they did not see.
    #[error(
        "the question changed: the answer is to question {answered:?}, but the job now asks \
         {text:?} (question {open:?}); read it and answer that one"
    )]
    Changed {
        answered: String,
        open: String,
        text: String,
    },
    /// The answer is not one of the question's choices.
    #[error("{answer:?} is not one of the choices: {}", choices.join(", "))]
    NotAChoice {
        answer: String,
        choices: Vec<String>,
    },
    /// The question or the answer breaks a bound (said which).
    #[error("{0}")]
    Invalid(String),
}

impl From<QuestionError> for JobError {
    fn from(e: QuestionError) -> Self {
        JobError::Question(e)
    }
}

/// What a job asks, as it asks it (checked by [`ask`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub id: String,
    pub text: String,
    pub choices: Vec<String>,
    pub default: Option<String>,
    /// `None`: [`QUESTION_TIMEOUT_DEFAULT_MS`].
    pub timeout_ms: Option<u64>,
}

/// The job's question, if it is open.
pub fn open(job: &Job) -> Option<&Question> {
    job.question.as_ref().filter(|q| q.outcome.is_none())
}

fn bounded(what: &str, value: &str, max_bytes: usize) -> Result<String, QuestionError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(QuestionError::Invalid(format!("the {what} is empty")));
    }
    if value.len() > max_bytes {
        return Err(QuestionError::Invalid(format!(
            "the {what} is {} bytes; at most {max_bytes}",
            value.len()
        )));
    }
    Ok(value.to_owned())
}

/// Checks what a job asks against the bounds, the way both the job's `gigafactory job ask`
/// and the coordinator take it: trimmed text, distinct bounded choices, a default among them,
/// a timeout of at most a week.
pub fn check(ask: Ask) -> Result<Ask, QuestionError> {
    let id = bounded("question id", &ask.id, QUESTION_ID_MAX_BYTES)?;
    let text = bounded("question", &ask.text, QUESTION_TEXT_MAX_BYTES)?;
    if ask.choices.len() > CHOICES_MAX {
        return Err(QuestionError::Invalid(format!(
            "{} choices; at most {CHOICES_MAX}",
            ask.choices.len()
        )));
    }
    let mut choices: Vec<String> = Vec::with_capacity(ask.choices.len());
    for c in &ask.choices {
        let c = bounded("choice", c, CHOICE_MAX_BYTES)?;
        if choices.contains(&c) {
            return Err(QuestionError::Invalid(format!(
                "the choice {c:?} is given twice"
            )));
        }
        choices.push(c);
    }
    let default = match ask.default.as_deref() {
        None => None,
        Some(d) => Some(check_answer(&choices, d)?),
    };
    match ask.timeout_ms {
        Some(0) => return Err(QuestionError::Invalid("the timeout is zero".into())),
        Some(t) if t > QUESTION_TIMEOUT_MAX_MS => {
            return Err(QuestionError::Invalid(format!(
                "the timeout is {t} ms; at most {QUESTION_TIMEOUT_MAX_MS} (a week)"
            )));
        }
        _ => {}
    }
    Ok(Ask {
        id,
        text,
        choices,
        default,
        timeout_ms: ask.timeout_ms,
    })
}

/// `answer` as kept: one of `choices` when there are any, else bounded free text.
pub fn check_answer(choices: &[String], answer: &str) -> Result<String, QuestionError> {
    if choices.is_empty() {
        return bounded("answer", answer, ANSWER_MAX_BYTES);
    }
    let answer = answer.trim();
    match choices.iter().find(|c| *c == answer) {
        Some(c) => Ok(c.clone()),
        None => Err(QuestionError::NotAChoice {
            answer: answer.to_owned(),
            choices: choices.to_vec(),
        }),
    }
}

/// Q1: opens the question `ask` on `next` (the job as the command leaves it) at `now`. Its
/// timeout is cut to the job's remaining wall-clock budget: the job is stopped then anyway,
/// so a longer wait would promise the asker an answer it cannot get.
pub(super) fn ask(next: &mut Job, ask: Ask, now: Millis) -> Result<(), JobError> {
    if let Some(q) = open(next) {
        return Err(QuestionError::AlreadyOpen(q.id.clone()).into());
    }
    let ask = check(ask)?;
    let asked_ms = ask.timeout_ms.unwrap_or(QUESTION_TIMEOUT_DEFAULT_MS);
    let timeout_ms = match next.spec.wall_clock_ms {
        Some(budget) => asked_ms.min(budget.saturating_sub(super::wall_clock_used(next, now))),
        None => asked_ms,
    };
    next.question = Some(Question {
        id: ask.id,
        text: ask.text,
        choices: ask.choices,
        default: ask.default,
        asked_at: now,
        timeout_at: now + timeout_ms,
        outcome: None,
    });
    Ok(())
}

/// What the job says about its last question, when it has none open: for a refusal.
fn none_open(job: &Job) -> QuestionError {
    let last = match job.question.as_ref().and_then(|q| q.outcome.as_ref()) {
        Some(Outcome::Answered { by, .. }) => format!(": its last one was answered by {by}"),
        Some(Outcome::Defaulted { .. }) => ": its last one took its default at its timeout".into(),
        Some(Outcome::TimedOut { .. }) => ": its last one timed out".into(),
        Some(Outcome::Closed { by, .. }) => {
            format!(": its last one was closed when its lease ended ({by})")
        }
        None => String::new(),
    };
    QuestionError::NoOpenQuestion(last)
}

/// Q2: an operator `by` answers the open question, which must be `question_id`, the one
/// they read (a job may have asked a new one since).
pub(super) fn answer(
    next: &mut Job,
    question_id: &str,
    by: String,
    answer: &str,
    note: Option<&str>,
    now: Millis,
) -> Result<(), JobError> {
    let Some(q) = open(next) else {
        return Err(none_open(next).into());
    };
    if q.id != question_id {
        return Err(QuestionError::Changed {
            answered: question_id.to_owned(),
            open: q.id.clone(),
            text: q.text.clone(),
        }
        .into());
    }
    let answer = check_answer(&q.choices, answer)?;
    let note = note
        .filter(|n| !n.trim().is_empty())
        .map(|n| bounded("note", n, NOTE_MAX_BYTES))
        .transpose()?;
    end(
        next,
        Outcome::Answered {
            answer,
            by,
            note,
            at: now,
        },
    );
    Ok(())
}

/// Q2: the open question reached its timeout: it takes its default, or times out.
pub(super) fn time_out(next: &mut Job, now: Millis) -> Result<(), JobError> {
    let Some(q) = open(next) else {
        return Err(none_open(next).into());
    };
    if q.timeout_at > now {
        return Err(QuestionError::NotDue(q.timeout_at).into());
    }
    let outcome = match q.default.clone() {
        Some(answer) => Outcome::Defaulted { answer, at: now },
        None => Outcome::TimedOut { at: now },
    };
    end(next, outcome);
    Ok(())
}

/// Q1: closes the open question of a job whose lease `cmd` ended or revoked.
pub(super) fn close_with_lease(old: &Job, next: &mut Job, cmd: &'static str, now: Millis) {
    let lease_epoch = |j: &Job| j.state.lease().map(|l| l.epoch);
    if open(next).is_some() && lease_epoch(next) != lease_epoch(old) {
        end(
            next,
            Outcome::Closed {
                by: cmd.to_owned(),
                at: now,
            },
        );
    }
}

fn end(next: &mut Job, outcome: Outcome) {
    if let Some(q) = next.question.as_mut() {
        debug_assert!(q.outcome.is_none(), "Q2: a question ends once");
        q.outcome = Some(outcome);
    }
}

/// The timeline's line for the question's latest change (asked, answered, ended).
pub fn note(job: &Job) -> Option<String> {
    let q = job.question.as_ref()?;
    let choices = if q.choices.is_empty() {
        String::new()
    } else {
        format!(" [{}]", q.choices.join(" / "))
    };
    Some(match &q.outcome {
        None => format!("{}{choices}", q.text),
        Some(Outcome::Answered { answer, note, .. }) => match note {
            Some(n) => format!("{answer} ({n})"),
            None => answer.clone(),
        },
        Some(Outcome::Defaulted { answer, .. }) => {
            format!("no answer by the timeout: the default {answer}")
        }
        Some(Outcome::TimedOut { .. }) => "no answer by the timeout".into(),
        Some(Outcome::Closed { by, .. }) => format!("closed with the lease ({by})"),
    })
}
