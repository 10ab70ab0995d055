//! `SIGHUP`: the configuration and the watch list read again. A valid new
//! configuration takes effect without losing any job's state (the
//! scheduler keeps its jobs and gets new settings, a new poller when the
//! endpoints or credentials changed, and the new list); an invalid one is
//! reported with `daemon.reload_failed` and the old one stays in force.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{oneshot, watch as signal};

use super::account::{self, Account};
use super::{load_watch_list, release_freed_memory, settings, watch_list_len};
use crate::config::Config;
use crate::huaweicloud::credentials::Environment;
use crate::output::event;
use crate::output::log;
use crate::output::notify::{self, Running, SinkPlan};
use crate::scheduler::{self, Command};
use crate::services::Poller;

/// The configuration in force and what was built from it.
pub(super) struct Current {
    pub(super) config: Config,
    pub(super) account: Account,
    pub(super) deliveries: Option<Running>,
    pub(super) outbox_db: PathBuf,
    pub(super) outbox_wake: signal::Receiver<u64>,
}

impl Current {
    /// Re-reads the configuration and the watch list; on any error the old
    /// configuration stays in force.
    pub(super) async fn reload(
        &mut self,
        path: &Option<PathBuf>,
        env_map: &BTreeMap<String, String>,
        handle: &scheduler::Handle,
    ) {
        let tracked = watch_list_len(&handle.stats);
        let config = match path {
            Some(path) => match Config::load(path, env_map) {
                Ok(config) => config,
                Err(error) => {
                    log::announce(&event::daemon_reload_failed(tracked, &error.to_string()));
                    return;
                }
            },
            None => self.config.clone(),
        };
        let env = Environment::from_pairs(env_map.clone());
        let mut poller: Option<Arc<dyn Poller>> = None;
        let mut account = self.account.clone();
        if account::differs(&self.config, &config) {
            match account::connect(&config, &env).await {
                Ok(fresh) => {
                    poller = Some(Arc::new(fresh.fleet.clone()));
                    account = fresh;
                }
                Err(error) => {
                    log::announce(&event::daemon_reload_failed(tracked, &error.to_string()));
                    return;
                }
            }
        } else if let Err(error) = {
            let mut warnings = Vec::new();
            let reloaded = account.provider.reload(&env, &mut warnings);
            for warning in &warnings {
                log::announce(&event::credentials_warning(warning));
            }
            reloaded
        } {
            log::announce(&event::daemon_reload_failed(
                tracked,
                &format!("credentials: {error}"),
            ));
            return;
        }
        // The sinks are read once the account is known: an SMN sink needs
        // its project's id.
        let sinks = match notify::load(&config, &|project| account.project_id(project)) {
            Ok(sinks) => sinks,
            Err(error) => {
                log::announce(&event::daemon_reload_failed(tracked, &error));
                return;
            }
        };
        let rebuilt = poller.is_some();
        let notify_account = account.notify(handle.permits());
        if let Err(error) = self
            .restart_deliveries(sinks, rebuilt, &notify_account)
            .await
        {
            log::announce(&event::daemon_reload_failed(tracked, &error));
            return;
        }
        if config.log().level != self.config.log().level {
            crate::output::log::set_level(&config.log().level);
        }
        handle.send(Command::Reconfigure {
            settings: Box::new(settings(&config, &account)),
            poller,
        });
        handle.send(Command::WatchList(load_watch_list(&config)));
        self.config = config;
        self.account = account;
        // `daemon.reloaded` (and the `READY=1` after it) wait until the
        // scheduler has applied the new list, so its count is the new one.
        let (applied, wait) = oneshot::channel();
        if handle.send(Command::Sync(applied)) {
            let _ = wait.await;
        }
        release_freed_memory();
        log::announce(&event::daemon_reloaded(watch_list_len(&handle.stats)));
    }

    /// Replaces the delivery tasks when the sinks changed (never two tasks
    /// for one sink at a time); on failure the old sinks are served again.
    /// An SMN sink publishes with the account's client: when the account
    /// was rebuilt (new credentials or endpoints), its task is replaced
    /// even if the sink is unchanged.
    async fn restart_deliveries(
        &mut self,
        sinks: Vec<SinkPlan>,
        account_rebuilt: bool,
        account: &notify::Account,
    ) -> Result<(), String> {
        let uses_account = |plans: &[SinkPlan]| plans.iter().any(|p| matches!(p, SinkPlan::Smn(_)));
        let old = match self.deliveries.take() {
            Some(old)
                if old.plans() == sinks.as_slice()
                    && !(account_rebuilt && uses_account(old.plans())) =>
            {
                self.deliveries = Some(old);
                return Ok(());
            }
            Some(old) => {
                let previous = old.plans().to_vec();
                old.stop().await;
                previous
            }
            None => Vec::new(),
        };
        // A sink that left the configuration gives up its rows now, as at
        // a start; one that stays keeps them.
        notify::reconcile(&self.outbox_db, &sinks)?;
        let start = |sinks| Running::start(&self.outbox_db, sinks, &self.outbox_wake, account);
        match start(sinks) {
            Ok(deliveries) => {
                self.deliveries = Some(deliveries);
                Ok(())
            }
            Err(error) => {
                self.deliveries = start(old).ok();
                Err(error)
            }
        }
    }
}
