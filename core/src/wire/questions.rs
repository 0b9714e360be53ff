//! The bodies of questions to an operator: a job's ask (`POST /v1/jobs/{id}/question`, a
//! fenced factory write), an operator's answer (`POST /v1/jobs/{id}/answer`), and the
//! question as the API shows it (in `JobView`, and to the asking factory's poll,
//! `GET /v1/jobs/{id}/question`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::job::Millis;
use crate::job::question::{Outcome, Question};

/// What a job asks; the fenced write's request id is the question's id. Bounds in
/// `job::question`: text up to 2,000 bytes, up to 20 distinct choices of up to 100 bytes, a
/// default among the choices, a timeout of at most a week (an hour when none is given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AskBody {
    pub text: String,
    /// The answers an operator may give; none: a free-text answer.
    #[serde(default)]
    pub choices: Vec<String>,
    /// The answer taken at the timeout when nobody answered first.
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// An operator's answer to question `question_id` (the one they read: refused with `409`
/// `question_conflict` when the job asks another by now): one of the question's choices (or
/// free text when it has none), with an optional note of up to 500 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    pub question_id: String,
    pub answer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The question a job asked last, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuestionView {
    pub id: String,
    pub text: String,
    pub choices: Vec<String>,
    pub default: Option<String>,
    pub asked_at: Millis,
    pub timeout_at: Millis,
    /// `open` while it waits; then `answered`, `defaulted` (the default at the timeout),
    /// `timed_out` (no default), or `closed` (the job's lease ended first).
    pub status: String,
    /// The answer the job got, if it got one.
    pub answer: Option<String>,
    /// The operator who answered.
    pub answered_by: Option<String>,
    pub note: Option<String>,
    /// When it ended.
    pub ended_at: Option<Millis>,
    /// What ended the lease of a closed question (`complete`, `expire`, `cancel`, ...).
    pub closed_by: Option<String>,
}

impl From<&Question> for QuestionView {
    fn from(q: &Question) -> Self {
        let (answered_by, note, closed_by) = match &q.outcome {
            Some(Outcome::Answered { by, note, .. }) => (Some(by.clone()), note.clone(), None),
            Some(Outcome::Closed { by, .. }) => (None, None, Some(by.clone())),
            _ => (None, None, None),
        };
        QuestionView {
            id: q.id.clone(),
            text: q.text.clone(),
            choices: q.choices.clone(),
            default: q.default.clone(),
            asked_at: q.asked_at,
            timeout_at: q.timeout_at,
            status: q.outcome.as_ref().map_or("open", Outcome::name).into(),
            answer: q
                .outcome
                .as_ref()
                .and_then(Outcome::answer)
                .map(str::to_owned),
            answered_by,
            note,
            ended_at: q.outcome.as_ref().map(Outcome::at),
            closed_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FencedWrite;

    /// The ask is read flattened into the fenced write: its unknown keys are refused by the
    /// fenced write's `deny_unknown_fields` (a misspelled `timeout` must not leave the
    /// question the default hour).
    #[test]
    fn an_ask_with_an_unknown_key_is_refused_naming_it() {
        let read = |json: &str| serde_json::from_str::<FencedWrite<AskBody>>(json);
        let e = read(r#"{"epoch":1,"request_id":"r","text":"Merge?","timeout":1800000}"#)
            .expect_err("an unknown key");
        assert!(e.to_string().contains("unknown field `timeout`"), "{e}");
        let ok = read(r#"{"epoch":1,"request_id":"r","text":"Merge?","timeout_ms":1800000}"#)
            .expect("the known keys");
        assert_eq!(ok.body.timeout_ms, Some(1_800_000));
    }

    #[test]
    fn an_answer_names_the_question_it_answers() {
        let e = serde_json::from_str::<AnswerBody>(r#"{"answer":"yes"}"#).expect_err("no id");
        assert!(e.to_string().contains("question_id"), "{e}");
    }
}
