//! Questions to an operator from the CLI: `gigafactory jobs answer ID ANSWER [--note]`, and
//! the question's line of `jobs show` ("Merge now? [yes / no], asked 3m ago, times out in
//! 27m").

use anyhow::Result;
use gigafactory_core::wire::{AnswerBody, JobView};
use serde_json::Value;

use super::output::{Fmt, View};
use crate::client::Client;

/// Answers job `id`'s question `question_id`, or the one open now (read first) without it; the
/// coordinator refuses an answer that is not one of its choices (listing them), a job with no
/// open question, and a question that is no longer the open one (409).
pub async fn answer(
    c: &Client,
    view: &View,
    id: &str,
    question_id: Option<String>,
    answer: String,
    note: Option<String>,
) -> Result<()> {
    let question_id = match question_id {
        Some(q) => q,
        None => {
            let job: JobView = c.get(&format!("/v1/jobs/{id}")).await?;
            match job.question {
                Some(q) if q.status == "open" => q.id,
                Some(q) => anyhow::bail!(
                    "job {id} has no open question: its last one ({:?}) is {}",
                    q.text,
                    q.status.replace('_', " ")
                ),
                None => anyhow::bail!("job {id} has no open question: it asked none"),
            }
        }
    };
    let body = serde_json::to_value(AnswerBody {
        question_id,
        answer,
        note,
    })?;
    let answer: Value = c
        .post(&format!("/v1/jobs/{id}/answer"), Some(&body))
        .await?;
    view.print(answer, |fmt, j: &JobView| {
        let (told, asked, qid) = j.question.as_ref().map_or_else(Default::default, |q| {
            (
                q.answer.clone().unwrap_or_default(),
                q.text.clone(),
                q.id.clone(),
            )
        });
        format!(
            "{}answered {told:?} to {asked:?} (question {qid}): the job gets it within seconds\n",
            super::jobs::jobs_table(fmt, std::slice::from_ref(j))
        )
    })
}

/// The question's line of `jobs show`: the open one with how long it waited, or how the last
/// one ended.
pub fn question_line(fmt: &Fmt, j: &JobView) -> Option<String> {
    let q = j.question.as_ref()?;
    let choices = if q.choices.is_empty() {
        " (free text)".to_owned()
    } else {
        format!(" [{}]", q.choices.join(" / "))
    };
    let default = q
        .default
        .as_ref()
        .map(|d| format!(", default {d}"))
        .unwrap_or_default();
    let ended = match (q.status.as_str(), &q.answer) {
        ("open", _) => format!(
            "WAITS FOR INPUT since {}, times out {}{default}",
            fmt.at(q.asked_at),
            fmt.at(q.timeout_at)
        ),
        ("answered", Some(a)) => format!(
            "answered {a:?} by {} {}",
            q.answered_by.as_deref().unwrap_or("?"),
            fmt.at(q.ended_at.unwrap_or(q.asked_at))
        ),
        ("defaulted", Some(a)) => format!("no answer by the timeout: the default {a:?}"),
        (status, _) => status.replace('_', " "),
    };
    Some(format!("{}{choices}: {ended}", q.text))
}

/// The state as the jobs table shows it: marked while the job waits for input.
pub fn state_cell(j: &JobView) -> String {
    if j.waiting_for_input {
        format!("{} (waits for input)", j.state)
    } else {
        j.state.clone()
    }
}
