//! Response content checks: does a completion hold what the scenario expects?
//!
//! Models wrap JSON in prose or code fences, so extraction is lenient: the whole content,
//! else the first fenced code block, else the first balanced `{…}` object in the text.
//! Checks never panic. The brace scan is one linear pass, and at most 64 candidate objects
//! are handed to the JSON parser.

use serde_json::Value;

use crate::model::CheckFailure;

/// What a response's content must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A JSON object with at least these top-level keys.
    Json { required_keys: Vec<String> },
    /// JSON that fits a JSON Schema (`[check] schema = "file.json"`).
    Schema(std::sync::Arc<Schema>),
}

/// A compiled JSON Schema and the file it came from (which names it).
pub struct Schema {
    pub source: String,
    validator: jsonschema::Validator,
}

impl Schema {
    /// `schema` compiled; Err: why it is not a schema.
    pub fn new(source: String, schema: &Value) -> Result<Schema, String> {
        jsonschema::validator_for(schema).map(|validator| Schema { source, validator }).map_err(|e| e.to_string())
    }
}

impl PartialEq for Schema {
    fn eq(&self, o: &Schema) -> bool {
        self.source == o.source
    }
}

impl Eq for Schema {}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Schema({})", self.source)
    }
}

/// The tools a stage offers, each with its `parameters` compiled: a reply's calls are
/// checked against them.
pub struct ToolSchemas {
    tools: Vec<(String, Option<jsonschema::Validator>)>,
}

impl ToolSchemas {
    /// Of `tools` (OpenAI's shape, checked when the scenario was); None without any.
    pub fn of(tools: Option<&Value>) -> Option<ToolSchemas> {
        let tools = tools?.as_array()?;
        let tools = tools
            .iter()
            .filter_map(|t| {
                let name = t["function"]["name"].as_str()?.to_string();
                Some((name, t["function"].get("parameters").and_then(|p| jsonschema::validator_for(p).ok())))
            })
            .collect();
        Some(ToolSchemas { tools })
    }

    /// What is wrong with `call`, if anything.
    pub fn check(&self, call: &crate::model::ToolCall) -> Option<crate::model::ToolFault> {
        use crate::model::ToolFault;
        let Ok(args) = serde_json::from_str::<Value>(&call.arguments) else { return Some(ToolFault::NotJson) };
        let Some((_, schema)) = self.tools.iter().find(|(n, _)| *n == call.name) else { return Some(ToolFault::UnknownTool) };
        match schema {
            Some(v) if !v.is_valid(&args) => Some(ToolFault::Schema),
            _ => None,
        }
    }
}

impl std::fmt::Debug for ToolSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.iter().map(|(n, _)| n)).finish()
    }
}

/// Most characters of where a schema check failed (a path and a rule).
const WHERE_CHARS: usize = 120;

/// Checks one response's content against what is expected; a schema's failure says
/// which rule of the schema the first violation broke (its path in the schema).
pub fn check_where(content: &str, expect: &Expect) -> Result<(), (CheckFailure, Option<Box<str>>)> {
    let Expect::Schema(schema) = expect else { return check(content, expect).map_err(|f| (f, None)) };
    let value = extract_json(content).ok_or((CheckFailure::NoJson, None))?;
    match schema.validator.validate(&value) {
        Ok(()) => Ok(()),
        Err(e) => {
            // The rule's place in the schema, which the scenario's author wrote: never
            // the reply's own keys or values (a reply may echo anything).
            let at: String = e.schema_path().as_str().chars().take(WHERE_CHARS).collect();
            Err((CheckFailure::Schema, Some(at.into_boxed_str())))
        }
    }
}

/// How many `{` positions the prose scan tries before giving up.
const MAX_OBJECT_STARTS: usize = 64;

const FENCE: &str = "```";

/// Checks one response's content against what is expected.
pub fn check(content: &str, expect: &Expect) -> Result<(), CheckFailure> {
    match expect {
        Expect::Json { required_keys } => {
            let value = extract_json(content).ok_or(CheckFailure::NoJson)?;
            let object = value.as_object().ok_or(CheckFailure::NotAnObject)?;
            if required_keys.iter().all(|key| object.contains_key(key)) { Ok(()) } else { Err(CheckFailure::MissingKey) }
        }
        Expect::Schema(_) => check_where(content, expect).map_err(|(f, _)| f),
    }
}

/// The JSON value in `content`: the whole content, else the first fenced code block,
/// else the first balanced `{…}` object that parses.
fn extract_json(content: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str(content) {
        return Some(value);
    }
    if let Some(body) = first_fenced_block(content)
        && let Ok(value) = serde_json::from_str(body)
    {
        return Some(value);
    }
    first_object(content)
}

