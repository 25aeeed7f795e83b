//! The supervisor: starts the instances of every unit, keeps the store's
//! `run_processes` rows current, routes web traffic, switches releases and
//! stops everything.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brr_hash::ReleaseHash;
use brr_release::Secrets;
use brr_store::{RunProcess, Store};

use crate::instance::{Key, Report, Spec};
use crate::ports::Ports;
use crate::router::Router;
use crate::{Options, Output, Probe, RunError, Unit};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every process exited on SIGTERM within its grace (or had ended).
    Stopped,
    /// Some process needed SIGKILL.
    Forced,
    /// A process type reached its start limit.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Forced => "forced",
            Self::Failed => "failed",
        }
    }
}

struct Instance {
    spec: Spec,
    service: String,
    stop: Arc<crate::instance::Stop>,
    thread: Option<JoinHandle<()>>,
    row: RunProcess,
    ready: bool,
    ended: bool,
}

/// A run in progress.
pub struct Supervisor<'a> {
    store: &'a Store,
    run: i64,
    opts: Options,
    out: Arc<Output>,
    secrets: Secrets,
    ports: Ports,
    tx: Sender<Report>,
    rx: Receiver<Report>,
    instances: BTreeMap<Key, Instance>,
    /// The stable port of each service's web processes.
    routers: BTreeMap<String, Arc<Router>>,
    /// The release each service runs (its router's backends).
    current: BTreeMap<String, ReleaseHash>,
    /// Labels carry the service when the run has several.
    several_services: bool,
    /// Where the machine delegates cgroup v2: every process of the run is
    /// in it, so none can leave (a double-forked daemon included).
    cgroup: Option<Arc<brr_process::Cgroup>>,
    failed: bool,
    forced: bool,
    _lock: File,
}

fn now_ms() -> i64 {
    brr_release::now_ms()
}

