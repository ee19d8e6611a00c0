//! The house rules, checked on the source itself so they stay true:
//! - no import cycle between files: file A depends on file B when A names anything of
//!   B through `use crate::…`, an inline `crate::b::x` path, `super::` or a path into
//!   one of its own child modules (a sibling file counts; a child naming its own parent
//!   `mod.rs` does not). Those dependencies form no loop.
//! - the contract room (`src/model/`) depends on no other file of the crate.
//! - every source file holds at most 600 lines before its `#[cfg(test)] mod tests`,
//!   which, when present, is the last item of the file (or a `tests.rs` beside it).
//! - no function in src/ (tests included) is over 120 lines, from its `fn` line to its
//!   closing brace: a longer one is steps that want names.
//! - the embedded mock (`src/mock/`) imports nothing of the engine: what both need (the
//!   GCRA bucket) lives where both may import it.
//!
//! The scan strips comments and literals, then reads `use` trees and paths; it knows
//! nothing of macros' insides beyond their tokens, which is all this crate needs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Hard limit of non-test lines per file; the aim is under ~500.
const MAX_LINES: usize = 600;
const AIM_LINES: usize = 500;
/// Most lines of one function, its `fn` line and closing brace included.
const MAX_FN_LINES: usize = 120;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Source with comments, strings and char literals blanked (newlines kept).
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                    continue;
                }
                if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                    continue;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
            continue;
        }
        // Raw strings: r"…", r#"…"#, br#"…"#.
        let prev_ident = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if !prev_ident && (ch == 'r' || (ch == 'b' && next == Some('r'))) {
            let start = if ch == 'b' { i + 2 } else { i + 1 };
            let mut j = start;
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            if c.get(j) == Some(&'"') {
                let hashes = j - start;
                let mut k = j + 1;
                loop {
                    if k >= c.len() {
                        break;
                    }
                    if c[k] == '"' && (0..hashes).all(|h| c.get(k + 1 + h) == Some(&'#')) {
                        k += 1 + hashes;
                        break;
                    }
                    k += 1;
                }
                for &x in &c[i..k.min(c.len())] {
                    blank(&mut out, x);
                }
                out.push_str("\"\"");
                i = k;
                continue;
            }
        }
        if ch == '"' {
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            for &x in &c[i..(k + 1).min(c.len())] {
                blank(&mut out, x);
            }
            out.push_str("\"\"");
            i = k + 1;
            continue;
        }
        if ch == '\'' {
            // A char literal ('x', '\n', '\u{1F600}'), else a lifetime or label.
            let end = if next == Some('\\') {
                (i + 3..c.len()).find(|&k| c[k] == '\'')
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            if let Some(end) = end {
                for &x in &c[i..=end] {
                    blank(&mut out, x);
                }
                i = end + 1;
                continue;
            }
        }
        out.push(ch);
        i += 1;
    }
    out
}

fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
            continue;
        }
        if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Tok::Path);
            i += 2;
            continue;
        }
        if !ch.is_whitespace() {
            out.push(Tok::Punct(ch));
        }
        i += 1;
    }
    out
}

/// The paths a `use` tree starting at `toks[*i]` names, each as its segments.
fn use_tree(toks: &[Tok], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match toks.get(*i) {
            Some(Tok::Ident(s)) if s == "as" => {
                *i += 2;
                out.push(path);
                return;
            }
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *i += 1;
            }
            Some(Tok::Path) => *i += 1,
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    match toks.get(*i) {
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        None => return,
                        _ => use_tree(toks, i, path.clone(), out),
                    }
                }
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push(path);
                return;
            }
            _ => {
                out.push(path);
                return;
            }
        }
    }
}

/// What one file names: paths with the module they were written in (file module plus
/// any inline `mod x { … }`), its child module declarations, and which are cfg(test).
struct Scan {
    paths: Vec<(Vec<String>, Vec<String>)>,
    children: Vec<String>,
    test_children: Vec<String>,
}

