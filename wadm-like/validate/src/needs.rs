//! What a component's imports demand of the hosts it runs on, added to its placement as
//! label requirements so the author does not have to write them: a component importing
//! `wasi:gpio` is served by its host's own chips, so it may only run where the host says
//! `trellis.gpio=present`.

use trellis_lattice::labels::{self, Labels};
use trellis_lattice::manifest::{Manifest, Spread, Trait};

/// The labels a host must carry to serve these imports.
pub fn implied_requirements(imports: &[String]) -> Labels {
    let mut needs = Labels::new();
    if imports.iter().any(|i| i.starts_with("wasi:gpio/")) {
        needs.insert(labels::GPIO.into(), labels::GPIO_PRESENT.into());
    }
    needs
}

/// Adds `needs` to every spread of component `index`'s scaler (a scaler without spreads
/// gets one, `default`); a requirement the author wrote for the same label stays theirs.
pub fn imply(manifest: &mut Manifest, index: usize, needs: &Labels) {
    if needs.is_empty() {
        return;
    }
    let Some(c) = manifest.spec.components.get_mut(index) else {
        return;
    };
    for t in &mut c.traits {
        let spreads = match t {
            Trait::SpreadScaler(s) => &mut s.spread,
            Trait::DaemonScaler(d) => &mut d.spread,
            Trait::Link(_) => continue,
        };
        if spreads.is_empty() {
            spreads.push(Spread {
                name: "default".into(),
                ..Default::default()
            });
        }
        for s in spreads.iter_mut() {
            for (k, v) in needs {
                s.requirements.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpio_imports_require_gpio_hosts() {
        let needs = implied_requirements(&[
            "wasi:gpio/digital@0.2.0".into(),
            "wasi:io/poll@0.2.5".into(),
        ]);
        assert_eq!(
            needs.get("trellis.gpio").map(String::as_str),
            Some("present")
        );
        assert!(implied_requirements(&["wasi:keyvalue/store@0.2.0-draft".into()]).is_empty());
    }
}
