//! Figures, the table and the JSON document.
//!
//! Every figure is a [`Summary`] of several runs: the median, and the min
//! and max around it. A [`Row`] pairs our figure with the baseline measured
//! in the same run, and judges the median against the target.
//! Targets are reported, never enforced.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

/// What a figure counts, which decides how it is printed and which way is
/// better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Throughput in MB/s (10^6 bytes per second); higher is better.
    MegabytesPerSecond,
    /// A latency or duration in microseconds; lower is better.
    Micros,
    /// Memory in KiB; lower is better.
    Kibibytes,
    /// CPU time in milliseconds; lower is better.
    CpuMillis,
}

impl Unit {
    /// What the table's measure column says; time and memory values
    /// carry their own unit (`µs`, `ms`, `KiB`, `MiB`).
    fn hint(self) -> &'static str {
        match self {
            Unit::MegabytesPerSecond => "MB/s",
            Unit::Micros => "time",
            Unit::Kibibytes => "RSS",
            Unit::CpuMillis => "CPU ms",
        }
    }

    /// The unit of the JSON figures.
    fn symbol(self) -> &'static str {
        match self {
            Unit::MegabytesPerSecond => "MB/s",
            Unit::Micros => "µs",
            Unit::Kibibytes => "KiB",
            Unit::CpuMillis => "CPU ms",
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Unit::MegabytesPerSecond => format!("{value:.0}"),
            Unit::Micros if value >= 1_000_000.0 => format!("{:.2}s", value / 1e6),
            Unit::Micros if value >= 10_000.0 => format!("{:.1}ms", value / 1000.0),
            Unit::Micros if value >= 100.0 => format!("{value:.0}µs"),
            Unit::Micros => format!("{value:.1}µs"),
            Unit::Kibibytes if value >= 1024.0 => format!("{:.1}MiB", value / 1024.0),
            Unit::Kibibytes => format!("{value:.1}KiB"),
            Unit::CpuMillis => format!("{value:.0}"),
        }
    }
}

/// Median, min and max of one figure over several runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Summary {
    /// Summarises one value per run. Panics on an empty slice: every
    /// workload runs at least once.
    pub fn of(values: &[f64]) -> Summary {
        assert!(!values.is_empty(), "a figure needs at least one run");
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Summary {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            runs: n,
        }
    }

    fn format(&self, unit: Unit) -> String {
        if self.runs == 1 {
            unit.format(self.median)
        } else {
            format!(
                "{} [{}–{}]",
                unit.format(self.median),
                unit.format(self.min),
                unit.format(self.max)
            )
        }
    }

    fn to_json(self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max, "runs": self.runs})
    }
}

/// Latency percentiles of one run's samples.
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
}

/// Nearest-rank percentiles of `samples`, in microseconds.
pub fn percentiles(samples: &[Duration]) -> Percentiles {
    assert!(!samples.is_empty(), "percentiles of no samples");
    let mut micros: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    micros.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let index = ((p / 100.0) * micros.len() as f64).ceil() as usize;
        micros[index.clamp(1, micros.len()) - 1]
    };
    Percentiles {
        p50: rank(50.0),
        p99: rank(99.0),
    }
}

/// The goal for a row, judged on medians.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// ours / baseline at least this (throughput).
    RatioAtLeast(f64),
    /// ours / baseline at most this (latency).
    RatioAtMost(f64),
    /// Our figure at most this, in the row's unit.
    AtMost(f64),
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub workload: &'static str,
    /// Which path and which statistic, e.g. `websocket` or `p99 pinned`.
    pub measure: String,
    pub unit: Unit,
    pub ours: Summary,
    /// The baseline's name and figure.
    pub baseline: Option<(String, Summary)>,
    pub target: Option<Target>,
    /// Why the row could not be measured (a peer that is not installed):
    /// it is printed with this reason instead of figures.
    pub skipped: Option<String>,
}

impl Row {
    pub fn new(
        workload: &'static str,
        measure: impl Into<String>,
        unit: Unit,
        ours: Summary,
    ) -> Row {
        Row {
            workload,
            measure: measure.into(),
            unit,
            ours,
            baseline: None,
            target: None,
            skipped: None,
        }
    }

    /// A row that could not be measured, and why.
    pub fn skipped(
        workload: &'static str,
        measure: impl Into<String>,
        unit: Unit,
        reason: impl Into<String>,
    ) -> Row {
        let mut row = Row::new(workload, measure, unit, Summary::of(&[0.0]));
        row.skipped = Some(reason.into());
        row
    }

