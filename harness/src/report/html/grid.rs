//! The grid: one row per firmware build (package and descriptor), one column per QEMU version
//! and confidential-guest mode, and in each of its cells one mark per check and variant.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::text;
use crate::discover::qemu::Version;
use crate::matrix::{Check, Confidential};
use crate::report::explain::guest_words;
use crate::report::record::CellRecord;

/// A firmware build: a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The package and version (`ovmf 2022.11-6+deb12u2`), and the tree's label from the id
    /// (`@2022.11-6+deb12u2`) where the package does not name it.
    pub package: String,
    pub descriptor: String,
}

/// A QEMU version and a confidential-guest mode: a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Column {
    pub qemu: Version,
    pub mode: Confidential,
}

/// The grid's axes, and the cells (indices into the report's cells) of each of its cells.
#[derive(Debug)]
pub struct Grid {
    /// In the order of the report: grouped by package, each package's descriptors in the
    /// order they first come.
    pub builds: Vec<Build>,
    /// By QEMU version, then mode in [`Confidential::ALL`] order.
    pub columns: Vec<Column>,
    /// `(build, column)` -> the cells, by check ([`Check::ALL`] order), then report order.
    pub marks: BTreeMap<(usize, usize), Vec<usize>>,
}

/// The cell's confidential-guest mode: its id's third part (`sev-es`), or `sev-on`/`sev-off`
/// from its `sev` field where the id has no mode (ids of tests and older reports).
pub fn mode(cell: &CellRecord) -> Confidential {
    cell.id
        .split('/')
        .nth(2)
        .and_then(|m| m.parse().ok())
        .unwrap_or(if cell.sev {
            Confidential::Sev
        } else {
            Confidential::Off
        })
}

/// The cell's build (its row).
pub fn build(cell: &CellRecord) -> Build {
    let label = cell
        .id
        .split('/')
        .next()
        .and_then(|first| first.split_once('@'))
        .map(|(_, label)| label);
    let package = match (cell.firmware.package.as_deref(), label) {
        // `ovmf 2022.11-6+deb12u2` names the tree `@2022.11-6+deb12u2`.
        (Some(p), Some(l)) if p != l && p.rsplit(' ').next() != Some(l) => format!("{p} @{l}"),
        (Some(p), _) => p.to_string(),
        (None, Some(l)) => format!("@{l}"),
        (None, None) => "package unknown".into(),
    };
    Build {
        package,
        descriptor: cell.descriptor.clone(),
    }
}

impl Grid {
    pub fn new(cells: &[CellRecord]) -> Grid {
        let mut packages: Vec<String> = Vec::new();
        for c in cells {
            let p = build(c).package;
            if !packages.contains(&p) {
                packages.push(p);
            }
        }
        let mut builds: Vec<Build> = Vec::new();
        for p in &packages {
            for c in cells {
                let b = build(c);
                if &b.package == p && !builds.contains(&b) {
                    builds.push(b);
                }
            }
        }
        let mut columns: Vec<Column> = cells
            .iter()
            .map(|c| Column {
                qemu: c.qemu_version,
                mode: mode(c),
            })
            .collect();
        columns.sort();
        columns.dedup();
        let mut marks: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (i, c) in cells.iter().enumerate() {
            let b = build(c);
            let row = builds.iter().position(|x| *x == b).unwrap_or_default();
            let column = Column {
                qemu: c.qemu_version,
                mode: mode(c),
            };
            let col = columns.binary_search(&column).unwrap_or_default();
            marks.entry((row, col)).or_default().push(i);
        }
        for list in marks.values_mut() {
            list.sort_by_key(|i| check_rank(cells[*i].check));
        }
        Grid {
            builds,
            columns,
            marks,
        }
    }
}

fn check_rank(check: Check) -> usize {
    Check::ALL
        .iter()
        .position(|c| *c == check)
        .unwrap_or(usize::MAX)
}

