//! Which pins a component may use: `pins=button:sim0:0,led:sim0:1` in its config, a label
//! (what the component asks for), a chip and a line each.

use crate::line::{validate_chip_name, MAX_LINES};

/// Pins one component may hold at most.
pub const MAX_GRANTS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub label: String,
    pub chip: String,
    pub line: u32,
}

fn validate_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 64 {
        return Err(format!("pin label {label:?} must be 1 to 64 characters"));
    }
    if !label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "pin label {label:?} may hold only letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

/// Parses a `pins` value. Labels are unique, and so are chip lines.
pub fn parse_grants(value: &str) -> Result<Vec<Grant>, String> {
    let mut grants: Vec<Grant> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parts: Vec<&str> = item.split(':').collect();
        let [label, chip, line] = parts[..] else {
            return Err(format!("pin {item:?} is not LABEL:CHIP:LINE"));
        };
        validate_label(label)?;
        validate_chip_name(chip)?;
        let line: u32 = line
            .parse()
            .ok()
            .filter(|l| *l < MAX_LINES)
            .ok_or_else(|| format!("pin {item:?}: the line must be a number below {MAX_LINES}"))?;
        if grants.iter().any(|g| g.label == label) {
            return Err(format!("pin label {label:?} is granted twice"));
        }
        if grants.iter().any(|g| g.chip == chip && g.line == line) {
            return Err(format!("line {chip}:{line} is granted twice"));
        }
        grants.push(Grant {
            label: label.to_string(),
            chip: chip.to_string(),
            line,
        });
    }
    if grants.len() > MAX_GRANTS {
        return Err(format!("more than {MAX_GRANTS} pins granted"));
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_bad_ones_are_refused() {
        let g = parse_grants("button:sim0:0, led:sim0:1").unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(
            (g[1].label.as_str(), g[1].chip.as_str(), g[1].line),
            ("led", "sim0", 1)
        );
        assert_eq!(parse_grants("").unwrap(), vec![]);
        for bad in [
            "button",
            "button:sim0",
            "b:sim0:x",
            "b:sim0:99999",
            "b:../etc:0",
            "b c:sim0:0",
            "a:sim0:0,a:sim0:1",
            "a:sim0:0,b:sim0:0",
        ] {
            assert!(parse_grants(bad).is_err(), "{bad}");
        }
    }
}
