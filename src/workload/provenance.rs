//! What a run's prompts were made from, for its result: the counting tokenizer, the
//! seed, and every file read (dataset, prompt file, tokenizer) by path, size and
//! sha256, so the run can be reproduced and a changed file noticed.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::dataset::DatasetInfo;

/// A file a run read, as the result records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRecord {
    /// As the scenario names it.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl FileRecord {
    pub fn of(path: &str, content: &[u8]) -> FileRecord {
        let digest = Sha256::digest(content);
        let sha256 = digest.iter().map(|b| format!("{b:02x}")).collect();
        FileRecord { path: path.to_string(), bytes: content.len() as u64, sha256 }
    }
}

/// The workload's provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadInfo {
    /// "o200k_base", "cl100k_base", the tokenizer file as named, or the server's
    /// tokenize endpoint ("server: llama.cpp POST http://…/tokenize").
    pub tokenizer: String,
    /// Why the counts are estimates, when `tokenizer = "auto"` found no tokenize endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer_note: Option<String>,
    /// With the server's tokenizer: the tokenize calls made, the texts estimated in
    /// o200k instead (while a stage was measured, or a call failed) and the first failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenize: Option<super::remote::RemoteStats>,
    /// Seed of synthetic lengths and texts, and of dataset sampling.
    pub seed: u64,
    /// Stages' prompts with a seed of their own ("stage 2 prompts" → seed).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stage_seeds: std::collections::BTreeMap<String, u64>,
    pub files: Vec<FileRecord>,
    /// The dataset's entries and what was drawn from them, per prompt source that read one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<DatasetUse>,
    /// Each trace replayed, and how much of it the prompts source kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<TraceUse>,
}

/// A trace as a prompt source reads it ("prompts" or "stage 2 prompts").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceUse {
    pub path: String,
    pub used_by: String,
    pub format: super::trace::Format,
    pub block_tokens: u32,
    /// The clock's speed (a stage may set its own).
    pub speed: f64,
    /// Trace time skipped, and the trace time the kept lines span, seconds.
    pub start_s: f64,
    pub span_s: f64,
    pub lines_in_file: u64,
    /// Lines kept (after `start`, `requests` and `duration`), and the sessions they make.
    pub lines: u64,
    pub sessions: u64,
}

impl Default for WorkloadInfo {
    fn default() -> Self {
        WorkloadInfo {
            tokenizer: "o200k_base".into(),
            tokenizer_note: None,
            tokenize: None,
            seed: 0,
            stage_seeds: Default::default(),
            files: Vec::new(),
            datasets: Vec::new(),
            traces: Vec::new(),
        }
    }
}

/// What one dataset gave, and where it is used ("prompts" or "stage 2").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetUse {
    pub path: String,
    pub used_by: String,
    #[serde(flatten)]
    pub info: DatasetInfo,
}

impl WorkloadInfo {
    /// Records a file once, however many prompt sources read it.
    pub fn read(&mut self, record: FileRecord) {
        if !self.files.contains(&record) {
            self.files.push(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_recorded_by_sha256() {
        let r = FileRecord::of("a.txt", b"abc");
        assert_eq!(r.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(r.bytes, 3);
        let mut w = WorkloadInfo::default();
        w.read(r.clone());
        w.read(r);
        assert_eq!(w.files.len(), 1);
    }
}
