//! The server's own figures as the live view shows them: the latest scrape of each
//! endpoint, sent to the aggregator as an event like any other (the scraper knows
//! nothing of the views) and published in every snapshot.

/// One endpoint's latest scrape, in the vocabulary's live figures; None where the
/// server has no such figure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerLive {
    pub endpoint: String,
    pub running: Option<f64>,
    pub waiting: Option<f64>,
    /// 0–1.
    pub kv_cache_usage: Option<f64>,
    /// Prefix-cache hits over queries since the run began.
    pub prefix_hit_rate: Option<f64>,
    /// % (mean over GPUs), and W (sum).
    pub gpu_util: Option<f64>,
    pub gpu_power_w: Option<f64>,
}

impl ServerLive {
    /// As the dashboard's line shows it, each figure the server has: "running 4 ·
    /// waiting 12 · KV 97 % · prefix 35 % · GPU 99 % 612 W".
    pub fn fields(&self) -> Vec<String> {
        let pct = |x: f64| format!("{:.0} %", x * 100.0);
        let mut out = Vec::new();
        if let Some(r) = self.running {
            out.push(format!("running {r:.0}"));
        }
        if let Some(w) = self.waiting {
            out.push(format!("waiting {w:.0}"));
        }
        if let Some(k) = self.kv_cache_usage {
            out.push(format!("KV {}", pct(k)));
        }
        if let Some(h) = self.prefix_hit_rate {
            out.push(format!("prefix {}", pct(h)));
        }
        match (self.gpu_util, self.gpu_power_w) {
            (Some(u), Some(w)) => out.push(format!("GPU {u:.0} % {w:.0} W")),
            (Some(u), None) => out.push(format!("GPU {u:.0} %")),
            (None, Some(w)) => out.push(format!("GPU {w:.0} W")),
            (None, None) => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_line_says_what_the_server_has() {
        let all = ServerLive {
            endpoint: "server".into(),
            running: Some(4.0),
            waiting: Some(12.0),
            kv_cache_usage: Some(0.972),
            prefix_hit_rate: Some(0.35),
            gpu_util: Some(99.0),
            gpu_power_w: Some(612.3),
        };
        assert_eq!(all.fields().join(" · "), "running 4 · waiting 12 · KV 97 % · prefix 35 % · GPU 99 % 612 W");
        let llama = ServerLive { running: Some(2.0), waiting: Some(0.0), ..ServerLive::default() };
        assert_eq!(llama.fields(), ["running 2", "waiting 0"]);
    }
}
