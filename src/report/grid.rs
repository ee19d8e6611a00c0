//! Printed tables in the format asked for (`--format`): aligned columns for the
//! terminal, Markdown to paste into a PR, CSV for a spreadsheet.

use unicode_width::UnicodeWidthStr;

/// How printed tables are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for the terminal and CI logs.
    #[default]
    Table,
    /// A GitHub-flavoured Markdown table, to paste into a PR.
    Markdown,
    /// Comma-separated values with a header row, for a spreadsheet.
    Csv,
}

/// Four significant digits, without a trailing ".0".
pub fn fig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// `rows` (the first is the header) in `format`.
pub fn grid(rows: &[Vec<String>], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Table => {
            let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].width()).max().unwrap_or(0)).collect();
            for row in rows {
                let cells: Vec<String> = row
                    .iter()
                    .enumerate()
                    .map(|(c, cell)| {
                        let pad = " ".repeat(widths[c] - cell.width());
                        if c == 0 { format!("{cell}{pad}") } else { format!("{pad}{cell}") }
                    })
                    .collect();
                out.push_str(cells.join("  ").trim_end());
                out.push('\n');
            }
        }
        Format::Markdown => {
            for (i, row) in rows.iter().enumerate() {
                out.push_str(&format!("| {} |\n", row.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | ")));
                if i == 0 {
                    out.push_str(&format!("|{}\n", ["---|"].repeat(row.len()).concat()));
                }
            }
        }
        Format::Csv => {
            for row in rows {
                let cells: Vec<String> = row
                    .iter()
                    .map(|c| if c.contains([',', '"', '\n']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() })
                    .collect();
                out.push_str(&cells.join(","));
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_keep_four_digits() {
        assert_eq!(
            (fig(123.456), fig(0.012345), fig(98765.4), fig(110.0)),
            ("123.5".into(), "0.01235".into(), "98765".into(), "110".into())
        );
    }

    #[test]
    fn each_format() {
        let rows = vec![vec!["a".to_string(), "b|c".to_string()], vec!["x,y".to_string(), "1".to_string()]];
        assert_eq!(grid(&rows, Format::Markdown), "| a | b\\|c |\n|---|---|\n| x,y | 1 |\n");
        assert_eq!(grid(&rows, Format::Csv), "a,b|c\n\"x,y\",1\n");
        assert_eq!(grid(&rows, Format::Table), "a    b|c\nx,y    1\n");
    }
}
