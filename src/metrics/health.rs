//! The generator watching itself: how late a 10 ms ticker on the request runtime wakes
//! (its scheduling delay: what any request's timestamps may carry too), and how many
//! cores the process uses, second by second. A run near saturation says so, in its
//! result and on screen; it never changes the exit code.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustix::time::{ClockId, clock_gettime};

/// The ticker's period.
const TICK: Duration = Duration::from_millis(10);
/// A second whose CPU use reaches this share of the cores is near saturation.
const BUSY_SHARE: f64 = 0.8;
/// A second in which the machine's cores were this busy while llmload itself was not
/// is a shared machine (a server under test beside it, say): said, not blamed on the
/// client, whose own figures (its cores, its ticker) tell whether it was held up.
const MACHINE_BUSY: f64 = 0.9;
/// A ticker this late at p99 is near saturation: timestamps may be as late.
const LATE_P99: Duration = Duration::from_millis(10);

/// What the ticker has seen so far. Shared: the ticker writes, the aggregator and the
/// report read.
pub struct Health {
    cores: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Ticker lateness, µs.
    late: Histogram<u64>,
    started: Instant,
    cpu_at_start: Duration,
    /// The current second: when it began and the process's CPU time then.
    second: (Instant, Duration),
    /// The machine's (busy, total) CPU time then, where the system says (Linux).
    machine: Option<(u64, u64)>,
    /// Cores used in the busiest whole second, and in the last one.
    busiest: f64,
    last: f64,
    /// The machine's busy share in its busiest second.
    machine_busiest: Option<f64>,
}

/// The generator's health over a run, as the result records it.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthView {
    /// Cores llmload may use (its affinity and quota).
    pub cores: usize,
    /// Cores used on average since the start, and in the busiest whole second.
    pub cpu_mean: f64,
    pub cpu_busiest: f64,
    /// The machine's busy share (all processes) in its busiest whole second, where the
    /// system says it.
    pub machine_busiest: Option<f64>,
    /// How late the 10 ms ticker woke: p50, p99, max.
    pub late_p50: Duration,
    pub late_p99: Duration,
    pub late_max: Duration,
    /// Ticks seen.
    pub ticks: u64,
}

impl HealthView {
    /// A few words for the dashboard when near saturation, or on a shared machine.
    pub fn short(&self) -> Option<String> {
        if self.warning().is_none() {
            return self.shared().map(|_| format!("cores {:.0} % busy, not llmload", self.machine_busiest.unwrap_or(0.0) * 100.0));
        }
        Some(match self.busy() {
            true => format!("⚠ llmload busy {:.1}/{} cores", self.cpu_busiest, self.cores),
            false => format!("⚠ llmload late {:.0} ms p99", ms(self.late_p99)),
        })
    }

    fn busy(&self) -> bool {
        self.cpu_busiest >= BUSY_SHARE * self.cores as f64
    }

    /// One line when llmload itself was near saturation — its own cores near their
    /// limit, or its tasks woken late — else None. A busy machine alone is not that:
    /// see [`HealthView::shared`].
    pub fn warning(&self) -> Option<String> {
        let late = self.ticks >= 100 && self.late_p99 >= LATE_P99;
        let tail = "latencies above p99 may include client delay";
        if self.busy() {
            Some(format!("llmload used {:.1} of {} cores in its busiest second; {tail}", self.cpu_busiest, self.cores))
        } else if late {
            Some(format!("llmload's scheduler woke {:.1} ms late at p99; {tail}", ms(self.late_p99)))
        } else {
            None
        }
    }

    /// One line when other processes kept the machine's cores busy while llmload was
    /// not near its limit: the machine was shared, by how much, and the scheduling
    /// delay llmload's own timestamps carried, for the reader to judge.
    pub fn shared(&self) -> Option<String> {
        let m = self.machine_busiest.filter(|&m| m >= MACHINE_BUSY && self.warning().is_none())?;
        Some(format!(
            "the machine was shared: its cores were {:.0} % busy in the busiest second, llmload used {:.1} of {} (the rest was other processes: \
             a server under test on this machine, say); llmload's own tasks woke {:.1} ms late at p99, so its timings carry at most about that",
            m * 100.0,
            self.cpu_busiest,
            self.cores,
            ms(self.late_p99)
        ))
    }
}

