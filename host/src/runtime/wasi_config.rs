//! `wasi:config/store`, answered by the host from the named configs a component was started
//! with (merged in order), so a component reads its settings without a link or a provider.
//! Served from its own small context ([`ConfigCtx`]), like each WASI interface.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wit/config",
        world: "wasi:config/imports",
    });
}

use bindings::wasi::config::store;

/// A component's configuration as its instances see it.
pub type ComponentConfig = Arc<ConfigValues>;

/// Config values with secrets opened: readable as a map, but `Debug` shows the keys only, so
/// a log line that mentions it carries no value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigValues(BTreeMap<String, String>);

impl std::ops::Deref for ConfigValues {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<BTreeMap<String, String>> for ConfigValues {
    fn from(values: BTreeMap<String, String>) -> Self {
        Self(values)
    }
}

impl std::fmt::Debug for ConfigValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What `wasi:config/store` answers from: one instance's view of its component's config.
#[derive(Clone, Default)]
pub struct ConfigCtx(pub ComponentConfig);

impl store::Host for ConfigCtx {
    fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        Ok(self.0.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        Ok(self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// Adds `wasi:config/store` to `linker`, served from the [`ConfigCtx`] `get` returns.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ConfigCtx,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasSelf<ConfigCtx>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::Host as _;

    #[test]
    fn answers_from_the_merged_config() {
        let values: BTreeMap<_, _> = [("a".to_string(), "1".to_string())].into();
        let mut ctx = ConfigCtx(Arc::new(values.into()));
        assert_eq!(format!("{:?}", ctx.0), r#"{"a"}"#, "keys only");
        assert_eq!(ctx.get("a".into()).unwrap().as_deref(), Some("1"));
        assert_eq!(ctx.get("b".into()).unwrap(), None);
        assert_eq!(ctx.get_all().unwrap(), vec![("a".into(), "1".into())]);
    }
}