/// The checks the cells have, in [`Check::ALL`] order.
pub fn checks(cells: &[CellRecord]) -> Vec<Check> {
    Check::ALL
        .iter()
        .copied()
        .filter(|check| cells.iter().any(|c| c.check == *check))
        .collect()
}

/// A check's initials: `kb` for `kernel-boot`.
pub fn abbreviation(check: Check) -> String {
    check
        .as_str()
        .split('-')
        .filter_map(|w| w.chars().next())
        .collect()
}

/// The grid as a `<table id="grid">`.
pub fn render(o: &mut String, cells: &[CellRecord]) {
    let grid = Grid::new(cells);
    if cells.is_empty() {
        o.push_str("<p id=\"grid\">This report has no cells.</p>\n");
        return;
    }
    o.push_str(
        "<table id=\"grid\">\n<thead>\n<tr><th rowspan=\"2\" class=\"corner\">firmware build\
         </th><th rowspan=\"2\" class=\"corner\">descriptor</th>",
    );
    let mut by_qemu: Vec<(Version, usize)> = Vec::new();
    for c in &grid.columns {
        match by_qemu.last_mut() {
            Some((q, n)) if *q == c.qemu => *n += 1,
            _ => by_qemu.push((c.qemu, 1)),
        }
    }
    for (qemu, n) in &by_qemu {
        let _ = write!(
            o,
            "<th colspan=\"{n}\" class=\"qemu\" data-qemu=\"{qemu}\">QEMU {qemu}</th>"
        );
    }
    o.push_str("</tr>\n<tr>");
    for c in &grid.columns {
        let _ = write!(
            o,
            "<th class=\"mode\" data-qemu=\"{}\" data-mode=\"{}\">{}</th>",
            c.qemu,
            c.mode.as_str(),
            guest_words(c.mode)
        );
    }
    o.push_str("</tr>\n</thead>\n<tbody>\n");
    for (r, b) in grid.builds.iter().enumerate() {
        let _ = write!(
            o,
            "<tr data-package=\"{0}\" data-descriptor=\"{1}\">",
            text(&b.package),
            text(&b.descriptor)
        );
        let first = r == 0 || grid.builds[r - 1].package != b.package;
        if first {
            let span = grid.builds[r..]
                .iter()
                .take_while(|x| x.package == b.package)
                .count();
            let _ = write!(
                o,
                "<th class=\"package\" rowspan=\"{span}\">{}</th>",
                text(&b.package)
            );
        }
        let _ = write!(o, "<th class=\"descriptor\">{}</th>", text(&b.descriptor));
        for (col, c) in grid.columns.iter().enumerate() {
            let _ = write!(
                o,
                "<td data-qemu=\"{}\" data-mode=\"{}\">",
                c.qemu,
                c.mode.as_str()
            );
            if let Some(list) = grid.marks.get(&(r, col)) {
                marks(o, cells, list);
            }
            o.push_str("</td>");
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody>\n</table>\n");
}

/// The marks of one grid cell, a group per check.
fn marks(o: &mut String, cells: &[CellRecord], list: &[usize]) {
    let mut open: Option<Check> = None;
    for &i in list {
        let c = &cells[i];
        if open != Some(c.check) {
            if open.is_some() {
                o.push_str("</span>");
            }
            let _ = write!(
                o,
                "<span class=\"group\" data-check=\"{0}\"><abbr title=\"{0}\">{1}</abbr>",
                c.check.as_str(),
                abbreviation(c.check)
            );
            open = Some(c.check);
        }
        let deviation = c
            .deviation
            .as_ref()
            .map(|d| format!(" ({})", d.id))
            .unwrap_or_default();
        let _ = write!(
            o,
            "<button type=\"button\" class=\"mark\" data-i=\"{i}\" data-verdict=\"{v}\" \
             data-check=\"{check}\" data-id=\"{id}\" title=\"{id}: {v}{dev}\"></button>",
            v = c.verdict.as_str(),
            check = c.check.as_str(),
            id = text(&c.id),
            dev = text(&deviation),
        );
    }
    if open.is_some() {
        o.push_str("</span>");
    }
}
