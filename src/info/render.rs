//! The text table `info` prints.

use std::fmt;

use super::{ComponentReport, ComponentStatus, FolderReport};

impl fmt::Display for FolderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.path.display())?;
        write!(f, "{}: {}", self.kind, self.class_name)?;
        if let Some(by) = &self.written_by {
            write!(f, " (written by {by})")?;
        }
        writeln!(f)?;
        writeln!(f)?;

        let header = [
            "component",
            "class",
            "files",
            "dtype",
            "parameters",
            "size",
            "status",
        ];
        let rows: Vec<[String; 7]> = self.components.iter().map(row).collect();
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        write_row(f, &header.map(String::from), &widths)?;
        for r in &rows {
            write_row(f, r, &widths)?;
        }
        writeln!(
            f,
            "\ntotal: {} parameters, {} on disk",
            human_count(self.total_parameters()),
            human_bytes(self.total_bytes())
        )?;

        if !self.problems.is_empty() {
            writeln!(f, "\nproblems:")?;
            for p in &self.problems {
                writeln!(f, "  - {p}")?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(f, "\nnotes:")?;
            for n in &self.notes {
                writeln!(f, "  - {n}")?;
            }
        }
        if self.problems.is_empty() {
            writeln!(f, "\nno problems found")?;
        }
        Ok(())
    }
}

fn row(c: &ComponentReport) -> [String; 7] {
    let (files, dtype, params, size) = match &c.weights {
        Some(w) => (
            if let [file] = c.files.as_slice() {
                // A file standing in for the folder's weights (a GGUF): name it.
                file.clone()
            } else if w.shards == 1 {
                "1 file".to_string()
            } else {
                format!("{} shards", w.shards)
            },
            w.dtypes
                .iter()
                .map(|(dtype, n)| {
                    if w.dtypes.len() == 1 {
                        dtype.to_string()
                    } else {
                        format!("{dtype}×{n}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
            human_count(w.parameters),
            human_bytes(w.bytes),
        ),
        None => (
            c.files.join(", "),
            String::new(),
            String::new(),
            String::new(),
        ),
    };
    let status = match &c.status {
        ComponentStatus::Ok => "ok".to_string(),
        ComponentStatus::External => "not bundled (--llama)".to_string(),
        ComponentStatus::Missing => "MISSING".to_string(),
        ComponentStatus::Broken(_) => "BROKEN (see below)".to_string(),
    };
    [
        c.name.clone(),
        c.class.clone(),
        files,
        dtype,
        params,
        size,
        status,
    ]
}

fn write_row(f: &mut fmt::Formatter<'_>, cells: &[String; 7], widths: &[usize; 7]) -> fmt::Result {
    let line: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(cell, &w)| format!("{cell:<w$}"))
        .collect();
    writeln!(f, "{}", line.join("  ").trim_end())
}

/// 17105733184 → "17.11 B", 2_800_000 → "2.80 M".
pub(crate) fn human_count(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} B", n / 1e9),
        n if n >= 1e6 => format!("{:.2} M", n / 1e6),
        n if n >= 1e3 => format!("{:.1} K", n / 1e3),
        n => format!("{n}"),
    }
}

/// Decimal units, as the Hugging Face hub shows file sizes.
pub(crate) fn human_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.2} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_like_the_model_cards() {
        assert_eq!(human_count(17_105_733_184), "17.11 B");
        assert_eq!(human_count(2_800_000), "2.80 M");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_bytes(34_210_000_000), "34.21 GB");
        assert_eq!(human_bytes(512), "512 B");
    }
}
