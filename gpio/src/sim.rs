//! A simulated chip: lines that components request like real ones, whose inputs are driven
//! from outside (`trellis gpio set`), with edges reported as the kernel would (logical,
//! debounced, stamped with `CLOCK_MONOTONIC`).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::line::{
    monotonic_ns, Backend, ChipInfo, Direction, Edge, EdgeEvent, GpioError, LineHandle, LineInfo,
    LineSettings, EVENT_BUFFER, MAX_LINES,
};

struct Request {
    id: u64,
    consumer: String,
    settings: LineSettings,
    /// Physical level driven by the holder (outputs).
    out: bool,
    duty: Option<f32>,
    events: broadcast::Sender<EdgeEvent>,
    last_edge_ns: Option<u64>,
}

#[derive(Default)]
struct SimLine {
    /// Physical level of the simulated input (what `trellis gpio set` drives).
    pull: bool,
    request: Option<Request>,
}

impl SimLine {
    fn level(&self) -> bool {
        match &self.request {
            Some(r) if r.settings.direction == Direction::Output => r.out,
            _ => self.pull,
        }
    }
}

struct State {
    lines: Vec<SimLine>,
    next_id: u64,
}

pub struct SimChip {
    name: Arc<str>,
    state: Mutex<State>,
    me: Weak<SimChip>,
}

impl SimChip {
    pub fn new(name: &str, lines: u32) -> Result<Arc<Self>, GpioError> {
        crate::line::validate_chip_name(name).map_err(GpioError::Unsupported)?;
        if lines == 0 || lines > MAX_LINES {
            return Err(GpioError::Unsupported(format!(
                "a simulated chip has 1 to {MAX_LINES} lines"
            )));
        }
        Ok(Arc::new_cyclic(|me| Self {
            name: name.into(),
            state: Mutex::new(State {
                lines: (0..lines).map(|_| SimLine::default()).collect(),
                next_id: 1,
            }),
            me: me.clone(),
        }))
    }

    fn with_line<T>(
        &self,
        line: u32,
        f: impl FnOnce(&mut SimLine, &mut u64) -> Result<T, GpioError>,
    ) -> Result<T, GpioError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| GpioError::Hardware("simulated chip state lost".into()))?;
        let State { lines, next_id } = &mut *state;
        let l = lines.get_mut(line as usize).ok_or(GpioError::NoSuchLine {
            chip: self.name.to_string(),
            line,
        })?;
        f(l, next_id)
    }

    /// Runs `f` on the request `id` holds, if it still holds it.
    fn with_request<T>(
        &self,
        line: u32,
        id: u64,
        f: impl FnOnce(&mut Request, bool) -> Result<T, GpioError>,
    ) -> Result<T, GpioError> {
        self.with_line(line, |l, _| {
            let pull = l.pull;
            match &mut l.request {
                Some(r) if r.id == id => f(r, pull),
                _ => Err(GpioError::Released),
            }
        })
    }
}

impl Backend for SimChip {
    fn info(&self) -> Result<ChipInfo, GpioError> {
        let state = self
            .state
            .lock()
            .map_err(|_| GpioError::Hardware("simulated chip state lost".into()))?;
        Ok(ChipInfo {
            name: self.name.to_string(),
            label: "trellis-sim".into(),
            simulated: true,
            lines: state
                .lines
                .iter()
                .enumerate()
                .map(|(i, l)| LineInfo {
                    offset: i as u32,
                    name: String::new(),
                    direction: l
                        .request
                        .as_ref()
                        .map_or(Direction::Input, |r| r.settings.direction),
                    value: Some(l.level()),
                    used_by: l.request.as_ref().map(|r| r.consumer.clone()),
                })
                .collect(),
        })
    }

    fn request(
        &self,
        line: u32,
        settings: &LineSettings,
        consumer: &str,
    ) -> Result<Arc<dyn LineHandle>, GpioError> {
        let chip = self.name.to_string();
        let id = self.with_line(line, |l, next_id| {
            if let Some(r) = &l.request {
                return Err(GpioError::InUse {
                    chip,
                    line,
                    by: r.consumer.clone(),
                });
            }
            let id = *next_id;
            *next_id += 1;
            let (events, _) = broadcast::channel(EVENT_BUFFER);
            l.request = Some(Request {
                id,
                consumer: consumer.to_string(),
                settings: *settings,
                out: settings.initial != settings.active_low,
                duty: None,
                events,
                last_edge_ns: None,
            });
            Ok(id)
        })?;
        let me = self.me.upgrade().ok_or(GpioError::Released)?;
        Ok(Arc::new(SimHandle { chip: me, line, id }))
    }

    fn drive(&self, line: u32, high: bool) -> Result<(), GpioError> {
        let name = self.name.clone();
        self.with_line(line, |l, _| {
            let before = l.level();
            l.pull = high;
            let after = l.level();
            let Some(r) = &mut l.request else {
                return Ok(());
            };
            if before == after || r.settings.direction != Direction::Input || !r.settings.edges {
                return Ok(());
            }
            let now = monotonic_ns();
            let debounce = r.settings.debounce.unwrap_or(Duration::ZERO).as_nanos() as u64;
            if r.last_edge_ns
                .is_some_and(|last| now.saturating_sub(last) < debounce)
            {
                return Ok(());
            }
            r.last_edge_ns = Some(now);
            let active = after != r.settings.active_low;
            let _ = r.events.send(EdgeEvent {
                chip: name,
                line,
                edge: if active { Edge::Rising } else { Edge::Falling },
                timestamp_ns: now,
            });
            Ok(())
        })
    }