/// The body of the first ``` fenced block. The opening fence may carry a language tag
/// ("```json") on its own line; an unterminated block runs to the end of the content.
fn first_fenced_block(content: &str) -> Option<&str> {
    let start = content.find(FENCE)? + FENCE.len();
    let after = &content[start..];
    let body = match after.find('\n') {
        Some(newline) if is_info_string(after[..newline].trim()) => &after[newline + 1..],
        // Inline: ```{"a": 1}```
        _ => after,
    };
    Some(&body[..body.find(FENCE).unwrap_or(body.len())])
}

/// An empty or single-word language tag, like "json" or "JSON5".
fn is_info_string(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'))
}

/// The first balanced `{…}` in `content` that parses as a JSON object, trying at most
/// MAX_OBJECT_STARTS opening braces.
fn first_object(content: &str) -> Option<Value> {
    object_spans(content.as_bytes()).into_iter().find_map(|(start, end)| match serde_json::from_str(&content[start..=end?]) {
        Ok(value @ Value::Object(_)) => Some(value),
        _ => None,
    })
}

/// Scans (one per candidate `{`) that are in the same lexical state at the same byte agree
/// from there on: same strings, brace depths apart by a constant. So all scans run at once
/// in at most three groups, one per state (outside strings, inside one, just after a
/// backslash inside one), and the whole pass is linear.
#[derive(Default)]
struct Group {
    depth: i64,
    /// (target depth, candidate): the candidate's `{` closes when depth drops back to its
    /// target. Sorted by target; every target is below `depth`.
    open: Vec<(i64, usize)>,
}

/// The group of scans in both `a` and `b`, which reached the same state at the same byte.
fn join(a: Option<Group>, b: Option<Group>) -> Option<Group> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            let shift = a.depth - b.depth;
            a.open.extend(b.open.into_iter().map(|(target, c)| (target + shift, c)));
            a.open.sort_unstable();
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

