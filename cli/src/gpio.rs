//! `trellis gpio list|get|set HOST`: a host's chips and lines; reading a line; driving a
//! simulated input.

use clap::Subcommand;

use crate::global::Global;
use crate::output::{self, Format};

#[derive(Subcommand)]
pub enum GpioCommand {
    /// A host's chips and lines: names, directions, values, holders.
    List { host: String },
    /// Print a line's level, `0` or `1`: `trellis gpio get HOST sim0:1`.
    Get {
        host: String,
        /// CHIP:LINE, e.g. `sim0:1` or `gpiochip0:17`.
        line: String,
    },
    /// Drive a simulated input line: `trellis gpio set HOST sim0:0 1`.
    Set {
        host: String,
        /// CHIP:LINE
        line: String,
        /// 0 or 1
        value: String,
    },
}

/// `sim0:3` → (`sim0`, 3).
fn chip_line(value: &str) -> anyhow::Result<(String, u32)> {
    let invalid = |why: &str| trellis_lattice::Error::invalid("line", value, why.to_string());
    let (chip, line) = value
        .rsplit_once(':')
        .ok_or_else(|| invalid("must be CHIP:LINE (e.g. sim0:0)"))?;
    let line: u32 = line
        .parse()
        .map_err(|_| invalid("the line must be a number"))?;
    trellis_lattice::gpio::validate_chip_name(chip)?;
    trellis_lattice::gpio::validate_line(line)?;
    Ok((chip.to_string(), line))
}

fn level(value: &str) -> anyhow::Result<bool> {
    match value {
        "0" | "low" => Ok(false),
        "1" | "high" => Ok(true),
        other => Err(trellis_lattice::Error::invalid("value", other, "must be 0 or 1").into()),
    }
}

pub async fn run(g: &Global, cmd: GpioCommand) -> anyhow::Result<()> {
    let client = g.client().await?;
    match cmd {
        GpioCommand::List { host } => {
            let id = client.resolve_host(&host).await?;
            let chips = client.gpio_list(&id).await?;
            if g.output == Format::Json {
                return output::print_json(&chips);
            }
            if chips.chips.is_empty() {
                println!("host {id} has no GPIO chips");
                return Ok(());
            }
            let mut t = output::table(&["chip", "line", "name", "direction", "value", "used by"]);
            for c in &chips.chips {
                let chip = if c.simulated {
                    format!("{} (simulated)", c.name)
                } else {
                    format!("{} ({})", c.name, c.label)
                };
                for l in &c.lines {
                    let dir = serde_json::to_value(l.direction)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    t.add_row(vec![
                        chip.clone(),
                        l.offset.to_string(),
                        l.name.clone(),
                        dir,
                        l.value.map(|v| v.to_string()).unwrap_or_default(),
                        l.used_by.clone().unwrap_or_default(),
                    ]);
                }
            }
            println!("{t}");
        }
        GpioCommand::Get { host, line } => {
            let (chip, line) = chip_line(&line)?;
            let id = client.resolve_host(&host).await?;
            let v = client.gpio_get(&id, &chip, line).await?;
            if g.output == Format::Json {
                return output::print_json(&v);
            }
            println!("{}", v.value);
        }
        GpioCommand::Set { host, line, value } => {
            let (chip, line) = chip_line(&line)?;
            let high = level(&value)?;
            let id = client.resolve_host(&host).await?;
            let v = client.gpio_set(&id, &chip, line, high).await?;
            if g.output == Format::Json {
                return output::print_json(&v);
            }
            println!("{}", v.value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_levels_parse() {
        assert_eq!(chip_line("sim0:3").unwrap(), ("sim0".to_string(), 3));
        assert!(chip_line("sim0").is_err());
        assert!(chip_line("sim0:x").is_err());
        assert!(chip_line("../x:1").is_err());
        assert!(chip_line("sim0:5000").is_err());
        assert!(level("1").unwrap() && !level("0").unwrap());
        assert!(level("2").is_err());
    }
}
