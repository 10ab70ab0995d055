//! The notification sinks of a configuration, as a whole: what each takes
//! (the scheduler's [`SinkFilter`]s), the start-up reconciliation of the
//! outbox with the configured sinks, and starting their delivery tasks.
//!
//! A sink's key in the outbox is its stable name (`name`, default
//! `webhook-{n}` / `smn-{n}`), which is also the `sink` label of its
//! metrics. Earlier releases keyed a webhook's rows by its URL: at start
//! such rows move to the sink's name, so nothing queued is lost by the
//! upgrade. Rows of a sink that is no longer configured are given up, each
//! with a `notify.dropped`, rather than kept forever. Renaming a sink
//! therefore gives up what its old name had queued; the README says so.

use std::collections::BTreeMap;
use std::path::Path;

use tokio::sync::watch;

use crate::config::{Api, Config};
use crate::huaweicloud::client::Client;
use crate::job::ProjectName;
use crate::output::delivery::{self, Deliveries};
use crate::output::sink::{BodyFormat, SinkFilter};
use crate::output::smn::{self, Smn};
use crate::output::webhook::{self, Webhook};
use crate::policy::permit::Permits;
use crate::store::outbox;

/// One configured sink, with everything read from files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkPlan {
    /// A `[[notify.webhook]]`.
    Webhook(webhook::Sink),
    /// A `[[notify.smn]]`.
    Smn(smn::Sink),
}

impl SinkPlan {
    /// The sink's stable name.
    pub fn name(&self) -> &str {
        match self {
            SinkPlan::Webhook(sink) => &sink.name,
            SinkPlan::Smn(sink) => &sink.name,
        }
    }

    /// The key an earlier release used for this sink's rows, if any.
    fn legacy_key(&self) -> Option<String> {
        match self {
            SinkPlan::Webhook(sink) => Some(sink.url.to_string()),
            SinkPlan::Smn(_) => None,
        }
    }
}

/// Reads every sink of `config` (secrets included); `project_id` gives
/// the id of a configured project (known only at run time for a project
/// whose id comes from the environment or instance metadata). Errors name
/// the key.
pub fn load(
    config: &Config,
    project_id: &dyn Fn(&ProjectName) -> Option<String>,
) -> Result<Vec<SinkPlan>, String> {
    let mut plans: Vec<SinkPlan> = webhook::load_sinks(config)?
        .into_iter()
        .map(SinkPlan::Webhook)
        .collect();
    for (index, settings) in config.smn().iter().enumerate() {
        let key = format!("notify.smn[{index}]");
        let project = config
            .project(&settings.project)
            .ok_or_else(|| format!("{key}.project: no project {}", settings.project))?;
        let endpoint = project
            .endpoint(Api::Smn)
            .map_err(|missing| format!("{key}: {missing}"))?;
        let project_id = project_id(&settings.project)
            .ok_or_else(|| format!("{key}: the project id of {} is unknown", settings.project))?;
        plans.push(SinkPlan::Smn(smn::Sink {
            name: settings.name.clone(),
            topic_urn: settings.topic_urn.as_str().to_string(),
            endpoint: endpoint.clone(),
            project_id,
            max_age: settings.max_age,
        }));
    }
    Ok(plans)
}

/// What each configured sink takes, keyed by its name.
pub fn filters(config: &Config) -> Vec<SinkFilter> {
    let webhooks = config.webhooks().iter().map(|settings| SinkFilter {
        sink: settings.name.clone(),
        target: settings.url.to_string(),
        format: BodyFormat::Json,
        events: settings.events.clone(),
        statuses: settings.statuses.clone(),
    });
    let topics = config.smn().iter().map(|settings| SinkFilter {
        sink: settings.name.clone(),
        target: settings.topic_urn.as_str().to_string(),
        format: BodyFormat::SmnPublish,
        events: settings.events.clone(),
        statuses: settings.statuses.clone(),
    });
    webhooks.chain(topics).collect()
}

/// What SMN sinks publish through: the daemon's signed client (its
/// credentials) and the scheduler's permits (the account's budget,
/// throttle and authentication gate).
#[derive(Clone)]
pub struct Account {
    /// The signed client of every API call.
    pub client: Client,
    /// Permits of the scheduler.
    pub permits: Permits,
}

