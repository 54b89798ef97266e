//! The links and named configs as a follower of the store last saw them.

use std::collections::BTreeMap;

use super::{Change, Configs, StateChange, Update};
use crate::link::{Link, LinkKey};

/// Fed by [`super::follow`] over [`super::LatticeStore::state_followed`]: a snapshot, then
/// every change.
#[derive(Clone, Debug, Default)]
pub struct Mirror {
    pub links: BTreeMap<LinkKey, Link>,
    pub configs: Configs,
}

impl Mirror {
    pub fn from_snapshot(links: Vec<Link>, configs: Configs) -> Self {
        Self {
            links: links.into_iter().map(|l| (l.key(), l)).collect(),
            configs,
        }
    }

    /// Every link, in key order.
    pub fn links(&self) -> Vec<Link> {
        self.links.values().cloned().collect()
    }

    pub fn apply(&mut self, update: Update<(Vec<Link>, Configs), StateChange>) {
        match update {
            Update::Snapshot((links, configs)) => *self = Self::from_snapshot(links, configs),
            Update::Change(StateChange::Link(Change::Put(l))) => {
                self.links.insert(l.key(), l);
            }
            Update::Change(StateChange::Link(Change::Deleted(k))) => {
                self.links.remove(&k);
            }
            Update::Change(StateChange::Config(Change::Put((name, c)))) => {
                self.configs.insert(name, c);
            }
            Update::Change(StateChange::Config(Change::Deleted(name))) => {
                self.configs.remove(&name);
            }
        }
    }
}