fn scan(src: &str, module: &[String]) -> Scan {
    let toks = tokens(&strip(src));
    let mut scan = Scan { paths: Vec::new(), children: Vec::new(), test_children: Vec::new() };
    // Inline modules: (name, brace depth at which it closes).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut cfg_test = false;
    let mut i = 0;
    let here = |inline: &[(String, usize)]| {
        let mut m = module.to_vec();
        m.extend(inline.iter().map(|(n, _)| n.clone()));
        m
    };
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('#') => {
                // An attribute: skipped whole; `#[cfg(test)]` marks the next `mod`.
                let open = i + 1 + usize::from(toks.get(i + 1) == Some(&Tok::Punct('!')));
                if toks.get(open) != Some(&Tok::Punct('[')) {
                    i += 1;
                    continue;
                }
                let (mut d, mut j) = (0, open);
                while j < toks.len() {
                    match toks[j] {
                        Tok::Punct('[') => d += 1,
                        Tok::Punct(']') => {
                            d -= 1;
                            if d == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let inside = &toks[open + 1..j.min(toks.len())];
                if inside == [Tok::Ident("cfg".into()), Tok::Punct('('), Tok::Ident("test".into()), Tok::Punct(')')] {
                    cfg_test = true;
                }
                i = j + 1;
            }
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                while inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                i += 1;
            }
            Tok::Ident(k) if k == "mod" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                    match toks.get(i + 2) {
                        Some(Tok::Punct(';')) if inline.is_empty() => {
                            scan.children.push(name.clone());
                            if cfg_test {
                                scan.test_children.push(name.clone());
                            }
                        }
                        Some(Tok::Punct('{')) => {
                            inline.push((name.clone(), depth));
                        }
                        _ => {}
                    }
                }
                cfg_test = false;
                i += 2;
            }
            Tok::Ident(k) if k == "use" => {
                i += 1;
                let mut paths = Vec::new();
                use_tree(&toks, &mut i, Vec::new(), &mut paths);
                let m = here(&inline);
                scan.paths.extend(paths.into_iter().map(|p| (m.clone(), p)));
                cfg_test = false;
            }
            Tok::Ident(first) => {
                // The start of a path: `a::b::c` not itself after `::`.
                let after_path = i > 0 && toks[i - 1] == Tok::Path;
                if !after_path && toks.get(i + 1) == Some(&Tok::Path) {
                    let mut p = vec![first.clone()];
                    let mut j = i + 1;
                    while toks.get(j) == Some(&Tok::Path) {
                        match toks.get(j + 1) {
                            Some(Tok::Ident(s)) => p.push(s.clone()),
                            _ => break,
                        }
                        j += 2;
                    }
                    scan.paths.push((here(&inline), p));
                    i = j;
                } else {
                    if !matches!(first.as_str(), "pub" | "crate" | "super" | "in" | "self") {
                        cfg_test = false;
                    }
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    scan
}

/// The source files, by module path ([] is lib.rs).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                let mut m = prefix.to_vec();
                m.push(name);
                walk(&path, &m, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let m = match name.as_str() {
                    "mod" => prefix.to_vec(),
                    "lib" if prefix.is_empty() => Vec::new(),
                    "main" if prefix.is_empty() => vec!["<bin>".to_string()],
                    _ => {
                        let mut m = prefix.to_vec();
                        m.push(name);
                        m
                    }
                };
                out.insert(m, path);
            }
        }
    }
    walk(src, &[], &mut out);
    out
}

/// The file a path written in `module` (of the file `file_module`) names, if it is one
/// of the crate's.
fn resolve(
    files: &BTreeMap<Vec<String>, PathBuf>,
    file_module: &[String],
    children: &[String],
    module: &[String],
    path: &[String],
) -> Option<Vec<String>> {
    let bin = file_module.first().is_some_and(|m| m == "<bin>");
    let (mut cur, rest): (Vec<String>, &[String]) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "llmload" if bin => (Vec::new(), &path[1..]),
        "self" => (module.to_vec(), &path[1..]),
        "super" => {
            let mut m = module.to_vec();
            let mut k = 0;
            while path.get(k).is_some_and(|s| s == "super") {
                m.pop()?;
                k += 1;
            }
            (m, &path[k..])
        }
        // A path into a child module declared by this file.
        c if module == file_module && children.iter().any(|x| x == c) => (module.to_vec(), path),
        _ => return None,
    };
    for seg in rest {
        let mut next = cur.clone();
        next.push(seg.clone());
        if files.contains_key(&next) {
            cur = next;
        } else {
            break;
        }
    }
    // Inline modules have no file of their own: the deepest module that has one.
    while !files.contains_key(&cur) {
        cur.pop()?;
    }
    Some(cur)
}

struct House {
    files: BTreeMap<Vec<String>, PathBuf>,
    deps: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    test_files: BTreeSet<Vec<String>>,
}

fn house() -> House {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modules(&src);
    let mut deps: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut test_files = BTreeSet::new();
    for (m, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let s = scan(&text, m);
        for t in &s.test_children {
            let mut child = m.clone();
            child.push(t.clone());
            test_files.insert(child);
        }
        let parent: Option<Vec<String>> = (!m.is_empty()).then(|| m[..m.len() - 1].to_vec());
        let entry = deps.entry(m.clone()).or_default();
        for (written_in, p) in &s.paths {
            if let Some(target) = resolve(&files, m, &s.children, written_in, p)
                && &target != m
                && Some(&target) != parent.as_ref()
            {
                entry.insert(target);
            }
        }
    }
    House { files, deps, test_files }
}

