//! `wasi:config/store`, answered by the host from the named configs a component was started
//! with (merged in order), so a component reads its settings without a link or a provider.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::store::StoreState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wit/config",
        world: "wasi:config/imports",
    });
}

use bindings::wasi::config::store;

/// A component's configuration as its instances see it.
pub type ComponentConfig = Arc<BTreeMap<String, String>>;

impl store::Host for StoreState {
    fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        Ok(self.config.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        Ok(self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    store::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
}
