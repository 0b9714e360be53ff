//! Questions to an operator (Q1, Q2): asked by the lease holder only, one open at a time,
//! answered once with one of its choices, ended at its timeout by the default or as timed
//! out, and closed with the lease that asked it.

use super::*;
use crate::job::question::{self as qn, Ask, Outcome, QuestionError};

fn ask_cmd(f: usize, epoch: u64, id: &str, default: Option<&str>) -> Command {
    Command::Ask {
        factory: factory(f),
        epoch,
        ask: Ask {
            id: id.into(),
            text: "Merge the migration now?".into(),
            choices: vec!["yes".into(), "no".into()],
            default: default.map(Into::into),
            timeout_ms: Some(60_000),
        },
    }
}

/// `by`'s answer to question `q1`, the one [`asking`] opens.
fn answer(by: &str, answer: &str) -> Command {
    answer_to("q1", by, answer)
}

fn answer_to(question_id: &str, by: &str, answer: &str) -> Command {
    Command::Answer {
        question_id: question_id.into(),
        by: by.into(),
        answer: answer.into(),
        note: Some("after the backup".into()),
    }
}

fn asking(default: Option<&str>) -> Job {
    let job = leased(spec(), A);
    ok(&job, ask_cmd(A, 1, "q1", default), T0 + 10).0
}

fn outcome(job: &Job) -> Option<&Outcome> {
    job.question.as_ref().and_then(|q| q.outcome.as_ref())
}

#[test]
fn an_asked_question_stays_open_on_a_running_job_until_answered() {
    let job = asking(None);
    let q = qn::open(&job).expect("open");
    assert_eq!((q.asked_at, q.timeout_at), (T0 + 10, T0 + 10 + 60_000));
    assert!(job.state.lease().is_some(), "the job keeps its lease");
    let (renewed, _) = ok(&job, renew(A, 1), T0 + 20);
    assert!(qn::open(&renewed).is_some(), "a renewal keeps it open");
    let (answered, effects) = ok(&renewed, answer("ana", "yes"), T0 + 30);
    assert!(effects.is_empty());
    assert_eq!(answered.state.name(), renewed.state.name());
    assert_eq!(
        outcome(&answered),
        Some(&Outcome::Answered {
            answer: "yes".into(),
            by: "ana".into(),
            note: Some("after the backup".into()),
            at: T0 + 30,
        })
    );
}

#[test]
fn a_second_question_while_one_is_open_is_refused() {
    let job = asking(None);
    assert_eq!(
        refused(&job, ask_cmd(A, 1, "q2", None), T0 + 20),
        JobError::Question(QuestionError::AlreadyOpen("q1".into()))
    );
    let (answered, _) = ok(&job, answer("ana", "no"), T0 + 30);
    let (again, _) = ok(&answered, ask_cmd(A, 1, "q2", None), T0 + 40);
    assert_eq!(qn::open(&again).unwrap().id, "q2");
}

#[test]
fn an_answer_to_a_question_the_job_no_longer_asks_is_refused_and_changes_nothing() {
    let (answered, _) = ok(&asking(None), answer("ana", "no"), T0 + 20);
    let mut next_ask = ask_cmd(A, 1, "q2", None);
    if let Command::Ask { ask, .. } = &mut next_ask {
        ask.text = "Drop the users table?".into();
    }
    let (asks_again, _) = ok(&answered, next_ask, T0 + 30);
    // An operator still reading q1 says yes: it must not become q2's answer.
    let e = refused(&asks_again, answer("bo", "yes"), T0 + 40);
    assert_eq!(
        e,
        JobError::Question(QuestionError::Changed {
            answered: "q1".into(),
            open: "q2".into(),
            text: "Drop the users table?".into(),
        })
    );
    assert!(e.to_string().contains("question changed"), "{e}");
    let (ok_now, _) = ok(&asks_again, answer_to("q2", "bo", "no"), T0 + 50);
    assert_eq!(outcome(&ok_now).and_then(Outcome::answer), Some("no"));
}

#[test]
fn a_questions_timeout_is_cut_to_the_jobs_remaining_wall_clock() {
    let spec = JobSpec {
        wall_clock_ms: Some(30_000),
        ..spec()
    };
    // Leased at T0; asked 10 s in with a minute's timeout: 20 s of the budget are left.
    let (job, _) = ok(
        &leased(spec.clone(), A),
        ask_cmd(A, 1, "q1", None),
        T0 + 10_000,
    );
    let q = qn::open(&job).expect("open");
    assert_eq!(q.timeout_at, T0 + 30_000);
    // A shorter timeout than what is left stays as asked.
    let roomy = JobSpec {
        wall_clock_ms: Some(600_000),
        ..spec
    };
    let (job, _) = ok(&leased(roomy, A), ask_cmd(A, 1, "q1", None), T0 + 10_000);
    assert_eq!(qn::open(&job).unwrap().timeout_at, T0 + 10_000 + 60_000);
}

#[test]
fn an_answer_that_is_no_choice_is_refused_with_the_choices() {
    let job = asking(None);
    let e = refused(&job, answer("ana", "maybe"), T0 + 20);
    assert_eq!(
        e.to_string(),
        "\"maybe\" is not one of the choices: yes, no"
    );
}

