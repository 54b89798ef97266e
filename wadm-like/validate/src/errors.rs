//! Mistakes in a manifest, each with its location.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One mistake and where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Where: `spec.components[2].traits[0].properties.instances`; empty for the whole document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every mistake in one manifest; displays one per line as `{source}: {path}: {message}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ValidationErrors {
    /// The file name (or other name) the manifest was read from.
    pub source_name: String,
    pub errors: Vec<ValidationError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {e}", self.source_name)?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    pub fn new(source_name: &str, errors: Vec<ValidationError>) -> Self {
        Self {
            source_name: source_name.to_string(),
            errors,
        }
    }
}
