//! Operator overrides: temporary instructions an operator gives the running
//! domain (`asctl move`, `asctl standby`) rather than through the files in
//! git. They are kept in the domain database and are an input of
//! [`super::place_with`], so `plan` predicts with the same ones the leader
//! places with.
//!
//! Times are milliseconds since the Unix epoch as the leader's clock gave
//! them when it committed the command; nothing here reads a clock: callers
//! pass `now`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::Name;

/// How long an override lasts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifetime {
    /// When it was given.
    pub since_ms: u64,
    /// When it ends by itself; `None`: until it is cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

impl Lifetime {
    /// Whether it is in force at `now`: an expired override counts for
    /// nothing even before the leader removes it.
    pub fn active_at(&self, now: u64) -> bool {
        self.until_ms.is_none_or(|u| now < u)
    }
}

/// `asctl move GROUP NODE`: run GROUP on NODE while NODE is eligible for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveOverride {
    pub node: Name,
    #[serde(flatten)]
    pub lifetime: Lifetime,
}

/// The overrides in the domain database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overrides {
    /// By group.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moves: BTreeMap<Name, MoveOverride>,
    /// Nodes put on standby (`asctl standby NODE`), as if `standby: true`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub standby: BTreeMap<Name, Lifetime>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.standby.is_empty()
    }

    /// The nodes on standby by override at `now`.
    pub fn standby_at(&self, now: u64) -> BTreeSet<Name> {
        self.standby
            .iter()
            .filter(|(_, l)| l.active_at(now))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Where an operator moved `group`, if that is in force at `now`.
    pub fn move_at(&self, group: &Name, now: u64) -> Option<&Name> {
        self.moves
            .get(group)
            .filter(|m| m.lifetime.active_at(now))
            .map(|m| &m.node)
    }

    /// The earliest end of an override still in the database.
    pub fn next_expiry(&self) -> Option<u64> {
        let moves = self.moves.values().map(|m| m.lifetime);
        moves
            .chain(self.standby.values().copied())
            .filter_map(|l| l.until_ms)
            .min()
    }

    /// Whether some override in the database has ended at `now`.
    pub fn any_expired_at(&self, now: u64) -> bool {
        self.next_expiry().is_some_and(|u| u <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::n;

    #[test]
    fn an_override_is_in_force_until_its_end_and_not_at_it() {
        let mut o = Overrides::default();
        o.moves.insert(
            n("web"),
            MoveOverride {
                node: n("node2"),
                lifetime: Lifetime {
                    since_ms: 100,
                    until_ms: Some(200),
                },
            },
        );
        o.standby.insert(n("node3"), Lifetime::default());
        assert_eq!(o.move_at(&n("web"), 199), Some(&n("node2")));
        assert_eq!(o.move_at(&n("web"), 200), None);
        assert_eq!(o.move_at(&n("api"), 150), None);
        assert_eq!(o.standby_at(u64::MAX), [n("node3")].into_iter().collect());
        assert_eq!(o.next_expiry(), Some(200));
        assert!(!o.any_expired_at(199));
        assert!(o.any_expired_at(200));
        let json = serde_json::to_string(&o).expect("serialises");
        assert_eq!(
            json,
            r#"{"moves":{"web":{"node":"node2","sinceMs":100,"untilMs":200}},"standby":{"node3":{"sinceMs":0}}}"#
        );
        assert_eq!(serde_json::from_str::<Overrides>(&json).expect("parses"), o);
    }

    mod placement {
        use super::*;
        use crate::model::Config;
        use crate::plan::{Health, NodeState, Placement, Unclean, place, place_with};

        fn quickstart() -> Config {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");
            crate::load::load(&[crate::load::Input::Path(dir.into())])
                .expect("loads")
                .config
        }

        fn all_up() -> Health {
            ["node1", "node2", "node3"]
                .iter()
                .map(|x| (n(x), NodeState::Up))
                .collect()
        }

        fn node_of(p: &Placement, g: &str) -> Option<String> {
            p.get(g)
                .and_then(|x| x.node.as_ref())
                .map(|x| x.to_string())
        }

        fn moved(group: &str, node: &str, until_ms: Option<u64>) -> Overrides {
            let mut o = Overrides::default();
            o.moves.insert(
                n(group),
                MoveOverride {
                    node: n(node),
                    lifetime: Lifetime {
                        since_ms: 0,
                        until_ms,
                    },
                },
            );
            o
        }

        #[test]
        fn a_move_places_the_group_there_until_it_expires() {
            let c = quickstart();
            let home = place(&c, &all_up(), &Placement::new());
            assert_eq!(node_of(&home, "web").as_deref(), Some("node1"));
            let o = moved("web", "node3", Some(1_000));
            let p = place_with(&c, &all_up(), &home, &Unclean::new(), &o, 999);
            assert_eq!(node_of(&p, "web").as_deref(), Some("node3"));
            // A fixed point, and other groups stay where they were.
            assert_eq!(place_with(&c, &all_up(), &p, &Unclean::new(), &o, 999), p);
            assert_eq!(node_of(&p, "api"), node_of(&home, "api"));
            // Expired: `web` (failback: auto) goes home without anyone
            // removing the override.
            let after = place_with(&c, &all_up(), &p, &Unclean::new(), &o, 1_000);
            assert_eq!(node_of(&after, "web").as_deref(), Some("node1"));
        }

        #[test]
        fn a_move_to_a_node_that_cannot_take_the_group_is_not_followed() {
            let c = quickstart();
            let home = place(&c, &all_up(), &Placement::new());
            // batch prefers node3 then node1: node2 is not one of its nodes.
            let p = place_with(
                &c,
                &all_up(),
                &home,
                &Unclean::new(),
                &moved("batch", "node2", None),
                5,
            );
            assert_eq!(node_of(&p, "batch"), node_of(&home, "batch"));
            // The target is down: placed as without the override.
            let mut health = all_up();
            health.insert(n("node3"), NodeState::Down);
            let p = place_with(
                &c,
                &health,
                &home,
                &Unclean::new(),
                &moved("web", "node3", None),
                5,
            );
            assert_eq!(node_of(&p, "web").as_deref(), Some("node1"));
            // The group failed there.
            let mut failed = home.clone();
            failed
                .get_mut("web")
                .expect("web")
                .failed_on
                .insert(n("node3"));
            let p = place_with(
                &c,
                &all_up(),
                &failed,
                &Unclean::new(),
                &moved("web", "node3", None),
                5,
            );
            assert_eq!(node_of(&p, "web").as_deref(), Some("node1"));
        }

        #[test]
        fn a_node_on_standby_by_override_is_emptied_until_it_ends() {
            let c = quickstart();
            let home = place(&c, &all_up(), &Placement::new());
            assert_eq!(node_of(&home, "api").as_deref(), Some("node2"));
            let mut o = Overrides::default();
            o.standby.insert(
                n("node2"),
                Lifetime {
                    since_ms: 0,
                    until_ms: Some(50),
                },
            );
            let p = place_with(&c, &all_up(), &home, &Unclean::new(), &o, 10);
            assert!(p.values().all(|x| x.node.as_ref() != Some(&n("node2"))));
            assert_eq!(node_of(&p, "api").as_deref(), Some("node3"));
            // A move onto a node on standby is not followed either.
            let mut both = o.clone();
            both.moves = moved("web", "node2", None).moves;
            let q = place_with(&c, &all_up(), &home, &Unclean::new(), &both, 10);
            assert_eq!(node_of(&q, "web").as_deref(), Some("node1"));
            // Ended: api (failback: manual) stays where it went; nothing
            // else has to move.
            let r = place_with(&c, &all_up(), &p, &Unclean::new(), &o, 50);
            assert_eq!(node_of(&r, "api").as_deref(), Some("node3"));
        }
    }
}
