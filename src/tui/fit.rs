//! Figures sized for a panel: large counts abbreviated one way everywhere, and lines
//! that drop whole fields, least important first, rather than cut a figure.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::report::fmt_rate;

const SUFFIXES: [char; 6] = ['k', 'M', 'G', 'T', 'P', 'E'];

/// A count as the dashboard shows it: exact below 10 000; above, at most three
/// significant digits and a suffix for a power of 1000 (k, M, G, T, P, E), trailing
/// zeros dropped: 9999, 12.3k, 193k, 1.23M, 12.3M. Floored, never rounded up, so it
/// never claims more than happened (999 999 is 999k, not 1000k). At most 5 columns.
pub fn count(n: u64) -> String {
    if n < 10_000 {
        return n.to_string();
    }
    let (mut div, mut i) = (1000u64, 0);
    while n / div >= 1000 && i + 1 < SUFFIXES.len() {
        div *= 1000;
        i += 1;
    }
    let whole = n / div;
    let decimals = 3usize.saturating_sub(whole.to_string().len()) as u32;
    // u128: (n % div) × 100 overflows u64 near u64::MAX.
    let frac = (u128::from(n % div) * 10u128.pow(decimals) / u128::from(div)) as u64;
    let frac = format!("{frac:0w$}", w = decimals as usize);
    let frac = frac.trim_end_matches('0');
    let dot = if frac.is_empty() { "" } else { "." };
    format!("{whole}{dot}{frac}{}", SUFFIXES[i])
}

/// A rate as elsewhere in llmload (`fmt_rate`) below 10 000 a second; above, as `count`.
pub fn rate(r: f64) -> String {
    if !r.is_finite() || r < 9_999.5 { fmt_rate(r) } else { count(r as u64) }
}

/// A piece of a line shown whole or not at all. Lower `rank` stays longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub rank: u8,
    pub text: String,
}

pub fn field(rank: u8, text: impl Into<String>) -> Field {
    Field { rank, text: text.into() }
}

/// `groups` laid out in order, each group on a new line and wrapping between its
/// fields, joined by `sep`, in at most `max_lines` lines of `width` columns. Fields go,
/// the highest rank first (the last of equals first), until the rest fit; a field is
/// never cut. More groups than lines share lines, the last ones first.
pub fn fit_lines(groups: Vec<Vec<Field>>, sep: &str, width: usize, max_lines: usize) -> Vec<String> {
    let mut groups: Vec<Vec<Field>> = groups.into_iter().filter(|g| !g.is_empty()).collect();
    if max_lines == 0 {
        return Vec::new();
    }
    while groups.len() > max_lines {
        let last = groups.pop().expect("more than one group");
        groups.last_mut().expect("max_lines >= 1").extend(last);
    }
    // A field wider than the line can never show.
    for g in &mut groups {
        g.retain(|f| f.text.width() <= width);
    }
    loop {
        let lines = wrap(&groups, sep, width);
        if lines.len() <= max_lines {
            return lines;
        }
        // Drop the least important field: highest rank, the last of equals.
        let mut at = None;
        for (gi, g) in groups.iter().enumerate() {
            for (fi, f) in g.iter().enumerate() {
                if at.is_none_or(|(a, b): (usize, usize)| f.rank >= groups[a][b].rank) {
                    at = Some((gi, fi));
                }
            }
        }
        let Some((gi, fi)) = at else { return Vec::new() };
        groups[gi].remove(fi);
    }
}

/// One line of `fields` (see `fit_lines`); empty when none fits.
pub fn fit_line(fields: Vec<Field>, sep: &str, width: usize) -> String {
    fit_lines(vec![fields], sep, width, 1).pop().unwrap_or_default()
}

/// Greedy wrap: every group starts a line; a field goes on the next line when it does
/// not fit on the current one. Assumes every field fits a line by itself.
fn wrap(groups: &[Vec<Field>], sep: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for g in groups.iter().filter(|g| !g.is_empty()) {
        let mut line = String::new();
        for f in g {
            if line.is_empty() {
                line.push_str(&f.text);
            } else if line.width() + sep.width() + f.text.width() <= width {
                line.push_str(sep);
                line.push_str(&f.text);
            } else {
                lines.push(std::mem::take(&mut line));
                line.push_str(&f.text);
            }
        }
        lines.push(line);
    }
    lines
}

