//! An agent's heartbeats, isolation probes and failure detector, running
//! inside a namespace on a thread of its own, observed from the test thread.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asctl::agent::detector::Event;
use asctl::agent::heartbeat;
use asctl::agent::isolation::Method;
use asctl::agent::metrics::Metrics;
use asctl::agent::monitor::{self, HealthView};
use asctl::agent::packet::DomainKey;
use asctl::model::{Config, Name};
use asctl::wire::PeerState;
use tokio::sync::oneshot;

use super::{Netns, wait_for};

pub const KEY: &[u8] = b"test domain key";
/// Generous for a loaded 2-core CI machine; the figures are printed.
pub const LIMIT: Duration = Duration::from_secs(10);

pub fn n(s: &str) -> Name {
    s.parse().expect("valid name")
}

pub struct Agent {
    pub metrics: Arc<Metrics>,
    pub incarnation: u64,
    /// The isolation probe method the agent chose (or was given).
    pub method: Arc<Mutex<Option<Method>>>,
    view: Arc<Mutex<HealthView>>,
    events: Arc<Mutex<Vec<(Instant, Event)>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    /// Starts `node`'s agent parts in `ns`. Isolation probing runs when the
    /// domain has isolation addresses.
    pub fn start(ns: &Netns, config: &Config, node: &str) -> Agent {
        let node = n(node);
        let incarnation = heartbeat::incarnation_now();
        let metrics = Arc::new(Metrics::new());
        let view = Arc::new(Mutex::new(HealthView::default()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let method = Arc::new(Mutex::new(None));
        let (stop, mut stop_rx) = oneshot::channel();
        let (m, v, e, meth) = (
            metrics.clone(),
            view.clone(),
            events.clone(),
            method.clone(),
        );
        let config = config.clone();
        let thread = ns.spawn(move || async move {
            // The daemon's one call.
            let mut node = monitor::start_node(&config, &node, DomainKey::new(KEY), incarnation, m)
                .expect("node monitor starts");
            *meth.lock().expect("method") = node.isolation_method;
            let mon = &mut node.monitor;
            *v.lock().expect("view") = mon.view.borrow_and_update().clone();
            loop {
                tokio::select! {
                    _ = &mut stop_rx => return,
                    Some(ev) = mon.events.recv() => e.lock().expect("events").push(ev),
                    Ok(()) = mon.view.changed() => {
                        *v.lock().expect("view") = mon.view.borrow_and_update().clone();
                    }
                }
            }
        });
        Agent {
            metrics,
            incarnation,
            method,
            view,
            events,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn peer(&self, peer: &str) -> Option<PeerState> {
        self.view
            .lock()
            .expect("view")
            .peers
            .get(peer)
            .map(|p| p.state)
    }

    pub fn line_up(&self, peer: &str, line: &str) -> Option<bool> {
        self.view
            .lock()
            .expect("view")
            .peers
            .get(peer)
            .and_then(|p| p.lines.get(line).copied())
    }

    pub fn isolated(&self) -> bool {
        self.view.lock().expect("view").isolated
    }

    pub fn peer_events(&self) -> Vec<(PeerState, PeerState)> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Peer { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }

    /// Waits until every one of `lines` to `peer` has carried packets.
    pub fn wait_lines_up(&self, peer: &str, lines: &[&str]) {
        wait_for(&format!("packets from {peer} on {lines:?}"), LIMIT, || {
            lines.iter().all(|l| {
                self.metrics.last_seen(peer, l).is_some() && self.line_up(peer, l) == Some(true)
            })
        });
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asserts that `cond` holds for the whole of `window`: the one place a test
/// watches a span of time, since it checks that something does *not* happen.
pub fn holds_for(what: &str, window: Duration, cond: impl Fn() -> bool) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        assert!(cond(), "{what} stopped holding");
        std::thread::sleep(Duration::from_millis(20));
    }
}
