//! What the smoke awaits: its run's notification on `notify.<env>`, and on `etl.<env>.failed.*` a
//! stage giving up on one of its messages before the run had an id, which no notification of the
//! run would ever follow.

use futures::StreamExt;
use futures::stream::Select;
use shared::Env;
use shared::env::EnvScope;
use shared::events::{EmailReport, Failed, Notification, Trigger};
use shared::ids::RunId;
use shared::message::{self, Event};
use shared::subjects::{self, Filter};

/// Both subscriptions as one stream, opened before the run starts so that nothing is missed.
pub(super) struct Messages {
    stream: Select<async_nats::Subscriber, async_nats::Subscriber>,
}

/// How the wait for a run ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Notified(Box<Notification>),
    /// A stage gave up on one of the smoke's messages before the run had an id.
    GaveUp(Box<Failed>),
    TimedOut,
}

impl Messages {
    pub(super) async fn subscribe(client: &async_nats::Client, env: &Env) -> anyhow::Result<Self> {
        let notify = client.subscribe(subjects::notify(env)).await?;
        let [failed_subject] = <[String; 1]>::try_from(subjects::filters(
            &EnvScope::Only(vec![env.clone()]),
            &[Filter::Failed],
        ))
        .expect("one env and one filter make one subject");
        let failed = client.subscribe(failed_subject).await?;
        client.flush().await?;
        Ok(Self {
            stream: futures::stream::select(notify, failed),
        })
    }

    /// The notification of `run_id`, or the failure that means it will never come, before
    /// `deadline`.
    pub(super) async fn outcome(
        &mut self,
        run_id: &RunId,
        trigger: &Trigger,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<Outcome> {
        while let Some(event) = self.next_event(deadline).await? {
            match event {
                Event::Notification(notification) if notification.run_id == *run_id => {
                    return Ok(Outcome::Notified(notification));
                }
                Event::Failed(failed) if gave_up_before_the_run(&failed, trigger) => {
                    return Ok(Outcome::GaveUp(failed));
                }
                _ => continue,
            }
        }
        Ok(Outcome::TimedOut)
    }

    /// The report on the email about `run_id`, if it comes before `deadline`.
    pub(super) async fn email(
        &mut self,
        run_id: &RunId,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<Option<EmailReport>> {
        while let Some(event) = self.next_event(deadline).await? {
            if let Event::EmailReport(email) = event
                && email.about == *run_id
            {
                return Ok(Some(*email));
            }
        }
        Ok(None)
    }

    /// The next event before `deadline`, `None` past it. A message that does not decode is
    /// skipped: it is not the one awaited.
    async fn next_event(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<Option<Event>> {
        loop {
            let message = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => anyhow::bail!("the NATS subscription ended"),
                Err(_) => return Ok(None),
            };
            match message::decode(&message.subject, &message.payload) {
                Ok(event) => return Ok(Some(event)),
                Err(err) => {
                    tracing::debug!(error = %err, "skipping a message that does not decode")
                }
            }
        }
    }
}

/// Whether `failed` is a stage giving up on a message of the smoke's run (its forced trigger's id
/// is the smoke's own) before the run had an id. A failure of the run itself carries the run's
/// id and is notified as the run: the notification says it.
fn gave_up_before_the_run(failed: &Failed, trigger: &Trigger) -> bool {
    let Some(smoke_id) = &trigger.id else {
        return false;
    };
    failed.run_id.is_none()
        && failed
            .trigger
            .as_ref()
            .and_then(|t| t.id.as_ref())
            .is_some_and(|id| id == smoke_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Dataset;
    use shared::events::{FailureKind, SCHEMA_VERSION, Stage, TriggerKind};
    use shared::ids::TriggerId;

    fn failed(run_id: Option<&str>, trigger: Option<Trigger>) -> Failed {
        Failed {
            schema_version: SCHEMA_VERSION,
            env: Env::new("test").unwrap(),
            dataset: Dataset::COUNTIES,
            run_id: run_id.map(|id| RunId::new(id).unwrap()),
            stage: Stage::Transform,
            kind: FailureKind::Malformed,
            reason: "the extracted event names the dataset counties, which the transformer does not know".into(),
            inputs: vec![],
            trigger,
            source: None,
            cause: Some("message:7".into()),
            failed_at: chrono::Utc::now(),
        }
    }

    fn smoke_trigger(id: &str) -> Trigger {
        Trigger::forced(TriggerKind::Smoke, TriggerId::new(id).unwrap())
    }

    #[test]
    fn a_failure_before_the_smokes_run_had_an_id_ends_the_wait() {
        let smoke = smoke_trigger("t1");
        assert!(gave_up_before_the_run(
            &failed(None, Some(smoke.clone())),
            &smoke
        ));
    }

    #[test]
    fn a_failure_of_the_run_itself_is_left_to_its_notification() {
        let smoke = smoke_trigger("t1");
        assert!(!gave_up_before_the_run(
            &failed(Some("abc123"), Some(smoke.clone())),
            &smoke
        ));
    }

    #[test]
    fn failures_of_other_runs_are_not_the_smokes() {
        let smoke = smoke_trigger("t1");
        assert!(!gave_up_before_the_run(
            &failed(None, Some(smoke_trigger("t2"))),
            &smoke
        ));
        assert!(!gave_up_before_the_run(&failed(None, None), &smoke));
        assert!(!gave_up_before_the_run(
            &failed(None, Some(Trigger::new(TriggerKind::Commit))),
            &smoke
        ));
    }
}
