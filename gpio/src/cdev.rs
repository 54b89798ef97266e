//! The Linux GPIO character device (uAPI v2) through `gpiocdev`: `/dev/gpiochipN`. Line
//! requests are the kernel's, so another process holding a line is `InUse` and a line this
//! host holds shows as used to `gpioinfo`. Edge events are read on a thread per watched
//! line (blocking reads with a short timeout, never on an async runtime thread), stamped by
//! the kernel with `CLOCK_MONOTONIC`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gpiocdev::line::{Bias as CBias, EdgeDetection, EdgeKind, Value};
use gpiocdev::request::{Config, Request};
use tokio::sync::broadcast;

use crate::line::{
    Backend, Bias, ChipInfo, Direction, Edge, EdgeEvent, GpioError, LineHandle, LineInfo,
    LineSettings, EVENT_BUFFER,
};

/// How often an edge thread looks at whether its line was released.
const EVENT_POLL: Duration = Duration::from_millis(100);
const EBUSY: i32 = 16;

pub struct CdevChip {
    name: Arc<str>,
    path: PathBuf,
}

/// The errno behind a gpiocdev error, if it has one.
fn errno(e: &gpiocdev::Error) -> Option<i32> {
    match e {
        gpiocdev::Error::Uapi(_, gpiocdev_uapi::Error::Os(n)) | gpiocdev::Error::Os(n) => Some(n.0),
        _ => None,
    }
}

impl CdevChip {
    /// A character device, e.g. `/dev/gpiochip0` (named `gpiochip0`).
    pub fn open(path: &Path) -> Result<Self, GpioError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| GpioError::NoSuchChip(path.display().to_string()))?;
        gpiocdev::chip::is_chip(path).map_err(|_| GpioError::NoSuchChip(name.to_string()))?;
        Ok(Self {
            name: name.into(),
            path: path.to_path_buf(),
        })
    }

    fn error(&self, line: u32, e: gpiocdev::Error) -> GpioError {
        match errno(&e) {
            Some(EBUSY) => GpioError::InUse {
                chip: self.name.to_string(),
                line,
                by: "another process".into(),
            },
            Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) => {
                GpioError::NoSuchChip(self.name.to_string())
            }
            Some(libc::EINVAL) => GpioError::Unsupported(format!(
                "{}:{line}: the kernel refused the line settings",
                self.name
            )),
            _ => GpioError::Hardware(format!("{}:{line}: {e}", self.name)),
        }
    }

    fn config(&self, line: u32, s: &LineSettings) -> Config {
        let mut c = Config::default();
        c.on_chip(&self.path).with_line(line);
        match s.direction {
            Direction::Input => {
                c.as_input();
                c.with_edge_detection(s.edges.then_some(EdgeDetection::BothEdges));
                if let Some(d) = s.debounce {
                    c.with_debounce_period(d);
                }
            }
            Direction::Output => {
                c.as_output(if s.initial {
                    Value::Active
                } else {
                    Value::Inactive
                });
            }
        }
        if s.active_low {
            c.as_active_low();
        } else {
            c.as_active_high();
        }
        c.with_bias(s.bias.map(|b| match b {
            Bias::PullUp => CBias::PullUp,
            Bias::PullDown => CBias::PullDown,
        }));
        c
    }
}

impl Backend for CdevChip {
    fn info(&self) -> Result<ChipInfo, GpioError> {
        let chip = gpiocdev::Chip::from_path(&self.path)
            .map_err(|_| GpioError::NoSuchChip(self.name.to_string()))?;
        let info = chip.info().map_err(|e| self.error(0, e))?;
        let mut lines = Vec::with_capacity(info.num_lines as usize);
        for offset in 0..info.num_lines.min(crate::line::MAX_LINES) {
            let l = chip.line_info(offset).map_err(|e| self.error(offset, e))?;
            lines.push(LineInfo {
                offset,
                name: l.name,
                direction: match l.direction {
                    gpiocdev::line::Direction::Output => Direction::Output,
                    gpiocdev::line::Direction::Input => Direction::Input,
                },
                value: None,
                used_by: l.used.then(|| {
                    if l.consumer.is_empty() {
                        "the kernel".to_string()
                    } else {
                        l.consumer
                    }
                }),
            });
        }
        Ok(ChipInfo {
            name: self.name.to_string(),
            label: info.label,
            simulated: false,
            lines,
        })
    }

