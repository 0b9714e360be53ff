//! The routes of questions to an operator, described: the lease holder's ask and poll, and
//! an operator's answer.

use gigafactory_core::wire::{
    AnswerBody, AskBody, FencedWrite, JobView, LeaseAnswer, QuestionView,
};
use serde_json::json;

use super::{Access, Doc};
use crate::questions::QuestionQuery;

pub(super) fn describe(d: &mut Doc) {
    use Access::*;
    let uuid = json!({"type": "string", "format": "uuid"});
    d.post(
        "/v1/jobs/{id}/question",
        "Ask the operator a question (fenced; the request id is the question's id; one open \
         at a time: another is refused with 409 question_conflict)",
        Factory,
    )
    .param("id", uuid.clone())
    .json::<FencedWrite<AskBody>>()
    .answers::<LeaseAnswer>(200, "the lease");
    d.get(
        "/v1/jobs/{id}/question",
        "The job's last question with its outcome, for the lease holder (fenced by epoch)",
        Factory,
    )
    .param("id", uuid.clone())
    .query::<QuestionQuery>()
    .answers::<Option<QuestionView>>(200, "the question, or null when the job asked none");
    d.post(
        "/v1/jobs/{id}/answer",
        "Answer the job's open question, named by question_id (one of its choices, or free \
         text when it has none); 409 question_conflict when none is open, or when the open one \
         is not question_id (the job asked another since: the message names it)",
        Operator,
    )
    .param("id", uuid)
    .json::<AnswerBody>()
    .answers::<JobView>(200, "the job after it");
}
