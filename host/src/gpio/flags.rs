//! The `--gpio-sim NAME=LINES` flag of `trellis-host`.

/// Parses `--gpio-sim NAME=LINES`.
pub fn parse_gpio_sim(value: &str) -> anyhow::Result<(String, u32)> {
    let (name, lines) = value
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--gpio-sim {value}: expected NAME=LINES, e.g. sim0=8"))?;
    trellis_gpio::validate_chip_name(name)
        .map_err(|e| anyhow::anyhow!("--gpio-sim {value}: {e}"))?;
    let lines: u32 = lines
        .parse()
        .ok()
        .filter(|n| (1..=trellis_gpio::MAX_LINES).contains(n))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--gpio-sim {value}: LINES must be 1 to {}",
                trellis_gpio::MAX_LINES
            )
        })?;
    Ok((name.to_string(), lines))
}

#[cfg(test)]
mod tests {
    use super::parse_gpio_sim;

    #[test]
    fn gpio_sim_flags_parse_and_garbage_is_refused() {
        assert_eq!(parse_gpio_sim("sim0=8").unwrap(), ("sim0".to_string(), 8));
        for bad in [
            "sim0",
            "sim0=0",
            "sim0=99999",
            "sim0=x",
            "../dev=8",
            "=8",
            "a b=2",
        ] {
            let err = parse_gpio_sim(bad).unwrap_err().to_string();
            assert!(err.starts_with("--gpio-sim"), "{bad}: {err}");
        }
    }
}