fn name(files: &BTreeMap<Vec<String>, PathBuf>, m: &[String]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    files[m].strip_prefix(root).unwrap().display().to_string()
}

/// A loop through `start`, if there is one.
fn cycle_through(deps: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>, start: &Vec<String>) -> Option<Vec<Vec<String>>> {
    // Depth-first search with an explicit path.
    fn dfs(
        deps: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        start: &Vec<String>,
        at: &Vec<String>,
        path: &mut Vec<Vec<String>>,
        seen: &mut BTreeSet<Vec<String>>,
    ) -> bool {
        for next in deps.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if dfs(deps, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.clone()];
    let mut seen = BTreeSet::new();
    dfs(deps, start, start, &mut path, &mut seen).then(|| {
        path.push(start.clone());
        path
    })
}

#[test]
fn no_import_cycle_between_files() {
    let h = house();
    let mut loops = BTreeSet::new();
    for m in h.files.keys() {
        if let Some(c) = cycle_through(&h.deps, m) {
            loops.insert(c.iter().map(|m| name(&h.files, m)).collect::<Vec<_>>().join(" → "));
        }
    }
    assert!(loops.is_empty(), "import cycles between files:\n{}", loops.into_iter().collect::<Vec<_>>().join("\n"));
}

#[test]
fn the_contract_room_imports_nothing_of_the_crate() {
    let h = house();
    let model = vec!["model".to_string()];
    assert!(h.files.contains_key(&model), "src/model/ is the contract room");
    for (m, deps) in &h.deps {
        if m.first() == Some(&model[0]) {
            let outside: Vec<String> = deps.iter().filter(|d| d.first() != Some(&model[0])).map(|d| name(&h.files, d)).collect();
            assert!(outside.is_empty(), "{} names {outside:?}", name(&h.files, m));
        }
    }
}

/// Lines before the file's `#[cfg(test)] mod tests`, and whether that module (when
/// present) is the last thing in the file.
fn non_test_lines(text: &str) -> (usize, bool) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = lines.windows(2).position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod tests")) else {
        return (lines.len(), true);
    };
    let module = &lines[at + 1..];
    if module[0].trim_end().ends_with(';') {
        // `mod tests;`: nothing but blank lines after it.
        return (at, module[1..].iter().all(|l| l.trim().is_empty()));
    }
    // The module's closing brace is the file's last non-blank line.
    let stripped = strip(&module.join("\n"));
    let (mut depth, mut closed_at) = (0i64, None);
    for (n, line) in stripped.lines().enumerate() {
        for ch in line.chars() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 && closed_at.is_none() {
                        closed_at = Some(n);
                    }
                }
                _ => {}
            }
        }
    }
    let last = module.iter().rposition(|l| !l.trim().is_empty());
    (at, closed_at.is_some() && closed_at == last)
}

