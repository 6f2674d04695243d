//! The budget of one render: at most [`RENDER_TIME`] and [`RENDER_OUTPUT`]
//! bytes, so no template (a loop nested over and over, a loop that writes
//! without end) can hold a thread or grow memory past them. Handlebars
//! cannot be interrupted, so the budget is checked from inside: at every
//! few writes of output and at the start of every pass of every
//! `{{#each}}` ([`instrument`]). Between two checks a render does at most
//! one pass over one array of the event, so a render past its budget stops
//! within moments of it.
//!
//! The budget lives in a thread-local set for the length of one render
//! ([`Budget::run`]): renders run on blocking threads, one at a time each.

use handlebars::template::{Template, TemplateElement, TemplateMapping};
use handlebars::{Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderErrorReason};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long one template may take to render.
pub const RENDER_TIME: Duration = Duration::from_secs(1);
/// How many bytes one template may write.
pub const RENDER_OUTPUT: usize = 1024 * 1024;

/// Why a render was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Time(Duration),
    Output(usize),
}

impl std::error::Error for Exceeded {}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Time(limit) => {
                write!(f, "render stopped: it ran longer than {}", crate::text::duration(*limit))
            }
            Exceeded::Output(limit) => write!(f, "render stopped: it wrote more than {limit} bytes"),
        }
    }
}

/// The limits of one render.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub time: Duration,
    pub output: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { time: RENDER_TIME, output: RENDER_OUTPUT }
    }
}

#[derive(Clone, Copy)]
struct Running {
    deadline: Instant,
    time: Duration,
    exceeded: Option<Exceeded>,
}

thread_local! {
    static RUNNING: Cell<Option<Running>> = const { Cell::new(None) };
}

impl Budget {
    /// Runs `render` (given a writer bounded to this budget) with the time
    /// budget checked from helpers; returns what it returned, what it
    /// wrote and, when the budget ran out, why. The budget of an enclosing
    /// render is restored afterwards.
    pub fn run<T>(self, render: impl FnOnce(&mut BoundedWriter) -> T) -> (T, Vec<u8>, Option<Exceeded>) {
        let running = Running { deadline: Instant::now() + self.time, time: self.time, exceeded: None };
        let outer = Restore(RUNNING.with(|r| r.replace(Some(running))));
        let mut writer = BoundedWriter { bytes: Vec::new(), limit: self.output, writes: 0 };
        let result = render(&mut writer);
        let exceeded = RUNNING.with(|r| r.get()).and_then(|r| r.exceeded);
        drop(outer);
        (result, writer.bytes, exceeded)
    }
}

/// Puts the enclosing render's budget back, also when a render panics.
struct Restore(Option<Running>);

impl Drop for Restore {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(self.0));
    }
}

/// Fails once the current render's time is up (and from then on).
pub fn check() -> Result<(), Exceeded> {
    RUNNING.with(|cell| {
        let Some(mut running) = cell.get() else { return Ok(()) };
        if let Some(why) = running.exceeded {
            return Err(why);
        }
        if Instant::now() >= running.deadline {
            let why = Exceeded::Time(running.time);
            running.exceeded = Some(why);
            cell.set(Some(running));
            return Err(why);
        }
        Ok(())
    })
}

fn exceed(why: Exceeded) {
    RUNNING.with(|cell| {
        if let Some(mut running) = cell.get() {
            running.exceeded.get_or_insert(why);
            cell.set(Some(running));
        }
    });
}

/// Where a render writes: refuses to grow past the budget's output, and
/// checks the time every few writes.
pub struct BoundedWriter {
    bytes: Vec<u8>,
    limit: usize,
    writes: u32,
}

impl std::io::Write for BoundedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            exceed(Exceeded::Output(self.limit));
            return Err(std::io::Error::other(Exceeded::Output(self.limit).to_string()));
        }
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(64) {
            check().map_err(|why| std::io::Error::other(why.to_string()))?;
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The helper [`instrument`] calls at the start of every pass of a loop:
/// checks the budget, writes nothing.
pub const CHECK_HELPER: &str = "__raaft_relay_budget";

/// See [`CHECK_HELPER`].
pub struct CheckHelper;

impl HelperDef for CheckHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        _: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        _: &mut dyn Output,
    ) -> HelperResult {
        check().map_err(|why| RenderErrorReason::NestedError(Box::new(why)).into())
    }
}

/// Puts a call of [`CHECK_HELPER`] at the start of every `{{#each}}`
/// body of `template`, at any depth: Handlebars' own `each` offers no
/// other place to stop a loop.
pub fn instrument(template: &mut Template) {
    let check = Template::compile(&format!("{{{{{CHECK_HELPER}}}}}")).expect("the check tag compiles");
    instrument_with(template, &check.elements[0], &check.mapping[0]);
}

fn instrument_with(template: &mut Template, check: &TemplateElement, mapping: &TemplateMapping) {
    for element in &mut template.elements {
        match element {
            TemplateElement::HelperBlock(h) => {
                let each = h.name.as_name() == Some("each");
                if let Some(body) = h.template.as_mut() {
                    instrument_with(body, check, mapping);
                    if each {
                        let at = body.mapping.first().cloned().unwrap_or_else(|| mapping.clone());
                        body.elements.insert(0, check.clone());
                        if !body.mapping.is_empty() {
                            body.mapping.insert(0, at);
                        }
                    }
                }
                if let Some(inverse) = h.inverse.as_mut() {
                    instrument_with(inverse, check, mapping);
                }
            }
            TemplateElement::DecoratorBlock(d) | TemplateElement::PartialBlock(d) => {
                if let Some(body) = d.template.as_mut() {
                    instrument_with(body, check, mapping);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_writer_refuses_output_past_the_budget_and_says_so() {
        let budget = Budget { time: Duration::from_secs(5), output: 10 };
        let (result, _, exceeded) = budget.run(|w| {
            w.write_all(b"12345")?;
            w.write_all(b"678901")
        });
        assert!(result.is_err());
        assert_eq!(exceeded, Some(Exceeded::Output(10)));
    }

    #[test]
    fn time_runs_out_and_stays_out_and_budgets_nest() {
        let outer = Budget { time: Duration::from_secs(60), output: 10 };
        let ((), _, exceeded) = outer.run(|_| {
            let inner = Budget { time: Duration::ZERO, output: 10 };
            let ((), _, inner_exceeded) = inner.run(|_| {
                assert!(check().is_err());
                assert!(check().is_err(), "once out, always out");
            });
            assert_eq!(inner_exceeded, Some(Exceeded::Time(Duration::ZERO)));
            assert!(check().is_ok(), "the outer budget is back");
        });
        assert_eq!(exceeded, None);
        assert!(check().is_ok(), "outside any render nothing is checked");
    }
}
