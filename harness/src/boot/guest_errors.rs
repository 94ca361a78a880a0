//! What QEMU logs of the guest's own mistakes (`-d guest_errors`, on QEMU's stderr): accesses
//! to hardware that QEMU rejected, such as
//! `Invalid access at addr 0x0, size 4, region 'acpi-cpu-hotplug', reason: invalid size (min:1
//! max:1)`.
//!
//! They are the one sign of life a release firmware gives when it stops before its console is
//! connected: such a build writes nothing to the debug console and nothing to the serial port
//! before the boot manager, but what it does to the hardware QEMU sees. A booting kernel makes
//! many (Linux probing a TPM that is not there: tens of thousands of lines in two seconds), so
//! they are kept as a summary, one entry per distinct line with its count, never line by line.

use std::time::Duration;

use regex::Regex;

/// How many distinct lines a summary keeps; the rest are only counted.
pub const MAX_DISTINCT: usize = 16;

/// One distinct line and how often QEMU logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestError {
    pub line: String,
    pub count: u64,
    /// When it was first and last read, from QEMU start.
    pub first_at: Duration,
    pub last_at: Duration,
}

/// Every guest error QEMU logged during one boot, summarized.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestErrors {
    /// How many lines in all.
    pub total: u64,
    /// The first [`MAX_DISTINCT`] distinct lines, in the order they first came.
    pub distinct: Vec<GuestError>,
    /// Lines that were none of those.
    pub uncounted: u64,
}

/// Whether a line of QEMU's stderr is one of its guest-error lines about a rejected memory or
/// I/O access (QEMU's `memory_region_access_valid` and the unassigned-access paths):
/// `Invalid read at addr 0xFED40000, size 1, region '(null)', reason: rejected`.
pub fn is_guest_error(line: &str) -> bool {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^Invalid (access|read|write) at addr 0x[0-9A-Fa-f]+, size [0-9]+, region '[^']*'(, reason: .*)?$")
            .expect("a valid pattern")
    })
    .is_match(line.trim_end())
}

impl GuestErrors {
    pub fn add(&mut self, line: &str, at: Duration) {
        let line = line.trim_end();
        self.total += 1;
        if let Some(e) = self.distinct.iter_mut().find(|e| e.line == line) {
            e.count += 1;
            e.last_at = at;
        } else if self.distinct.len() < MAX_DISTINCT {
            self.distinct.push(GuestError {
                line: line.to_string(),
                count: 1,
                first_at: at,
                last_at: at,
            });
        } else {
            self.uncounted += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The summary as text for `stderr.log`, or nothing when QEMU logged none.
    pub fn text(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        let mut text = format!(
            "[bootmatrix: QEMU logged {} guest error line(s) (-d guest_errors); each distinct \
             line once, with its count]\n",
            self.total
        );
        for e in &self.distinct {
            text.push_str(&format!(
                "{} [{} time(s), {:.3} s to {:.3} s]\n",
                e.line,
                e.count,
                e.first_at.as_secs_f64(),
                e.last_at.as_secs_f64()
            ));
        }
        if self.uncounted > 0 {
            text.push_str(&format!(
                "[bootmatrix: {} more line(s) beyond the first {MAX_DISTINCT} distinct ones]\n",
                self.uncounted
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUHP: &str = "Invalid access at addr 0x0, size 4, region 'acpi-cpu-hotplug', reason: invalid size (min:1 max:1)";

    #[rstest::rstest]
    #[case::qemu_5_2_access(CPUHP)]
    #[case::qemu_7_2_read(
        "Invalid read at addr 0xFED40000, size 1, region '(null)', reason: rejected"
    )]
    #[case::write("Invalid write at addr 0xFED40000, size 1, region '(null)', reason: rejected")]
    #[case::without_reason("Invalid access at addr 0x402, size 2, region 'debugcon'")]
    fn qemu_guest_error_lines_are_recognized(#[case] line: &str) {
        assert!(is_guest_error(line));
    }

    #[rstest::rstest]
    #[case::qemu_warning("qemu-system-x86_64: warning: host doesn't support requested feature")]
    #[case::cpu_reset("CPU Reset (CPU 0)")]
    #[case::quoted_in_a_sentence("the guest said: Invalid access at addr 0x0, size 4, region 'x'")]
    #[case::no_address("Invalid access at addr zero, size 4, region 'x'")]
    fn other_stderr_lines_are_not(#[case] line: &str) {
        assert!(!is_guest_error(line));
    }

    #[test]
    fn a_summary_counts_each_distinct_line_and_keeps_its_first_and_last_time() {
        let mut g = GuestErrors::default();
        for i in 0..6 {
            g.add(CPUHP, Duration::from_millis(300 + i));
        }
        g.add(
            "Invalid read at addr 0x1, size 1, region 'x'\n",
            Duration::from_secs(2),
        );
        assert_eq!(g.total, 7);
        assert_eq!(g.distinct.len(), 2);
        assert_eq!(g.distinct[0].count, 6);
        assert_eq!(g.distinct[0].first_at, Duration::from_millis(300));
        assert_eq!(g.distinct[0].last_at, Duration::from_millis(305));
        assert_eq!(
            g.distinct[1].line,
            "Invalid read at addr 0x1, size 1, region 'x'"
        );
        let text = g.text();
        assert!(text.contains("logged 7 guest error line(s)"), "{text}");
        assert!(
            text.contains(&format!("{CPUHP} [6 time(s), 0.300 s to 0.305 s]")),
            "{text}"
        );
    }

    #[test]
    fn a_flood_of_distinct_lines_is_bounded() {
        let mut g = GuestErrors::default();
        for i in 0..10_000u64 {
            g.add(
                &format!("Invalid read at addr 0x{i:X}, size 1, region 'x'"),
                Duration::ZERO,
            );
        }
        assert_eq!(g.total, 10_000);
        assert_eq!(g.distinct.len(), MAX_DISTINCT);
        assert_eq!(g.uncounted, 10_000 - MAX_DISTINCT as u64);
        assert!(g.text().lines().count() <= MAX_DISTINCT + 2);
        assert!(GuestErrors::default().text().is_empty());
    }
}