#[test]
fn files_hold_one_concern_and_tests_come_last() {
    let h = house();
    let mut over = Vec::new();
    let mut misplaced = Vec::new();
    let mut sizes = Vec::new();
    for (m, path) in &h.files {
        if h.test_files.contains(m) {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let (n, last) = non_test_lines(&text);
        sizes.push((n, name(&h.files, m)));
        if n > MAX_LINES {
            over.push(format!("{}: {n} lines", name(&h.files, m)));
        }
        if !last {
            misplaced.push(name(&h.files, m));
        }
        let doc = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
        assert!(doc.starts_with("//!"), "{} has no module doc at its top", name(&h.files, m));
    }
    sizes.sort();
    for (n, f) in sizes.iter().rev().take_while(|(n, _)| *n > AIM_LINES) {
        eprintln!("note: {f}: {n} non-test lines (aim: under {AIM_LINES})");
    }
    assert!(over.is_empty(), "over {MAX_LINES} non-test lines:\n{}", over.join("\n"));
    assert!(misplaced.is_empty(), "the test module is not the last item in: {misplaced:?}");
}

/// Every function with a body in `src` (stripped of comments and literals): its name,
/// its first line (1-based) and its length in lines, `fn` line to closing brace.
fn functions(src: &str) -> Vec<(String, usize, usize)> {
    let c: Vec<char> = strip(src).chars().collect();
    let line_at = |i: usize| 1 + c[..i].iter().filter(|&&x| x == '\n').count();
    let is_ident = |x: char| x.is_alphanumeric() || x == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < c.len() {
        let word = c[i] == 'f' && c[i + 1] == 'n' && !c[i + 2].is_alphanumeric() && c[i + 2] != '_';
        if !word || (i > 0 && is_ident(c[i - 1])) {
            i += 1;
            continue;
        }
        // `fn name`: a function (`fn(` is a pointer type).
        let mut j = i + 2;
        while j < c.len() && c[j].is_whitespace() {
            j += 1;
        }
        let name_start = j;
        while j < c.len() && is_ident(c[j]) {
            j += 1;
        }
        if j == name_start {
            i += 2;
            continue;
        }
        let name: String = c[name_start..j].iter().collect();
        // Its body opens at the first `{` before any `;` (a declaration has none).
        while j < c.len() && c[j] != '{' && c[j] != ';' {
            j += 1;
        }
        if j >= c.len() || c[j] == ';' {
            i = j;
            continue;
        }
        let mut depth = 0usize;
        let mut k = j;
        while k < c.len() {
            match c[k] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        let (first, last) = (line_at(i), line_at(k.min(c.len() - 1)));
        out.push((name, first, last - first + 1));
        // Functions inside it are counted too.
        i += 2;
    }
    out
}

#[test]
fn no_function_is_over_120_lines() {
    let h = house();
    let mut all = Vec::new();
    for path in h.files.values() {
        let text = std::fs::read_to_string(path).unwrap();
        for (f, line, len) in functions(&text) {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            all.push((len, format!("{}:{line} {f}", path.strip_prefix(root).unwrap().display())));
        }
    }
    all.sort();
    for (len, f) in all.iter().rev().take(3) {
        eprintln!("note: longest: {f}, {len} lines");
    }
    let over: Vec<String> = all.iter().filter(|(len, _)| *len > MAX_FN_LINES).map(|(len, f)| format!("{f}: {len} lines")).collect();
    assert!(over.is_empty(), "functions over {MAX_FN_LINES} lines (name their steps):\n{}", over.join("\n"));
}

#[test]
fn the_mock_imports_nothing_of_the_engine() {
    let h = house();
    for (m, deps) in h.deps.iter().filter(|(m, _)| m.first().is_some_and(|r| r == "mock")) {
        let engine: Vec<String> = deps.iter().filter(|d| d.first().is_some_and(|r| r == "engine")).map(|d| name(&h.files, d)).collect();
        assert!(engine.is_empty(), "{} names {engine:?}", name(&h.files, m));
    }
}

#[test]
fn the_scan_sees_what_it_must() {
    // Guards the checker itself: every way of naming a file is seen, none of the
    // look-alikes in comments and strings is.
    let src = r##"//! doc crate::fake::x
use crate::{alpha::A, beta::{B, gamma::C}};
use super::sibling::S;
mod child;
#[cfg(test)]
mod tests;
fn f() { let _ = crate::delta::d(); let s = "crate::fake::y"; let r = r#"super::fake"#; let c = '\''; child::g(); }
/* crate::fake::z */
mod inline { use super::super::up::U; }
"##;
    let s = scan(src, &["room".into(), "file".into()]);
    let paths: Vec<String> = s.paths.iter().map(|(_, p)| p.join("::")).collect();
    for want in [
        "crate::alpha::A",
        "crate::beta::B",
        "crate::beta::gamma::C",
        "super::sibling::S",
        "crate::delta::d",
        "child::g",
        "super::super::up::U",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
    }
    assert!(!paths.iter().any(|p| p.contains("fake")), "{paths:?}");
    assert_eq!(s.children, ["child", "tests"]);
    assert_eq!(s.test_children, ["tests"]);
    // The inline module's `super` is the file's own module.
    let inline = s.paths.iter().find(|(_, p)| p.last().is_some_and(|l| l == "U")).unwrap();
    assert_eq!(inline.0, ["room", "file", "inline"]);
    let (n, last) = non_test_lines("//! x\nfn a() {}\n#[cfg(test)]\nmod tests {\n    fn b() { let _ = \"}\"; }\n}\n");
    assert_eq!((n, last), (2, true));
    let (_, last) = non_test_lines("//! x\n#[cfg(test)]\nmod tests {\n}\nfn after() {}\n");
    assert!(!last);
    // Functions: bodies measured `fn` line to brace, braces in strings and comments and
    // pointer types and declarations not taken for them, nested ones counted too.
    let src = "trait T {\n    fn decl(&self);\n}\nfn outer(f: fn(u8) -> u8) {\n    let s = \"}}}\"; // }\n    fn inner() {\n    }\n}\nfn one() {}\n";
    let fns: Vec<(String, usize, usize)> = functions(src);
    let want = [("outer", 4, 5), ("inner", 6, 2), ("one", 9, 1)].map(|(n, l, len)| (n.to_string(), l, len));
    assert_eq!(fns, want);
}