    fn request(
        &self,
        line: u32,
        settings: &LineSettings,
        consumer: &str,
    ) -> Result<Arc<dyn LineHandle>, GpioError> {
        let request = Request::from_config(self.config(line, settings))
            .with_consumer(consumer)
            .request()
            .map_err(|e| self.error(line, e))?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let handle = Arc::new(CdevLine {
            chip: self.name.clone(),
            path: self.path.clone(),
            line,
            request: Arc::new(request),
            settings: Mutex::new(*settings),
            events,
            released: Arc::new(AtomicBool::new(false)),
            watching: AtomicBool::new(false),
        });
        if settings.edges {
            handle.watch();
        }
        Ok(handle)
    }

    fn drive(&self, line: u32, _high: bool) -> Result<(), GpioError> {
        Err(GpioError::Unsupported(format!(
            "{}:{line} is a real line: only simulated chips' inputs can be driven",
            self.name
        )))
    }

    fn level(&self, line: u32) -> Result<bool, GpioError> {
        // As it is: reading must not turn an output into an input.
        let mut c = Config::default();
        c.on_chip(&self.path).with_line(line).as_is();
        let r = Request::from_config(c)
            .with_consumer("trellis-peek")
            .request()
            .map_err(|e| self.error(line, e))?;
        let v = r.value(line).map_err(|e| self.error(line, e))?;
        Ok(v == Value::Active)
    }

    fn simulated(&self) -> bool {
        false
    }
}

struct CdevLine {
    chip: Arc<str>,
    path: PathBuf,
    line: u32,
    request: Arc<Request>,
    settings: Mutex<LineSettings>,
    events: broadcast::Sender<EdgeEvent>,
    released: Arc<AtomicBool>,
    /// The edge thread runs from the first request for edges until release.
    watching: AtomicBool,
}

impl Drop for CdevLine {
    fn drop(&mut self) {
        self.released.store(true, Ordering::Release);
    }
}

impl CdevLine {
    fn error(&self, e: gpiocdev::Error) -> GpioError {
        CdevChip {
            name: self.chip.clone(),
            path: self.path.clone(),
        }
        .error(self.line, e)
    }

    /// Reads the line's edge events on a thread until it is released.
    fn watch(&self) {
        if self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let (request, events, released) = (
            self.request.clone(),
            self.events.clone(),
            self.released.clone(),
        );
        let (chip, line) = (self.chip.clone(), self.line);
        let spawned = std::thread::Builder::new()
            .name(format!("gpio-{chip}-{line}"))
            .spawn(move || {
                while !released.load(Ordering::Acquire) {
                    match request.wait_edge_event(EVENT_POLL) {
                        Ok(false) => continue,
                        Ok(true) => match request.read_edge_event() {
                            Ok(e) => {
                                let _ = events.send(EdgeEvent {
                                    chip: chip.clone(),
                                    line,
                                    edge: match e.kind {
                                        EdgeKind::Rising => Edge::Rising,
                                        EdgeKind::Falling => Edge::Falling,
                                    },
                                    timestamp_ns: e.timestamp_ns,
                                });
                            }
                            Err(e) => {
                                tracing::warn!(chip = %chip, line, error = %e, "cannot read edge events; the watch ends");
                                return;
                            }
                        },
                        Err(e) => {
                            tracing::warn!(chip = %chip, line, error = %e, "cannot wait for edge events; the watch ends");
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(chip = %self.chip, line = self.line, error = %e, "cannot start the edge watch");
        }
    }
}

impl LineHandle for CdevLine {
    fn get(&self) -> Result<bool, GpioError> {
        let v = self.request.value(self.line).map_err(|e| self.error(e))?;
        Ok(v == Value::Active)
    }

    fn set(&self, active: bool) -> Result<(), GpioError> {
        let output = self
            .settings
            .lock()
            .map(|s| s.direction == Direction::Output)
            .unwrap_or(false);
        if !output {
            return Err(GpioError::WrongDirection {
                chip: self.chip.to_string(),
                line: self.line,
                what: "an output",
            });
        }
        let v = if active {
            Value::Active
        } else {
            Value::Inactive
        };
        self.request
            .set_value(self.line, v)
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    fn reconfigure(&self, settings: &LineSettings) -> Result<(), GpioError> {
        let chip = CdevChip {
            name: self.chip.clone(),
            path: self.path.clone(),
        };
        self.request
            .reconfigure(&chip.config(self.line, settings))
            .map_err(|e| self.error(e))?;
        if let Ok(mut s) = self.settings.lock() {
            *s = *settings;
        }
        if settings.edges {
            self.watch();
        }
        Ok(())
    }

    fn set_duty(&self, _duty: f32) -> Result<(), GpioError> {
        Err(GpioError::Unsupported(format!(
            "{}:{}: the GPIO character device has no PWM",
            self.chip, self.line
        )))
    }

    fn events(&self) -> broadcast::Receiver<EdgeEvent> {
        self.events.subscribe()
    }
}
