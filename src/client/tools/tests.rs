//! Tool calls assembled from captured streams (tests/fixtures/tools) and from any
//! cutting of the same calls into fragments.

use super::*;
use proptest::prelude::*;

/// Every `data:` event's `choices[0].delta.tool_calls`, fed to one assembly.
fn assemble(sse: &str) -> Vec<ToolCall> {
    let mut a = Assembly::default();
    for line in sse.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|l| *l != "[DONE]") {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for f in v["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
            feed(&mut a, f);
        }
    }
    a.finish().unwrap_or_default()
}

/// One fragment, given as a JSON value (borrowed from its text, as a stream's are).
fn feed(a: &mut Assembly, v: &serde_json::Value) -> bool {
    let text = v.to_string();
    a.fragment(&serde_json::from_str(&text).unwrap())
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tools").join(name)).unwrap()
}

fn args(c: &ToolCall) -> serde_json::Value {
    serde_json::from_str(&c.arguments).unwrap_or_else(|e| panic!("{c:?}: {e}"))
}

#[test]
fn captured_streams_assemble_into_their_calls() {
    let one = assemble(&fixture("openai_chat_stream_tool_call_single.sse"));
    assert_eq!((one.len(), one[0].name.as_str(), one[0].id.as_str()), (1, "GetWeatherArgs", "call_c91SqDXlYFuETYv8mUHzz6pp"));
    assert!(args(&one[0]).is_object());
    let two = assemble(&fixture("openai_chat_stream_tool_calls_parallel.sse"));
    assert_eq!(two.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["GetWeatherArgs", "get_stock_price"]);
    assert!(two.iter().all(|c| args(c).is_object() && c.id.starts_with("call_")));
    assert!(assemble(&fixture("openai_chat_stream_tool_call_strict.sse")).iter().all(|c| args(c).is_object()));
    // vLLM: a header without `arguments`, a name and the first piece in one chunk.
    let vllm = assemble(&fixture("constructed_vllm_hermes_tool_stream.sse"));
    assert_eq!((vllm.len(), vllm[0].name.as_str()), (1, "get_weather"));
    assert_eq!(args(&vllm[0]), serde_json::json!({"city": "Edinburgh", "units": "c"}));
    // llama.cpp: a header that already carries arguments.
    let llama = assemble(&fixture("constructed_llamacpp_tool_stream.sse"));
    assert!(!llama.is_empty() && llama.iter().all(|c| !c.name.is_empty() && args(c).is_object()), "{llama:?}");
}

#[test]
fn whole_replies_give_the_same_calls() {
    for name in ["openai_chat_nonstream_tool_call_single.json", "openai_chat_nonstream_tool_calls_parallel.json"] {
        let v: serde_json::Value = serde_json::from_str(&fixture(name)).unwrap();
        let calls: Vec<ToolCall> = serde_json::from_value::<Vec<WholeToolCall>>(v["choices"][0]["message"]["tool_calls"].clone())
            .unwrap()
            .into_iter()
            .map(WholeToolCall::call)
            .collect();
        assert!(!calls.is_empty() && calls.iter().all(|c| c.id.starts_with("call_") && args(c).is_object()), "{name}: {calls:?}");
    }
    // Arguments as an object (some servers): kept as its JSON.
    let w: WholeToolCall = serde_json::from_str(r#"{"id":"x","function":{"name":"f","arguments":{"a":1}}}"#).unwrap();
    assert_eq!(w.call().arguments, r#"{"a":1}"#);
}

#[test]
fn an_id_or_name_sent_again_is_not_joined_and_a_wild_index_is_dropped() {
    let mut a = Assembly::default();
    for f in [
        r#"{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\""}}"#,
        r#"{"index":0,"id":"call_1","function":{"name":"f","arguments":":1}"}}"#,
        r#"{"index":1000000000,"function":{"name":"g","arguments":"{}"}}"#,
        r#"{"index":0,"function":{}}"#,
    ] {
        a.fragment(&serde_json::from_str(f).unwrap());
    }
    assert_eq!(a.finish().unwrap(), [ToolCall { id: "call_1".into(), name: "f".into(), arguments: r#"{"a":1}"#.into() }]);
    assert!(Assembly::default().finish().is_none());
}

proptest! {
    /// However the server cuts the calls' arguments into pieces, and in whatever chunk
    /// each piece lands, the calls assembled are the calls sent.
    #[test]
    fn any_fragmentation_assembles_the_same_calls(
        calls in prop::collection::vec(("[a-z_]{1,12}", "[ -~]{0,60}"), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        header_args in any::<bool>(),
    ) {
        let mut a = Assembly::default();
        for (i, (name, arguments)) in calls.iter().enumerate() {
            // Cut points within the text, on char boundaries (ASCII here).
            let mut at: Vec<usize> = cuts.iter().map(|c| c % (arguments.len() + 1)).collect();
            at.push(0);
            at.push(arguments.len());
            at.sort_unstable();
            at.dedup();
            let first = serde_json::json!({"index": i, "id": format!("call_{i}"), "type": "function",
                "function": if header_args { serde_json::json!({"name": name, "arguments": ""}) } else { serde_json::json!({"name": name}) }});
            feed(&mut a, &first);
            for w in at.windows(2) {
                let piece = serde_json::json!({"index": i, "function": {"arguments": &arguments[w[0]..w[1]]}});
                feed(&mut a, &piece);
            }
        }
        let got = a.finish().unwrap();
        let want: Vec<ToolCall> = calls.iter().enumerate().map(|(i, (n, args))| ToolCall { id: format!("call_{i}"), name: n.clone(), arguments: args.clone() }).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn calls_sent_all_at_index_0_with_their_own_ids_stay_apart() {
    // SGLang's and some vLLM parsers' way: every call at index 0, each with a new id.
    let mut a = Assembly::default();
    for f in [
        r#"{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"x\":"}}"#,
        r#"{"index":0,"function":{"arguments":"1}"}}"#,
        r#"{"index":0,"id":"call_b","type":"function","function":{"name":"g","arguments":"{}"}}"#,
        r#"{"index":0,"function":{"arguments":""}}"#,
    ] {
        a.fragment(&serde_json::from_str(f).unwrap());
    }
    let calls = a.finish().unwrap();
    assert_eq!(
        calls.iter().map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str())).collect::<Vec<_>>(),
        [("call_a", "f", r#"{"x":1}"#), ("call_b", "g", "{}")]
    );
    // A whole reply's null id or name reads as empty, not as a broken reply.
    let w: WholeToolCall = serde_json::from_str(r#"{"id":null,"function":{"name":null,"arguments":"{}"}}"#).unwrap();
    assert_eq!(w.call(), ToolCall { id: String::new(), name: String::new(), arguments: "{}".into() });
}