#[test]
fn a_second_answer_is_refused_and_changes_nothing() {
    let (answered, _) = ok(&asking(None), answer("ana", "yes"), T0 + 20);
    let e = refused(&answered, answer("bo", "no"), T0 + 30);
    assert!(matches!(
        e,
        JobError::Question(QuestionError::NoOpenQuestion(_))
    ));
    assert!(e.to_string().contains("answered by ana"), "{e}");
}

#[test]
fn a_stale_epochs_ask_is_fenced() {
    let job = leased(spec(), A);
    assert!(matches!(
        refused(&job, ask_cmd(A, 0, "q1", None), T0),
        JobError::Fenced { .. }
    ));
    assert_eq!(
        refused(&job, ask_cmd(B, 1, "q1", None), T0),
        JobError::NotLeaseHolder
    );
}

#[test]
fn a_question_out_of_bounds_is_refused() {
    let job = leased(spec(), A);
    let mut bad = match ask_cmd(A, 1, "q1", Some("maybe")) {
        Command::Ask { ask, .. } => ask,
        _ => unreachable!(),
    };
    let cmd = |ask: Ask| Command::Ask {
        factory: factory(A),
        epoch: 1,
        ask,
    };
    assert!(matches!(
        refused(&job, cmd(bad.clone()), T0),
        JobError::Question(QuestionError::NotAChoice { .. })
    ));
    bad.default = None;
    bad.timeout_ms = Some(qn::QUESTION_TIMEOUT_MAX_MS + 1);
    assert!(
        refused(&job, cmd(bad.clone()), T0)
            .to_string()
            .contains("a week")
    );
    bad.timeout_ms = None;
    bad.text = "x".repeat(qn::QUESTION_TEXT_MAX_BYTES + 1);
    assert!(
        refused(&job, cmd(bad.clone()), T0)
            .to_string()
            .contains("at most")
    );
    bad.text = "ok?".into();
    bad.choices = vec!["yes".into(), "yes".into()];
    assert!(refused(&job, cmd(bad), T0).to_string().contains("twice"));
}

#[test]
fn a_timeout_takes_the_default_and_not_before_it_is_due() {
    let job = asking(Some("no"));
    let due = T0 + 10 + 60_000;
    assert_eq!(
        refused(&job, Command::QuestionTimeout, due - 1),
        JobError::Question(QuestionError::NotDue(due))
    );
    let (ended, _) = ok(&job, Command::QuestionTimeout, due);
    assert_eq!(
        outcome(&ended),
        Some(&Outcome::Defaulted {
            answer: "no".into(),
            at: due
        })
    );
    assert!(matches!(
        refused(&ended, answer("ana", "yes"), due + 1),
        JobError::Question(QuestionError::NoOpenQuestion(_))
    ));
}

#[test]
fn a_timeout_without_a_default_times_the_question_out() {
    let due = T0 + 10 + 60_000;
    let (ended, _) = ok(&asking(None), Command::QuestionTimeout, due);
    assert_eq!(outcome(&ended), Some(&Outcome::TimedOut { at: due }));
    assert!(matches!(
        refused(&ended, Command::QuestionTimeout, due + 1),
        JobError::Question(QuestionError::NoOpenQuestion(_))
    ));
}

#[test]
fn the_end_of_the_lease_closes_the_question_and_a_later_answer_is_refused() {
    let job = asking(None);
    let expired_at = lease_of(&job).expires_at;
    let ends = [
        (Command::Cancel { reason: None }, T0 + 20, "cancel"),
        (
            Command::Expire {
                jitter: 0.5,
                blamed: true,
            },
            expired_at,
            "expire",
        ),
        (complete(A, 1), T0 + 20, "complete"),
        (release(A, 1, None), T0 + 20, "release"),
        (Command::Requeue { reason: None }, T0 + 20, "requeue"),
    ];
    for (cmd, at, name) in ends {
        let (ended, _) = ok(&job, cmd, at);
        assert_eq!(
            outcome(&ended),
            Some(&Outcome::Closed {
                by: name.into(),
                at
            }),
            "{name}"
        );
        let e = refused(&ended, answer("ana", "yes"), at + 1);
        assert!(
            e.to_string().contains("closed when its lease ended"),
            "{name}: {e}"
        );
    }
}

#[test]
fn a_preempted_job_keeps_its_question_until_it_lets_go_but_asks_no_new_one() {
    let job = asking(None);
    let (preempting, _) = ok(
        &job,
        Command::Preempt {
            by: None,
            grace_ms: 5_000,
        },
        T0 + 20,
    );
    assert!(qn::open(&preempting).is_some());
    let (answered, _) = ok(&preempting, answer("ana", "yes"), T0 + 30);
    assert!(matches!(
        refused(&answered, ask_cmd(A, 1, "q2", None), T0 + 40),
        JobError::IllegalTransition { .. }
    ));
}

#[test]
fn a_job_without_a_question_has_nothing_to_answer_or_time_out() {
    let job = leased(spec(), A);
    assert_eq!(
        refused(&job, answer("ana", "yes"), T0),
        JobError::Question(QuestionError::NoOpenQuestion(String::new()))
    );
    assert!(
        refused(&job, Command::QuestionTimeout, T0)
            .to_string()
            .contains("no open question")
    );
}
