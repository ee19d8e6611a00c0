//! The checks on captured replies (tests/fixtures/apis: vLLM's, TEI's and llama-server's,
//! sources in NOTES.md) and on broken ones.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apis").join(name)).unwrap()
}

fn sent(items: u32) -> Expect {
    Expect { items: Some(items), top_n: None }
}

#[test]
fn real_embeddings_replies_pass_with_their_length_and_usage() {
    // llama-server's float capture answered a batch of two.
    for (name, n) in [("vllm_embeddings_response.json", 1), ("tei_embeddings_response.json", 1), ("llamacpp_embeddings_float.json", 2)] {
        let c = check(Api::Embeddings, &fixture(name), sent(n)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(c.dims.is_some_and(|d| d > 0) && c.usage.and_then(|u| u.prompt_tokens).is_some(), "{name}: {c:?}");
    }
    let float = check(Api::Embeddings, &fixture("llamacpp_embeddings_float.json"), sent(2)).unwrap();
    let b64 = check(Api::Embeddings, &fixture("llamacpp_embeddings_base64.json"), sent(1)).unwrap();
    assert_eq!(float.dims, b64.dims, "the same model, the same length in either encoding");
    assert_eq!(b64.usage.unwrap().completion_tokens, Some(0));
}

#[test]
fn an_embeddings_reply_that_does_not_match_what_was_sent_fails_with_why() {
    let e = |body: &str, n: u32| check(Api::Embeddings, body.as_bytes(), sent(n)).unwrap_err();
    assert_eq!(e(r#"{"data":[{"index":0,"embedding":[1.0]}]}"#, 2), "1 embeddings for 2 inputs");
    assert_eq!(
        e(r#"{"data":[{"index":0,"embedding":[1.0,2]},{"index":1,"embedding":[1.0]}]}"#, 2),
        "embeddings of 2 and 1 numbers in one reply"
    );
    assert_eq!(e(r#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]}"#, 2), "embedding index 0 twice");
    assert_eq!(e(r#"{"data":[{"index":5,"embedding":[1]}]}"#, 1), "embedding index 5 for 1 inputs");
    assert_eq!(e(r#"{"data":[{"index":0,"embedding":[]}]}"#, 1), "embeddings of 0 and 0 numbers in one reply");
    // 1e999 is out of f64's range (serde_json refuses it); a float32 NaN in base64
    // (00 00 c0 7f) reads, and is not finite.
    assert!(e(r#"{"data":[{"embedding":[1e999]}]}"#, 1).starts_with("expected an embeddings list (`data`), came invalid JSON"));
    assert_eq!(e(r#"{"data":[{"embedding":"AADAfw=="}]}"#, 1), "embedding 0 holds a number that is not finite");
    assert!(e(r#"{"data":[{"embedding":"AAA="}]}"#, 1).contains("wrong shape"));
    // Another API's reply: named as what came, no value quoted.
    let chat = r#"{"id":"x","choices":[{"message":{"content":"sk-secret"}}]}"#;
    assert_eq!(e(chat, 1), "expected an embeddings list (`data`), came a chat or text completion");
    assert_eq!(
        check(Api::Embeddings, &fixture("llamacpp_rerank_jina.json"), sent(1)).unwrap_err(),
        "expected an embeddings list (`data`), came rerank results"
    );
    assert!(e("{\"data\":[", 1).starts_with("expected an embeddings list (`data`), came invalid JSON at line 1"));
}

#[test]
fn rerank_replies_of_every_shape_pass_and_bad_ones_fail_with_why() {
    for name in ["vllm_rerank_response.json", "tei_rerank_response.json", "llamacpp_rerank_tei.json"] {
        check(Api::Rerank, &fixture(name), sent(2)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let jina = check(Api::Rerank, &fixture("llamacpp_rerank_jina.json"), Expect { items: Some(2), top_n: Some(1) }).unwrap();
    assert_eq!(jina.usage.and_then(|u| u.prompt_tokens), Some(22));
    let e = |body: &str, expect: Expect| check(Api::Rerank, body.as_bytes(), expect).unwrap_err();
    let two = |a: &str, b: &str| format!(r#"{{"results":[{{"index":{a},"relevance_score":0.5}},{{"index":{b},"relevance_score":0.1}}]}}"#);
    assert_eq!(e(&two("0", "1"), Expect { items: Some(3), top_n: Some(1) }), "2 results for top_n = 1");
    assert_eq!(e(&two("0", "1"), sent(1)), "2 results for 1 documents");
    assert_eq!(e(&two("0", "3"), sent(3)), "result index 3 for 3 documents");
    assert_eq!(e(&two("1", "1"), sent(3)), "result index 1 twice");
    assert_eq!(e(r#"{"results":[{"index":0,"relevance_score":null}]}"#, sent(1)), "result 0 has no finite relevance_score");
    assert_eq!(
        check(Api::Rerank, &fixture("vllm_embeddings_response.json"), sent(1)).unwrap_err(),
        "expected rerank results (`results`), came an embeddings list"
    );
}
