//! The stores a command reads from: one per registry repository or layout,
//! however many of its locations name it (one client, one authentication,
//! pooled connections), each location's selector chosen as
//! [`super::open_image`] does.

use std::collections::HashMap;

use super::{Store, choose, open};
use crate::config::Settings;
use crate::error::Result;
use crate::image::{Location, Selector};

/// Which store of a [`Pool`] a location was opened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreId(usize);

/// Source stores opened once each, in the order first named.
#[derive(Default)]
pub struct Pool {
    stores: Vec<Box<dyn Store>>,
    by_key: HashMap<String, StoreId>,
}

impl Pool {
    pub fn new() -> Self {
        Self::default()
    }

    /// The store behind `location` (opened on first use) and what to read in it.
    pub async fn open_image(
        &mut self,
        location: &Location,
        settings: &Settings,
    ) -> Result<(StoreId, Selector)> {
        let key = location.store_key();
        let id = match self.by_key.get(&key) {
            Some(id) => *id,
            None => {
                self.stores.push(open(location, settings, false).await?);
                let id = StoreId(self.stores.len() - 1);
                self.by_key.insert(key, id);
                id
            }
        };
        let (selector, _) = choose(location, self.get(id)).await?;
        Ok((id, selector))
    }

    /// A store opened before.
    pub fn get(&self, id: StoreId) -> &dyn Store {
        self.stores[id.0].as_ref()
    }
}