    pub fn baseline(mut self, name: impl Into<String>, figure: Summary) -> Row {
        self.baseline = Some((name.into(), figure));
        self
    }

    pub fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self
    }

    /// ours / baseline, on medians.
    pub fn ratio(&self) -> Option<f64> {
        if self.skipped.is_some() {
            return None;
        }
        let (_, baseline) = self.baseline.as_ref()?;
        (baseline.median > 0.0).then(|| self.ours.median / baseline.median)
    }

    pub fn target_met(&self) -> Option<bool> {
        if self.skipped.is_some() {
            return None;
        }
        Some(match self.target? {
            Target::RatioAtLeast(goal) => self.ratio()? >= goal,
            Target::RatioAtMost(goal) => self.ratio()? <= goal,
            Target::AtMost(goal) => self.ours.median <= goal,
        })
    }

    fn target_text(&self) -> String {
        match self.target {
            None => "—".into(),
            Some(Target::RatioAtLeast(goal)) => format!("≥ {goal}×"),
            Some(Target::RatioAtMost(goal)) => format!("≤ {goal}×"),
            Some(Target::AtMost(goal)) => format!("≤ {}", self.unit.format(goal)),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "workload": self.workload,
            "measure": self.measure,
            "unit": self.unit.symbol(),
            "ours": if self.skipped.is_some() { Value::Null } else { self.ours.to_json() },
            "skipped": self.skipped,
            "baseline": self.baseline.as_ref().map(|(name, figure)| {
                json!({"name": name, "figure": figure.to_json()})
            }),
            "ratio": self.ratio(),
            "target": self.target_text(),
            "targetMet": self.target_met(),
        })
    }
}

/// Renders the rows as a plain-text table (also valid Markdown).
pub fn table(rows: &[Row]) -> String {
    let header = [
        "workload", "measure", "ours", "baseline", "ratio", "target", "met",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            [
                row.workload.to_string(),
                format!("{} ({})", row.measure, row.unit.hint()),
                match &row.skipped {
                    Some(reason) => format!("skipped: {reason}"),
                    None => row.ours.format(row.unit),
                },
                row.baseline
                    .as_ref()
                    .map(|(name, figure)| format!("{name}: {}", figure.format(row.unit)))
                    .unwrap_or_else(|| "—".into()),
                row.ratio()
                    .map(|r| format!("{r:.2}×"))
                    .unwrap_or_else(|| "—".into()),
                row.target_text(),
                match row.target_met() {
                    Some(true) => "yes".into(),
                    Some(false) => "MISSED".into(),
                    None => "—".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        out.push('|');
        for (cell, width) in cells.iter().zip(widths) {
            let pad = width - cell.chars().count();
            let _ = write!(out, " {cell}{} |", " ".repeat(pad));
        }
        out.push('\n');
    };
    line(&mut out, &header.map(String::from));
    out.push('|');
    for width in widths {
        let _ = write!(out, "{}|", "-".repeat(width + 2));
    }
    out.push('\n');
    for row in &cells {
        line(&mut out, row);
    }
    out
}

/// The JSON document: how the run was made, then one object per row.
pub fn document(rows: &[Row], context: Value) -> Value {
    json!({
        "context": context,
        "results": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_takes_the_median_of_odd_and_even_counts() {
        let odd = Summary::of(&[3.0, 1.0, 2.0]);
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let p = percentiles(&samples);
        assert_eq!((p.p50, p.p99), (50.0, 99.0));
        let one = percentiles(&[Duration::from_micros(7)]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
    }

    #[test]
    fn targets_are_judged_on_medians() {
        let row = Row::new("w", "m", Unit::Micros, Summary::of(&[30.0]))
            .baseline("raw", Summary::of(&[10.0]))
            .target(Target::RatioAtMost(3.0));
        assert_eq!(row.target_met(), Some(true));
        let row = Row::new("w", "m", Unit::MegabytesPerSecond, Summary::of(&[40.0]))
            .baseline("raw", Summary::of(&[100.0]))
            .target(Target::RatioAtLeast(0.5));
        assert_eq!(row.target_met(), Some(false));
        assert!(table(&[row]).contains("MISSED"));
    }

    #[test]
    fn a_skipped_row_says_why_and_judges_nothing() {
        let row = Row::skipped("w", "m", Unit::Micros, "websocketd not installed")
            .baseline("raw", Summary::of(&[10.0]))
            .target(Target::RatioAtMost(1.0));
        assert_eq!((row.ratio(), row.target_met()), (None, None));
        assert!(table(std::slice::from_ref(&row)).contains("skipped: websocketd not installed"));
        assert_eq!(row.to_json()["ours"], Value::Null);
    }
}