/// The first MAX_OBJECT_STARTS `{` positions in `bytes`, each with the index of the `}`
/// that closes it when scanning from that `{` outside any string, braces inside JSON
/// strings not counting; None when it never closes. Works on bytes: '{', '}', '"' and '\\'
/// never occur inside a multi-byte UTF-8 sequence, so every index is a char boundary.
fn object_spans(bytes: &[u8]) -> Vec<(usize, Option<usize>)> {
    let mut spans: Vec<(usize, Option<usize>)> = Vec::new();
    // Scans outside strings, inside a string, and just after a backslash in a string.
    let (mut code, mut string, mut escape): (Option<Group>, Option<Group>, Option<Group>) = (None, None, None);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' => {
                if spans.len() < MAX_OBJECT_STARTS {
                    let group = code.get_or_insert_with(Group::default);
                    // Every other target is below depth, so the order holds.
                    group.open.push((group.depth, spans.len()));
                    spans.push((i, None));
                }
                if let Some(group) = &mut code {
                    group.depth += 1;
                }
            }
            b'}' => {
                if let Some(group) = &mut code {
                    group.depth -= 1;
                    while let Some(&(target, c)) = group.open.last()
                        && target == group.depth
                    {
                        group.open.pop();
                        spans[c].1 = Some(i);
                    }
                    if group.open.is_empty() {
                        code = None;
                    }
                }
            }
            b'"' => (code, string) = (string, join(code, escape.take())),
            b'\\' => (string, escape) = (escape, string),
            _ => {}
        }
        if b != b'"' && b != b'\\' && escape.is_some() {
            string = join(string, escape.take());
        }
        if spans.len() == MAX_OBJECT_STARTS && code.is_none() && string.is_none() && escape.is_none() {
            break;
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(keys: &[&str]) -> Expect {
        Expect::Json { required_keys: keys.iter().map(|k| k.to_string()).collect() }
    }

    fn any_object() -> Expect {
        keys(&[])
    }

    #[test]
    fn plain_json() {
        assert_eq!(check(r#"{"name": "Ada", "age": 36}"#, &keys(&["name", "age"])), Ok(()));
        assert_eq!(check("\n  {\"a\": 1}\n\n", &keys(&["a"])), Ok(()));
        assert_eq!(check("{}", &any_object()), Ok(()));
    }

    #[test]
    fn fenced_with_language_tag() {
        let content = "Here you go:\n```json\n{\"city\": \"Oslo\", \"temp\": -3}\n```\nAnything else?";
        assert_eq!(check(content, &keys(&["city", "temp"])), Ok(()));
        let upper = "```JSON\r\n{\"a\": 1}\r\n```";
        assert_eq!(check(upper, &keys(&["a"])), Ok(()));
    }

    #[test]
    fn fenced_without_language_tag() {
        let content = "Result:\n```\n{\"ok\": true}\n```";
        assert_eq!(check(content, &keys(&["ok"])), Ok(()));
    }

    #[test]
    fn fenced_inline_and_unterminated() {
        assert_eq!(check(r#"```{"a": 1}```"#, &keys(&["a"])), Ok(()));
        assert_eq!(check("```json\n{\"a\": 1}\n", &keys(&["a"])), Ok(()));
    }

    #[test]
    fn fenced_block_wins_over_earlier_prose_braces() {
        // The prose object comes first but the fence is tried before the prose scan.
        let content = "Format: {\"b\": 0}\n```json\n{\"a\": 1}\n```";
        assert_eq!(check(content, &keys(&["a"])), Ok(()));
    }

    #[test]
    fn unparsable_fence_falls_back_to_prose() {
        let content = "```python\nprint('hi')\n```\nand the data: {\"a\": 1}";
        assert_eq!(check(content, &keys(&["a"])), Ok(()));
    }

    #[test]
    fn json_in_prose() {
        let content = r#"Sure! Here it is: {"title": "Dune", "year": 1965} Hope it helps"#;
        assert_eq!(check(content, &keys(&["title", "year"])), Ok(()));
    }

    #[test]
    fn braces_inside_strings_do_not_count() {
        let content = r#"Output: {"open": "{", "close": "}}", "quote": "say \"}\" \\", "n": 1} done {"#;
        assert_eq!(check(content, &keys(&["open", "close", "quote", "n"])), Ok(()));
    }

    #[test]
    fn a_stray_quote_in_prose_does_not_hide_the_object() {
        // Each scan starts outside any string, so an unmatched quote before the brace is ignored.
        let content = r#"He said "here it is: {"a": 1}"#;
        assert_eq!(check(content, &keys(&["a"])), Ok(()));
    }

    #[test]
    fn nested_objects() {
        let content = r#"The answer is {"user": {"name": "Ada", "tags": {"x": {}}}, "id": 7}."#;
        assert_eq!(check(content, &keys(&["user", "id"])), Ok(()));
        // Keys are checked at the top level only.
        assert_eq!(check(content, &keys(&["name"])), Err(CheckFailure::MissingKey));
    }

    #[test]
    fn skips_braces_that_are_not_json() {
        let content = r#"Fill in {name} and {age}, like this: {"name": "Ada", "age": 36}"#;
        assert_eq!(check(content, &keys(&["name", "age"])), Ok(()));
    }

    #[test]
    fn prose_scan_recovers_an_inner_object() {
        // The outer braces balance but do not parse; a later start does.
        let content = r#"{ result: {"a": 1} }"#;
        assert_eq!(check(content, &keys(&["a"])), Ok(()));
    }

    #[test]
    fn arrays_at_top_level_are_not_objects() {
        assert_eq!(check(r#"[{"a": 1}]"#, &keys(&["a"])), Err(CheckFailure::NotAnObject));
        assert_eq!(check("```json\n[1, 2]\n```", &any_object()), Err(CheckFailure::NotAnObject));
        assert_eq!(check("42", &any_object()), Err(CheckFailure::NotAnObject));
        assert_eq!(check(r#""{\"a\": 1}""#, &any_object()), Err(CheckFailure::NotAnObject));
        assert_eq!(check("null", &any_object()), Err(CheckFailure::NotAnObject));
    }

    #[test]
    fn missing_key() {
        assert_eq!(check(r#"{"name": "Ada"}"#, &keys(&["name", "age"])), Err(CheckFailure::MissingKey));
        assert_eq!(check(r#"{"Name": "Ada"}"#, &keys(&["name"])), Err(CheckFailure::MissingKey));
        // A null value is still present.
        assert_eq!(check(r#"{"age": null}"#, &keys(&["age"])), Ok(()));
    }

    #[test]
    fn empty_and_json_free_content() {
        assert_eq!(check("", &any_object()), Err(CheckFailure::NoJson));
        assert_eq!(check("   \n\t", &any_object()), Err(CheckFailure::NoJson));
        assert_eq!(check("I can't help with that.", &any_object()), Err(CheckFailure::NoJson));
        assert_eq!(check("```\n```", &any_object()), Err(CheckFailure::NoJson));
        assert_eq!(check("{\"a\": 1", &any_object()), Err(CheckFailure::NoJson));
        assert_eq!(check("}{", &any_object()), Err(CheckFailure::NoJson));
    }

    #[test]
    fn unicode() {
        let content = "Voilà ✨ : {\"clé\": \"日本語 🎉\", \"emoji\": \"\\ud83d\\ude00\"} — fin 🙂";
        assert_eq!(check(content, &keys(&["clé", "emoji"])), Ok(()));
        assert_eq!(check("```json\n{\"名前\": \"エイダ\"}\n```", &keys(&["名前"])), Ok(()));
        assert_eq!(check("🎉{🎉}🎉", &any_object()), Err(CheckFailure::NoJson));
    }

    #[test]
    fn a_megabyte_of_open_braces() {
        let braces = "{".repeat(1 << 20);
        assert_eq!(check(&braces, &any_object()), Err(CheckFailure::NoJson));
        // An object before the flood is found on the first try.
        let object_first = format!("{{\"a\": 1}}{braces}");
        assert_eq!(check(&object_first, &keys(&["a"])), Ok(()));
        // One after it lies beyond the bounded number of starts.
        let object_last = format!("{braces}{{\"a\": 1}}");
        assert_eq!(check(&object_last, &keys(&["a"])), Err(CheckFailure::NoJson));
    }

    #[test]
    fn large_pathological_inputs_do_not_panic() {
        let n = 1 << 17;
        // Nesting deeper than serde_json's recursion limit is an error, not a stack overflow.
        let deep_array = format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check(&deep_array, &any_object()), Err(CheckFailure::NoJson));
        let deep_object = format!("{}{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert_eq!(check(&deep_object, &any_object()), Err(CheckFailure::NoJson));
        assert_eq!(check(&"}".repeat(1 << 20), &any_object()), Err(CheckFailure::NoJson));
        assert_eq!(check(&"\"{\\".repeat(1 << 18), &any_object()), Err(CheckFailure::NoJson));
        assert_eq!(check(&"```".repeat(1 << 18), &any_object()), Err(CheckFailure::NoJson));
    }

    #[test]
    fn the_number_of_starts_is_bounded() {
        let bad = "{x} ".repeat(MAX_OBJECT_STARTS - 1);
        assert_eq!(check(&format!("{bad}{{\"a\": 1}}"), &keys(&["a"])), Ok(()));
        let too_many = "{x} ".repeat(MAX_OBJECT_STARTS);
        assert_eq!(check(&format!("{too_many}{{\"a\": 1}}"), &keys(&["a"])), Err(CheckFailure::NoJson));
    }

    /// The obvious scan, one `{` at a time: what object_spans must agree with.
    fn naive_end(bytes: &[u8], start: usize) -> Option<usize> {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for (i, &b) in bytes.iter().enumerate().skip(start) {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        None
    }

    fn naive_spans(bytes: &[u8]) -> Vec<(usize, Option<usize>)> {
        let starts = bytes.iter().enumerate().filter(|&(_, &b)| b == b'{').map(|(i, _)| i).take(MAX_OBJECT_STARTS);
        starts.map(|start| (start, naive_end(bytes, start))).collect()
    }

    #[test]
    fn spans_by_example() {
        assert_eq!(object_spans(b"{ {} }"), vec![(0, Some(5)), (2, Some(3))]);
        assert_eq!(object_spans(b"a\"{\"}"), vec![(2, None)]);
        assert_eq!(object_spans(b"{\"}\"} {\"\\\"}\"}"), vec![(0, Some(4)), (6, Some(12))]);
        assert_eq!(object_spans(b"}{{}"), vec![(1, None), (2, Some(3))]);
        assert_eq!(object_spans(b""), vec![]);
    }

    #[test]
    fn spans_agree_with_the_naive_scan() {
        // Deterministic pseudo-random strings over the bytes that matter.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let alphabet: &[u8] = if round % 4 == 0 { b"{{{}\"\\" } else { b"{}\"\\ a" };
            let len = (next() % if round % 10 == 0 { 300 } else { 40 }) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            assert_eq!(object_spans(&bytes), naive_spans(&bytes), "{:?}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn names_match_serde() {
        for failure in [CheckFailure::NoJson, CheckFailure::NotAnObject, CheckFailure::MissingKey] {
            assert_eq!(serde_json::to_string(&failure).unwrap(), format!("\"{}\"", failure.as_str()));
            assert_eq!(failure.to_string(), failure.as_str());
        }
    }
}
