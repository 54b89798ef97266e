//! Every id and size of a request, checked once where the request is parsed: a request that
//! passes holds only ids that are one subject token and sizes within `crate::limits`, so no
//! handler builds a subject or a key from something a client made up.

use crate::app::{AppName, DeployApp, GetApp, ListApps, PutApp};
use crate::control::{
    ComponentAuction, DeleteConfig, DeleteLabel, DeleteLink, DescribeComponent, Empty, GetHost,
    PutConfig, PutLabel, PutLink, RetargetLink, ScaleComponent, StartProvider, StopHost,
    StopProvider,
};
use crate::error::{Error, Result};
use crate::gpio::{self, GpioLine, GpioSet};
use crate::id::{validate_component_id, validate_token};
use crate::image::ImageRef;
use crate::labels;
use crate::limits::{self, MAX_CONFIG_NAMES, MAX_IMAGE_REF_LEN, MAX_MANIFEST_BYTES, MAX_REPLICAS};
use crate::link::{validate_config_name, validate_wit_name, LinkKey};

/// What a request must satisfy before a handler sees it.
pub trait Check {
    fn check(&self) -> Result<()>;
}

fn image(value: &str, required: bool) -> Result<()> {
    if value.is_empty() {
        return match required {
            true => Err(Error::invalid("image", value, "must not be empty")),
            false => Ok(()),
        };
    }
    if value.len() > MAX_IMAGE_REF_LEN {
        return Err(Error::invalid(
            "image",
            value,
            format!("must be at most {MAX_IMAGE_REF_LEN} characters"),
        ));
    }
    ImageRef::parse(value)
        .map(|_| ())
        .map_err(|e| Error::invalid("image", value, e.reason))
}

fn config_names(names: &[String]) -> Result<()> {
    limits::check_count("config names", names.len(), MAX_CONFIG_NAMES)?;
    names.iter().try_for_each(|n| validate_config_name(n))
}

fn link_key(key: &LinkKey) -> Result<()> {
    validate_component_id(&key.source_id)?;
    validate_wit_name("WIT namespace", &key.wit_namespace)?;
    validate_wit_name("WIT package", &key.wit_package)?;
    validate_token("link name", &key.name)
}

fn app_name(name: &str) -> Result<()> {
    validate_token("application name", name)
}

fn version(version: &Option<String>) -> Result<()> {
    match version {
        Some(v) if v.is_empty() || v.len() > 64 || v.chars().any(|c| c.is_control()) => {
            Err(Error::invalid(
                "version",
                v,
                "must be 1 to 64 characters without control characters",
            ))
        }
        _ => Ok(()),
    }
}

impl Check for GpioLine {
    fn check(&self) -> Result<()> {
        gpio::validate_chip_name(&self.chip)?;
        gpio::validate_line(self.line)
    }
}

impl Check for GpioSet {
    fn check(&self) -> Result<()> {
        gpio::validate_chip_name(&self.chip)?;
        gpio::validate_line(self.line)?;
        if self.value > 1 {
            return Err(Error::invalid(
                "value",
                &self.value.to_string(),
                "must be 0 or 1",
            ));
        }
        Ok(())
    }
}

impl Check for Empty {
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

impl Check for GetHost {
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

impl Check for StopHost {
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

impl Check for ScaleComponent {
    fn check(&self) -> Result<()> {
        validate_component_id(&self.component_id)?;
        image(&self.image, false)?;
        if self.replicas > MAX_REPLICAS {
            return Err(Error::invalid(
                "replicas",
                &self.replicas.to_string(),
                format!("at most {MAX_REPLICAS} replicas run on one host"),
            ));
        }
        config_names(&self.config)?;
        self.grants.check()?;
        if let Some(issuer) = &self.issuer {
            crate::id::validate_issuer(issuer)?;
        }
        limits::check_annotations("annotations", &self.annotations)
    }
}

impl Check for PutLabel {
    fn check(&self) -> Result<()> {
        labels::validate_user_label(&self.key, &self.value)
    }
}

impl Check for DeleteLabel {
    fn check(&self) -> Result<()> {
        labels::validate_user_label(&self.key, "")
    }
}

impl Check for ComponentAuction {
    fn check(&self) -> Result<()> {
        validate_component_id(&self.component_id)?;
        image(&self.image, false)?;
        limits::check_count(
            "constraints",
            self.constraints.len(),
            limits::MAX_ANNOTATIONS,
        )?;
        self.constraints
            .iter()
            .try_for_each(|(k, v)| labels::validate_key(k).and(labels::validate_value(k, v)))
    }
}

impl Check for DescribeComponent {
    fn check(&self) -> Result<()> {
        validate_component_id(&self.component_id)
    }
}

impl Check for StartProvider {
    fn check(&self) -> Result<()> {
        validate_token("provider id", &self.provider_id)?;
        image(&self.image, true)?;
        config_names(&self.config)?;
        limits::check_annotations("annotations", &self.annotations)
    }
}

impl Check for StopProvider {
    fn check(&self) -> Result<()> {
        validate_token("provider id", &self.provider_id)
    }
}

impl Check for PutLink {
    fn check(&self) -> Result<()> {
        self.link.validate()
    }
}

impl Check for RetargetLink {
    fn check(&self) -> Result<()> {
        link_key(&self.key)?;
        validate_component_id(&self.target_id)?;
        if let Some(names) = &self.target_config {
            config_names(names)?;
        }
        Ok(())
    }
}

impl Check for DeleteLink {
    fn check(&self) -> Result<()> {
        link_key(&self.key)
    }
}

impl Check for PutConfig {
    fn check(&self) -> Result<()> {
        validate_config_name(&self.name)?;
        limits::check_config(&self.name, &self.values)
    }
}

impl Check for DeleteConfig {
    fn check(&self) -> Result<()> {
        validate_config_name(&self.name)
    }
}

impl Check for PutApp {
    fn check(&self) -> Result<()> {
        if self.source_name.len() > 1024 {
            return Err(Error::invalid(
                "source name",
                &self.source_name,
                "must be at most 1024 characters",
            ));
        }
        if self.manifest.len() > MAX_MANIFEST_BYTES {
            return Err(Error::invalid(
                "manifest",
                &format!("{} bytes", self.manifest.len()),
                format!("must be at most {MAX_MANIFEST_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

impl Check for DeployApp {
    fn check(&self) -> Result<()> {
        app_name(&self.name)?;
        version(&self.version)
    }
}

impl Check for AppName {
    fn check(&self) -> Result<()> {
        app_name(&self.name)
    }
}

impl Check for GetApp {
    fn check(&self) -> Result<()> {
        app_name(&self.name)?;
        version(&self.version)
    }
}

impl Check for ListApps {
    fn check(&self) -> Result<()> {
        Ok(())
    }
}