/// Brings the outbox at `db` in line with `plans`: rows keyed by a sink's
/// former key (a webhook's URL) move to its name; rows of any other key
/// that no sink has are deleted, each announced with `notify.dropped`.
/// Returns how many rows were moved and how many given up.
pub fn reconcile(db: &Path, plans: &[SinkPlan]) -> Result<(usize, usize), String> {
    let mut conn = outbox::connect(db)?;
    let sql = |error: rusqlite::Error| format!("outbox of {}: {error}", db.display());
    let legacy: BTreeMap<String, &str> = plans
        .iter()
        .filter_map(|plan| plan.legacy_key().map(|key| (key, plan.name())))
        .collect();
    let (mut moved, mut dropped) = (0, 0);
    for (key, _) in outbox::sinks(&conn).map_err(sql)? {
        if plans.iter().any(|plan| plan.name() == key) {
            continue;
        }
        if let Some(name) = legacy.get(&key) {
            moved += outbox::rename_sink(&conn, &key, name).map_err(sql)?;
            // What is left under the old key is queued under the name too.
            outbox::delete_duplicates(&conn, &key, name).map_err(sql)?;
            continue;
        }
        for row in outbox::take_sink(&mut conn, &key).map_err(sql)? {
            let error = row.last_error.clone().unwrap_or_default();
            let error = if error.is_empty() {
                "the sink is no longer configured".to_string()
            } else {
                format!("the sink is no longer configured; last error: {error}")
            };
            // Rows of the release before were keyed by the webhook's URL.
            let target = row.target.clone().unwrap_or_else(|| key.clone());
            delivery::announce_dropped(&key, &target, &row, &error);
            dropped += 1;
        }
    }
    Ok((moved, dropped))
}

/// The delivery tasks of the sinks in force, and what they were built
/// from (a reload that changes nothing keeps them running).
pub struct Running {
    plans: Vec<SinkPlan>,
    deliveries: Deliveries,
}

impl Running {
    /// Starts one delivery task per sink over the store at `db` (already
    /// migrated and reconciled). `wake` changes whenever the state writer
    /// committed new outbox rows.
    pub fn start(
        db: &Path,
        plans: Vec<SinkPlan>,
        wake: &watch::Receiver<u64>,
        account: &Account,
    ) -> Result<Running, String> {
        let mut deliveries = Deliveries::default();
        if !plans.is_empty() {
            let http = webhook::http_client()?;
            for plan in &plans {
                let started = match plan {
                    SinkPlan::Webhook(sink) => Webhook::new(sink, http.clone()).and_then(|hook| {
                        deliveries.spawn(db, &sink.name, sink.max_age, hook, wake.clone())
                    }),
                    SinkPlan::Smn(sink) => {
                        Smn::new(sink, account.client.clone(), account.permits.clone()).and_then(
                            |topic| {
                                deliveries.spawn(db, &sink.name, sink.max_age, topic, wake.clone())
                            },
                        )
                    }
                };
                if let Err(error) = started {
                    deliveries.abort();
                    return Err(error);
                }
            }
        }
        Ok(Running { plans, deliveries })
    }

    /// The sinks being served.
    pub fn plans(&self) -> &[SinkPlan] {
        &self.plans
    }

    /// Stops every delivery task (see [`Deliveries::stop`]).
    pub async fn stop(self) {
        self.deliveries.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::outbox::Queued;
    use crate::store::{Store, db_path};

    fn webhook(name: &str, url: &str) -> SinkPlan {
        SinkPlan::Webhook(webhook::Sink {
            name: name.to_string(),
            url: url.parse().unwrap(),
            secrets: Vec::new(),
            max_age: Duration::from_secs(60),
        })
    }

    #[test]
    fn former_keys_move_to_the_name_and_removed_sinks_give_up_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let db = db_path(dir.path());
        let mut conn = outbox::connect(&db).unwrap();
        let tx = conn.transaction().unwrap();
        for (sink, event_id) in [
            // Written by the previous release, keyed by the URL.
            ("https://a.example.com/hook", "e1"),
            ("https://a.example.com/hook", "e2"),
            // Already queued under the name as well.
            ("ops", "e2"),
            // A sink no longer configured.
            ("https://gone.example.com/", "e3"),
        ] {
            let queued = Queued {
                sink: sink.to_string(),
                target: "https://a.example.com/hook".to_string(),
                event_id: event_id.to_string(),
                body: "{}".to_string(),
                created_at: 1,
            };
            outbox::queue(&tx, &queued).unwrap();
        }
        tx.commit().unwrap();
        let plans = [webhook("ops", "https://a.example.com/hook")];
        assert_eq!(reconcile(&db, &plans).unwrap(), (1, 1));
        assert_eq!(outbox::sinks(&conn).unwrap(), vec![("ops".to_string(), 2)]);
        // A second start finds nothing to do.
        assert_eq!(reconcile(&db, &plans).unwrap(), (0, 0));
        drop(store);
    }
}