impl<'a> Supervisor<'a> {
    /// Records the run, takes its lock and starts every unit.
    pub fn start(
        store: &'a Store,
        asked: &str,
        units: &[Unit],
        secrets: Secrets,
        opts: Options,
        out: impl FnOnce(i64) -> Output,
    ) -> Result<Self, RunError> {
        let run = store.run_begin(asked, std::process::id(), now_ms())?;
        let lock_path = crate::lock_path(store, run);
        let io = |source, path: &std::path::Path| RunError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = lock_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
        }
        let lock = File::create(&lock_path).map_err(|e| io(e, &lock_path))?;
        lock.lock().map_err(|e| io(e, &lock_path))?;
        // Processes that leave their group (a double fork and `setsid`) are
        // reparented to brr, which kills them when the run stops.
        brr_process::become_subreaper();
        // Ports of other live runs; a lost run's processes died with it.
        let mut in_use = Vec::new();
        for other in store.runs_unfinished()? {
            if other.id != run && crate::supervisor_alive(store, other.id) {
                in_use.extend(store.run_ports(other.id)?);
            }
        }
        let ports = Ports::new(opts.port_base, in_use);
        // Refused in an unexpected way too: run without one, and say so below.
        let cgroup = brr_process::Cgroup::create(&format!("run-{run}")).ok().flatten().map(Arc::new);
        let (tx, rx) = channel();
        let services: BTreeSet<&str> = units.iter().map(|u| u.target.service.as_str()).collect();
        let mut sup = Self {
            store,
            run,
            opts,
            out: Arc::new(out(run)),
            secrets,
            ports,
            tx,
            rx,
            instances: BTreeMap::new(),
            routers: BTreeMap::new(),
            current: BTreeMap::new(),
            several_services: services.len() > 1,
            cgroup,
            failed: false,
            forced: false,
            _lock: lock,
        };
        if sup.cgroup.is_none() {
            let why = brr_process::Cgroup::parent()
                .err()
                .map_or_else(|| "it could not be made".to_owned(), |e| e.to_string());
            sup.out.event("brr", &format!("no cgroup for this run ({why}): processes that leave their session are found as orphans of brr instead"));
        }
        for unit in units {
            sup.current.insert(unit.target.service.clone(), unit.target.release);
        }
        sup.start_units(units)?;
        Ok(sup)
    }

    pub fn id(&self) -> i64 {
        self.run
    }

    /// (service, router port) of each service with web processes.
    pub fn routers(&self) -> Vec<(String, u16)> {
        self.routers.iter().map(|(s, r)| (s.clone(), r.port())).collect()
    }

    fn start_units(&mut self, units: &[Unit]) -> Result<(), RunError> {
        for unit in units {
            let web = unit.process == "web";
            if web && !self.routers.contains_key(&unit.target.service) {
                let (port, listener) = self.ports.listener().ok_or(RunError::NoPort { base: self.opts.port_base })?;
                self.routers.insert(unit.target.service.clone(), Router::start(port, listener));
            }
            for n in 1..=unit.instances {
                let port = self.ports.port().ok_or(RunError::NoPort { base: self.opts.port_base })?;
                self.start_instance(unit, n, port, web);
            }
        }
        Ok(())
    }

    fn start_instance(&mut self, unit: &Unit, n: u32, port: u16, web: bool) {
        let key = Key { release: unit.target.release, process: unit.process.clone(), instance: n };
        let label = if self.several_services {
            format!("{}.{}.{n}", unit.target.service, unit.process)
        } else {
            format!("{}.{n}", unit.process)
        };
        let mut env: Vec<(String, String)> = brr_release::phase::HOST_VARS
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), std::env::var(k).ok()?)))
            .collect();
        env.extend(unit.config.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(
            self.secrets
                .iter()
                .filter(|(k, _)| unit.config.secrets.contains(*k))
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env.push(("PORT".into(), port.to_string()));
        env.push(("BRR_RELEASE".into(), unit.target.release.to_string()));
        env.push(("BRR_SERVICE".into(), unit.target.service.clone()));
        env.push(("BRR_PROCESS".into(), format!("{}.{n}", unit.process)));
        if let Some(e) = &unit.target.env {
            env.push(("BRR_ENV".into(), e.clone()));
            let data = self.store.root().join("envs").join(e).join("data");
            let _ = std::fs::create_dir_all(&data);
            env.push(("BRR_DATA_DIR".into(), data.display().to_string()));
        }
        let spec = Spec {
            key: key.clone(),
            label,
            program: unit.command[0].clone(),
            args: unit.command[1..].to_vec(),
            dir: unit.dir.clone(),
            env,
            port,
            web,
            restart: unit.restart.unwrap_or(self.opts.restart),
            grace: unit.grace.unwrap_or(self.opts.grace),
            ready: unit.ready.clone().unwrap_or(if web { Probe::Tcp } else { Probe::None }),
            cgroup: self.cgroup.clone(),
        };
        let row = RunProcess {
            run: self.run,
            release: key.release,
            process: key.process.clone(),
            instance: n,
            port: Some(port),
            pid: None,
            state: "starting".into(),
            restarts: 0,
            last_exit: None,
            started_ms: None,
            updated_ms: now_ms(),
        };
        let stop = match crate::instance::Stop::new() {
            Ok(s) => Arc::new(s),
            Err(e) => {
                self.out.event(&unit.process, &format!("cannot start an instance: {e}"));
                return;
            }
        };
        let thread = {
            let (spec, opts, stop, tx, out) =
                (spec.clone(), self.opts.clone(), Arc::clone(&stop), self.tx.clone(), Arc::clone(&self.out));
            std::thread::spawn(move || crate::instance::run(&spec, &opts, &stop, &tx, &out))
        };
        let _ = self.store.run_process_update(&row, None);
        let inst = Instance {
            spec,
            service: unit.target.service.clone(),
            stop,
            thread: Some(thread),
            row,
            ready: false,
            ended: false,
        };
        self.instances.insert(key, inst);
    }

    /// Handles one report: the row, the router, the output.
    fn handle(&mut self, report: Report) {
        let (key, state, event, detail): (Key, &str, &str, Option<String>) = match report {
            Report::Started { key, pid } => {
                if let Some(i) = self.instances.get_mut(&key) {
                    if i.row.started_ms.is_some() {
                        i.row.restarts += 1;
                    }
                    i.row.pid = Some(pid);
                    i.row.started_ms = Some(now_ms());
                }
                (key, "running", "start", Some(format!("pid {pid}")))
            }
            Report::Ready { key } => (key, "ready", "ready", None),
            Report::Exited { key, status } => {
                if let Some(i) = self.instances.get_mut(&key) {
                    i.row.last_exit = Some(status.clone());
                    i.ready = false;
                    if i.spec.web
                        && let Some(r) = self.routers.get(&i.service)
                    {
                        r.remove(i.spec.port);
                    }
                }
                (key, "exited", "exit", Some(status))
            }
            Report::Backoff { key, delay } => {
                (key, "backoff", "backoff", Some(format!("restarting in {} ms", delay.as_millis())))
            }
            Report::Failed { key, reason } => {
                self.failed = true;
                (key, "failed", "failed", Some(reason))
            }
            Report::Stopped { key, status, forced } => {
                self.forced |= forced;
                if let Some(i) = self.instances.get_mut(&key)
                    && status != "not running"
                {
                    i.row.last_exit = Some(status.clone());
                }
                (key, "stopped", "stop", Some(status))
            }
            Report::Done { key } => (key, "exited", "exit", Some("not restarted (its policy)".into())),
        };
        let Some(inst) = self.instances.get_mut(&key) else { return };
        state.clone_into(&mut inst.row.state);
        inst.row.updated_ms = now_ms();
        if state == "ready" {
            inst.ready = true;
            if inst.spec.web
                && self.current.get(&inst.service) == Some(&key.release)
                && let Some(r) = self.routers.get(&inst.service)
            {
                r.add(inst.spec.port);
            }
        }
        if matches!(state, "failed" | "stopped")
            || event == "exit" && detail.as_deref() == Some("not restarted (its policy)")
        {
            inst.ended = true;
        }
        let message = match (&detail, event) {
            (Some(d), "start") => format!("started ({d}, PORT {})", inst.spec.port),
            (Some(d), _) => format!("{event}: {d}"),
            (None, _) => event.to_owned(),
        };
        self.out.event(&inst.spec.label, &message);
        let _ = self.store.run_process_update(&inst.row, Some((event, detail.as_deref())));
    }

    /// Handles reports for up to `wait`.
    fn pump(&mut self, wait: Duration) {
        match self.rx.recv_timeout(wait) {
            Ok(r) => {
                self.handle(r);
                while let Ok(r) = self.rx.try_recv() {
                    self.handle(r);
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
    }

    /// Whether every instance of `release` (every release when `None`) is
    /// ready; `Err` when one of them ended instead.
    fn all_ready(&self, release: Option<ReleaseHash>) -> Result<bool, String> {
        let mut all = true;
        for (k, i) in &self.instances {
            if release.is_some_and(|r| r != k.release) {
                continue;
            }
            if i.ended {
                return Err(format!("{} {}", i.spec.label, i.row.state));
            }
            all &= i.ready;
        }
        Ok(all)
    }

    /// Waits until every process is ready; false when `timeout` passes, one
    /// fails, or `stop` is set first.
    pub fn wait_ready(&mut self, timeout: Duration, stop: &AtomicBool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            match self.all_ready(None) {
                Ok(true) => return true,
                Ok(false) => self.pump(Duration::from_millis(20)),
                Err(_) => return false,
            }
        }
        false
    }

    /// Supervises until `stop` is set or nothing is left to supervise.
    /// `next_release(service)` is asked every half second which release a
    /// service should run (the environment's current one); a change starts
    /// a switch.
    pub fn supervise(
        &mut self,
        stop: &AtomicBool,
        mut next_release: impl FnMut(&str) -> Option<ReleaseHash>,
        mut replan: impl FnMut(&str, ReleaseHash) -> Result<Vec<Unit>, RunError>,
    ) {
        let mut checked = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            self.pump(Duration::from_millis(100));
            if self.instances.values().all(|i| i.ended) {
                break;
            }
            if checked.elapsed() >= Duration::from_millis(500) {
                checked = Instant::now();
                let services: Vec<(String, ReleaseHash)> = self.current.iter().map(|(s, r)| (s.clone(), *r)).collect();
                for (service, running) in services {
                    if let Some(next) = next_release(&service)
                        && next != running
                    {
                        match replan(&service, next) {
                            Ok(units) => {
                                self.switch(&service, &units, stop);
                            }
                            Err(e) => self.out.event(&service, &format!("cannot switch to {}: {e}", next.short())),
                        }
                    }
                }
            }
        }
    }

    /// Replaces `service`'s processes with `units` (one new release): starts
    /// them, waits until they are ready, points the router at them, lets
    /// the old processes finish their connections, then stops them. If the
    /// new ones do not become ready, they are stopped and the old ones go
    /// on. Returns whether it switched.
    pub fn switch(&mut self, service: &str, units: &[Unit], stop: &AtomicBool) -> bool {
        let Some(new) = units.first().map(|u| u.target.release) else { return false };
        let old = self.current.get(service).copied();
        self.out.event(service, &format!("switching to release {}", new.short()));
        if let Err(e) = self.start_units(units) {
            self.out.event(service, &format!("switch to {} failed: {e}", new.short()));
            return false;
        }
        let deadline = Instant::now() + self.opts.ready_timeout;
        let outcome = loop {
            match self.all_ready(Some(new)) {
                Ok(true) => break Ok(()),
                Ok(false) if Instant::now() >= deadline => break Err("not ready in time".to_owned()),
                Ok(false) if stop.load(Ordering::SeqCst) => break Err("stopped".to_owned()),
                Ok(false) => self.pump(Duration::from_millis(20)),
                Err(e) => break Err(e),
            }
        };
        if let Err(why) = outcome {
            self.stop_where(|k, _| k.release == new);
            let keeps = old.map_or_else(String::new, |o| format!("; {} keeps running", o.short()));
            self.out.event(service, &format!("switch to {} failed ({why}){keeps}", new.short()));
            return false;
        }
        self.current.insert(service.to_owned(), new);
        if let Some(router) = self.routers.get(service).cloned() {
            let ports: Vec<u16> = self
                .instances
                .iter()
                .filter(|(k, i)| k.release == new && i.spec.web && i.ready)
                .map(|(_, i)| i.spec.port)
                .collect();
            router.set(ports);
            // Let connections already through the router to old processes finish.
            let old_ports: Vec<u16> = self
                .instances
                .iter()
                .filter(|(k, i)| i.service == service && k.release != new && i.spec.web)
                .map(|(_, i)| i.spec.port)
                .collect();
            let drain_until = Instant::now() + self.opts.grace;
            while old_ports.iter().any(|p| router.active(*p) > 0) && Instant::now() < drain_until {
                self.pump(Duration::from_millis(10));
            }
        }
        self.stop_where(|k, i| i.service == service && k.release != new);
        self.out.event(service, &format!("switched to release {}", new.short()));
        true
    }

    /// Stops the instances `which` selects and waits until they have.
    fn stop_where(&mut self, which: impl Fn(&Key, &Instance) -> bool) {
        let keys: Vec<Key> = self.instances.iter().filter(|(k, i)| which(k, i)).map(|(k, _)| k.clone()).collect();
        for k in &keys {
            if let Some(i) = self.instances.get(k) {
                i.stop.request();
            }
        }
        while keys.iter().any(|k| self.instances.get(k).is_some_and(|i| !i.ended)) {
            self.pump(Duration::from_millis(20));
        }
        for k in &keys {
            if let Some(mut i) = self.instances.remove(k)
                && let Some(t) = i.thread.take()
            {
                let _ = t.join();
            }
        }
    }

    /// Stops every process (SIGTERM, the grace, SIGKILL), kills whatever
    /// escaped its group, and records how the run ended.
    pub fn shutdown(mut self) -> Outcome {
        self.stop_where(|_, _| true);
        // Whatever the processes left in the run's cgroup (a daemon that
        // left its session), then whatever was reparented to brr.
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.kill();
            let _ = cg.wait_empty(Duration::from_secs(5));
            if let Ok(cg) = Arc::try_unwrap(cg) {
                let _ = cg.remove();
            }
        }
        brr_process::kill_orphans();
        for router in self.routers.values() {
            router.stop();
        }
        let outcome = if self.failed {
            Outcome::Failed
        } else if self.forced {
            Outcome::Forced
        } else {
            Outcome::Stopped
        };
        let _ = self.store.run_end(self.run, now_ms(), outcome.as_str());
        outcome
    }
}
