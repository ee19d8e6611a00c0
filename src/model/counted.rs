//! Where a token count came from: the server's `usage`, the server's own tokenizer (its
//! tokenize endpoint), a tokenizer of the model loaded here, an estimate in another
//! model's tokenizer (o200k), or the content chunks of a stream (one token per chunk).

use serde::{Deserialize, Serialize};

/// The source of one request's output (or input) token count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    Usage,
    ServerTokenizer,
    LocalTokenizer,
    Estimate,
    Chunks,
}

impl TokenSource {
    /// In the words of the table's notes.
    pub fn words(self) -> &'static str {
        match self {
            TokenSource::Usage => "the server's usage",
            TokenSource::ServerTokenizer => "the server's tokenizer",
            TokenSource::LocalTokenizer => "the model's tokenizer here",
            TokenSource::Estimate => "an estimate in another model's tokenizer",
            TokenSource::Chunks => "content chunks (one token each)",
        }
    }

    /// Whether the count is in the model's own tokens.
    pub fn is_models(self) -> bool {
        matches!(self, TokenSource::Usage | TokenSource::ServerTokenizer | TokenSource::LocalTokenizer)
    }
}

/// Successful requests by where their count came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSources {
    #[serde(default)]
    pub usage: u64,
    #[serde(default)]
    pub server_tokenizer: u64,
    #[serde(default)]
    pub local_tokenizer: u64,
    #[serde(default)]
    pub estimate: u64,
    #[serde(default)]
    pub chunks: u64,
}

impl TokenSources {
    pub fn record(&mut self, source: TokenSource) {
        *self.slot(source) += 1;
    }

    fn slot(&mut self, source: TokenSource) -> &mut u64 {
        match source {
            TokenSource::Usage => &mut self.usage,
            TokenSource::ServerTokenizer => &mut self.server_tokenizer,
            TokenSource::LocalTokenizer => &mut self.local_tokenizer,
            TokenSource::Estimate => &mut self.estimate,
            TokenSource::Chunks => &mut self.chunks,
        }
    }

    /// Two counts together (shards, merged).
    pub fn add(&mut self, o: &TokenSources) {
        for (s, n) in o.each() {
            *self.slot(s) += n;
        }
    }

    /// Every source with its count, in the order above.
    pub fn each(&self) -> [(TokenSource, u64); 5] {
        [
            (TokenSource::Usage, self.usage),
            (TokenSource::ServerTokenizer, self.server_tokenizer),
            (TokenSource::LocalTokenizer, self.local_tokenizer),
            (TokenSource::Estimate, self.estimate),
            (TokenSource::Chunks, self.chunks),
        ]
    }

    /// Requests counted, all sources.
    pub fn total(&self) -> u64 {
        self.each().iter().map(|(_, n)| n).sum()
    }

    /// The sources that counted some request and are not the model's own count.
    pub fn not_models(&self) -> impl Iterator<Item = (TokenSource, u64)> {
        self.each().into_iter().filter(|(s, n)| *n > 0 && !s.is_models())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_count_add_and_name_themselves() {
        let mut a = TokenSources::default();
        a.record(TokenSource::Usage);
        a.record(TokenSource::Chunks);
        a.record(TokenSource::Chunks);
        let mut b = a;
        b.add(&a);
        assert_eq!((b.usage, b.chunks, b.total()), (2, 4, 6));
        assert_eq!(b.not_models().collect::<Vec<_>>(), [(TokenSource::Chunks, 4)]);
        assert_eq!(serde_json::to_string(&TokenSource::ServerTokenizer).unwrap(), "\"server_tokenizer\"");
        assert!(TokenSource::LocalTokenizer.is_models() && !TokenSource::Estimate.is_models());
    }
}