/// The machine's (busy, total) CPU time in ticks, from `/proc/stat`; None elsewhere.
fn machine_now() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: idle and iowait were free.
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn cpu_now() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl Health {
    pub fn new() -> Arc<Health> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (now, cpu) = (Instant::now(), cpu_now());
        let late = Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds");
        let inner = Inner {
            late,
            started: now,
            cpu_at_start: cpu,
            second: (now, cpu),
            machine: machine_now(),
            busiest: 0.0,
            last: 0.0,
            machine_busiest: None,
        };
        Arc::new(Health { cores, inner: Mutex::new(inner) })
    }

    /// Ticks every 10 ms until dropped (the run aborts the task at its end), recording
    /// how late each tick woke and, each second, the cores used.
    pub async fn watch(self: Arc<Self>) {
        let mut next = Instant::now() + TICK;
        loop {
            tokio::time::sleep_until(next.into()).await;
            let now = Instant::now();
            self.tick(now, now.saturating_duration_since(next));
            // Late by more than a tick: the next one is a tick from now, not a burst.
            next = (next + TICK).max(now);
        }
    }

    fn tick(&self, now: Instant, late: Duration) {
        let mut i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        i.late.saturating_record(late.as_micros().max(1) as u64);
        let (at, cpu) = i.second;
        let span = now.saturating_duration_since(at);
        if span >= Duration::from_secs(1) {
            let cpu_now = cpu_now();
            i.last = cpu_now.saturating_sub(cpu).as_secs_f64() / span.as_secs_f64();
            i.busiest = i.busiest.max(i.last);
            i.second = (now, cpu_now);
            let machine = machine_now();
            if let (Some((b0, t0)), Some((b1, t1))) = (i.machine, machine)
                && t1 > t0
            {
                let share = (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64;
                i.machine_busiest = Some(i.machine_busiest.unwrap_or(0.0).max(share));
            }
            i.machine = machine;
        }
    }

    /// What was seen so far.
    pub fn view(&self) -> HealthView {
        let i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let q = |p: f64| Duration::from_micros(if i.late.is_empty() { 0 } else { i.late.value_at_quantile(p) });
        let secs = i.started.elapsed().as_secs_f64();
        let cpu_mean = if secs > 0.0 { cpu_now().saturating_sub(i.cpu_at_start).as_secs_f64() / secs } else { 0.0 };
        HealthView {
            cores: self.cores,
            cpu_mean,
            // A run shorter than a second has no whole second: its mean stands in.
            cpu_busiest: if i.busiest > 0.0 { i.busiest } else { cpu_mean },
            machine_busiest: i.machine_busiest,
            late_p50: q(0.5),
            late_p99: q(0.99),
            late_max: Duration::from_micros(if i.late.is_empty() { 0 } else { i.late.max() }),
            ticks: i.late.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_second_or_a_late_ticker_warns_and_a_quiet_run_does_not() {
        let quiet = HealthView {
            cores: 2,
            cpu_mean: 0.2,
            cpu_busiest: 0.5,
            machine_busiest: Some(0.6),
            late_p50: Duration::from_micros(100),
            late_p99: Duration::from_millis(1),
            late_max: Duration::from_millis(3),
            ticks: 500,
        };
        assert_eq!(quiet.warning(), None);
        let busy = HealthView { cpu_busiest: 1.9, ..quiet.clone() };
        assert_eq!(
            busy.warning().unwrap(),
            "llmload used 1.9 of 2 cores in its busiest second; latencies above p99 may include client delay"
        );
        // Other processes kept the cores busy, llmload was neither busy nor late: a
        // shared machine, said as such, not a warning about client delay.
        let crowded = HealthView { machine_busiest: Some(0.99), ..quiet.clone() };
        assert_eq!(crowded.warning(), None);
        assert_eq!(
            crowded.shared().unwrap(),
            "the machine was shared: its cores were 99 % busy in the busiest second, llmload used 0.5 of 2 (the rest was other processes: \
             a server under test on this machine, say); llmload's own tasks woke 1.0 ms late at p99, so its timings carry at most about that"
        );
        assert_eq!(crowded.short().unwrap(), "cores 99 % busy, not llmload");
        assert_eq!(quiet.shared(), None);
        // Busy itself on a busy machine: the warning, and no second line.
        let both = HealthView { cpu_busiest: 1.9, ..crowded.clone() };
        assert!(both.warning().is_some() && both.shared().is_none());
        assert_eq!(HealthView { machine_busiest: None, ..quiet.clone() }.warning(), None);
        let late = HealthView { late_p99: Duration::from_millis(12), ..quiet.clone() };
        assert!(late.warning().unwrap().starts_with("llmload's scheduler woke 12.0 ms late at p99"));
        // Too few ticks to judge lateness by.
        assert_eq!(HealthView { ticks: 20, ..late }.warning(), None);
    }

    #[test]
    fn ticks_are_recorded_and_a_second_of_work_is_seen() {
        let h = Health::new();
        let t0 = Instant::now();
        h.tick(t0, Duration::from_millis(2));
        // A second of busy work on this thread.
        while t0.elapsed() < Duration::from_millis(1100) {
            std::hint::black_box((0..1000u64).sum::<u64>());
        }
        h.tick(Instant::now(), Duration::ZERO);
        let v = h.view();
        assert_eq!(v.ticks, 2);
        assert!(v.late_max >= Duration::from_millis(2) && v.late_max < Duration::from_millis(3), "{:?}", v.late_max);
        assert!(v.cpu_busiest > 0.5, "a busy second read {} cores", v.cpu_busiest);
    }
}