    fn level(&self, line: u32) -> Result<bool, GpioError> {
        self.with_line(line, |l, _| Ok(l.level()))
    }

    fn simulated(&self) -> bool {
        true
    }
}

struct SimHandle {
    chip: Arc<SimChip>,
    line: u32,
    id: u64,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.chip.with_line(self.line, |l, _| {
            if l.request.as_ref().is_some_and(|r| r.id == self.id) {
                l.request = None;
            }
            Ok(())
        });
    }
}

impl LineHandle for SimHandle {
    fn get(&self) -> Result<bool, GpioError> {
        self.chip.with_request(self.line, self.id, |r, pull| {
            let level = match r.settings.direction {
                Direction::Output => r.out,
                Direction::Input => pull,
            };
            Ok(level != r.settings.active_low)
        })
    }

    fn set(&self, active: bool) -> Result<(), GpioError> {
        let (chip, line) = (self.chip.name.to_string(), self.line);
        self.chip.with_request(self.line, self.id, |r, _| {
            if r.settings.direction != Direction::Output {
                return Err(GpioError::WrongDirection {
                    chip,
                    line,
                    what: "an output",
                });
            }
            r.out = active != r.settings.active_low;
            r.duty = None;
            Ok(())
        })
    }

    fn reconfigure(&self, settings: &LineSettings) -> Result<(), GpioError> {
        self.chip.with_request(self.line, self.id, |r, pull| {
            let was_output = r.settings.direction == Direction::Output;
            if settings.direction == Direction::Output && !was_output {
                r.out = settings.initial != settings.active_low;
            } else if !was_output {
                r.out = pull;
            }
            r.settings = *settings;
            Ok(())
        })
    }

    fn set_duty(&self, duty: f32) -> Result<(), GpioError> {
        let (chip, line) = (self.chip.name.to_string(), self.line);
        self.chip.with_request(self.line, self.id, |r, _| {
            if r.settings.direction != Direction::Output {
                return Err(GpioError::WrongDirection {
                    chip,
                    line,
                    what: "an output",
                });
            }
            let duty = duty.clamp(0.0, 1.0);
            r.duty = Some(duty);
            // The level the line shows is its mean state rounded: on above half.
            r.out = (duty >= 0.5) != r.settings.active_low;
            Ok(())
        })
    }

    fn events(&self) -> broadcast::Receiver<EdgeEvent> {
        self.chip
            .with_request(self.line, self.id, |r, _| Ok(r.events.subscribe()))
            .unwrap_or_else(|_| broadcast::channel(1).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inputs_are_driven_and_edges_reported_logically() {
        let chip = SimChip::new("sim0", 8).unwrap();
        let settings = LineSettings {
            edges: true,
            active_low: true,
            ..LineSettings::input()
        };
        let line = chip.request(0, &settings, "button").unwrap();
        let mut events = line.events();
        chip.drive(0, true).unwrap();
        let e = events.recv().await.unwrap();
        assert_eq!(
            (e.line, e.edge),
            (0, Edge::Falling),
            "active-low: high is inactive"
        );
        assert!(!line.get().unwrap());
        chip.drive(0, false).unwrap();
        assert_eq!(events.recv().await.unwrap().edge, Edge::Rising);
        chip.drive(0, false).unwrap();
        assert!(events.try_recv().is_err(), "no change, no edge");
    }

    #[test]
    fn outputs_show_their_level_and_lines_are_held_once() {
        let chip = SimChip::new("sim0", 2).unwrap();
        let led = chip
            .request(1, &LineSettings::output(false), "led")
            .unwrap();
        led.set(true).unwrap();
        assert!(chip.level(1).unwrap());
        assert!(matches!(
            chip.request(1, &LineSettings::input(), "other"),
            Err(GpioError::InUse { .. })
        ));
        assert!(matches!(
            chip.request(2, &LineSettings::input(), "x"),
            Err(GpioError::NoSuchLine { .. })
        ));
        drop(led);
        assert!(!chip.level(1).unwrap(), "released: back to its input level");
        chip.request(1, &LineSettings::input(), "other").unwrap();
    }

    #[test]
    fn debounce_drops_bounces() {
        let chip = SimChip::new("sim0", 1).unwrap();
        let settings = LineSettings {
            edges: true,
            debounce: Some(Duration::from_secs(60)),
            ..LineSettings::input()
        };
        let line = chip.request(0, &settings, "b").unwrap();
        let mut events = line.events();
        chip.drive(0, true).unwrap();
        chip.drive(0, false).unwrap();
        chip.drive(0, true).unwrap();
        assert!(events.try_recv().is_ok());
        assert!(
            events.try_recv().is_err(),
            "bounces within the period are dropped"
        );
    }
}