/// Text (a name, never a figure) cut to `w` display columns, with an ellipsis when cut;
/// a number just before the cut goes whole ("1150 RPM" is never "11…" nor "1150…",
/// which reads as a larger figure).
pub fn ellipsize(s: &str, w: usize) -> String {
    if s.width() <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out = String::new();
    for c in s.chars() {
        if out.width() + c.width().unwrap_or(0) + 1 > w {
            break;
        }
        out.push(c);
    }
    if out.ends_with(|c: char| c.is_ascii_digit()) {
        out.truncate(out.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ',').len());
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_below_ten_thousand_then_three_digits_floored() {
        let cases = [
            (0, "0"),
            (1_234, "1234"),
            (9_999, "9999"),
            (10_000, "10k"),
            (12_345, "12.3k"),
            (99_999, "99.9k"),
            (193_297, "193k"),
            (999_999, "999k"),
            (1_000_000, "1M"),
            (1_050_000, "1.05M"),
            (1_500_000, "1.5M"),
            (12_345_678, "12.3M"),
            (999_999_999, "999M"),
            (4_200_000_000, "4.2G"),
            (u64::MAX, "18.4E"),
        ];
        for (n, want) in cases {
            assert_eq!(count(n), want, "{n}");
            assert!(count(n).len() <= 5, "{n}");
        }
    }

    #[test]
    fn rates_abbreviate_from_ten_thousand() {
        assert_eq!(rate(12.34), "12.3");
        assert_eq!(rate(1234.4), "1234");
        assert_eq!(rate(123_456.0), "123k");
        assert_eq!(rate(f64::NAN), "NaN");
    }

    #[test]
    fn lines_drop_whole_fields_least_important_first() {
        let fields = || vec![field(2, "in flight 50/50"), field(1, "ok 12.3k"), field(0, "err 193k")];
        assert_eq!(fit_line(fields(), " · ", 80), "in flight 50/50 · ok 12.3k · err 193k");
        assert_eq!(fit_line(fields(), " · ", 34), "ok 12.3k · err 193k");
        assert_eq!(fit_line(fields(), " · ", 9), "err 193k");
        assert_eq!(fit_line(fields(), " · ", 7), "");
        // Equal ranks: the last goes first.
        assert_eq!(fit_line(vec![field(1, "aaaa"), field(1, "bbbb")], " ", 6), "aaaa");
    }

    #[test]
    fn groups_start_lines_and_share_them_when_lines_are_few() {
        let groups = || vec![vec![field(0, "a1"), field(1, "a2")], vec![field(0, "b1")]];
        assert_eq!(fit_lines(groups(), " · ", 20, 2), ["a1 · a2", "b1"]);
        assert_eq!(fit_lines(groups(), " · ", 20, 1), ["a1 · a2 · b1"]);
        assert_eq!(fit_lines(groups(), " · ", 7, 1), ["a1 · b1"]);
        // Wraps between fields of a group.
        assert_eq!(fit_lines(groups(), " · ", 4, 3), ["a1", "a2", "b1"]);
        assert!(fit_lines(groups(), " · ", 4, 0).is_empty());
    }

    #[test]
    fn names_are_cut_with_an_ellipsis() {
        assert_eq!(ellipsize("spike + retries", 8), "spike +…");
        assert_eq!(ellipsize("順次実行", 5), "順次…");
        assert_eq!(ellipsize("abc", 3), "abc");
        assert_eq!(ellipsize("abc", 0), "");
        assert_eq!(ellipsize("retries + 1150 RPM", 13), "retries + …");
        assert_eq!(ellipsize("retries + 1150 RPM", 15), "retries + …");
        assert_eq!(ellipsize("retries + 1150 RPM", 16), "retries + 1150 …");
    }
}
