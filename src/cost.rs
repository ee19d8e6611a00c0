//! Token pricing: what a run's tokens cost, in USD and optionally in another currency.
//!
//! Prices are per million tokens, split into input (prompt) and output (completion).
//! The built-in table holds a few example list prices; a scenario's `[pricing]` table
//! overrides or extends it (see [`PricingFile`] and [`Pricing::with_overrides`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// USD per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

/// A price table plus the currency costs are shown in.
#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    models: BTreeMap<String, Price>,
    /// Code of the display currency, "USD" unless overridden.
    pub currency: String,
    /// Units of `currency` per 1 USD (1.0 for USD).
    pub per_usd: f64,
}

/// The scenario's `[pricing]` table, as written:
///
/// ```toml
/// [pricing]
/// currency = "EUR"
/// per_usd = 0.86
/// models."my-finetune" = { input_per_million = 1.0, output_per_million = 4.0 }
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingFile {
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub per_usd: Option<f64>,
    #[serde(default)]
    pub models: BTreeMap<String, Price>,
}

/// Built-in example prices, USD per million tokens (input, output).
///
/// These are published list prices at the time of writing, for standard (non-batch,
/// non-cached) usage. They are examples, not a source of truth: providers change prices,
/// and discounts, caching and long-context tiers are not modelled. Override them in the
/// scenario's `[pricing]` table.
const BUILTIN: &[(&str, f64, f64)] = &[
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("claude-sonnet-4.5", 3.00, 15.00),
    ("gemini-2.5-flash", 0.30, 2.50),
    ("deepseek-v3.2", 0.28, 0.42),
];

const USD: &str = "USD";

impl Pricing {
    /// The built-in example prices, in USD: list prices for a few common models.
    pub fn builtin() -> Pricing {
        let models = BUILTIN
            .iter()
            .map(|&(name, input, output)| (name.to_string(), Price { input_per_million: input, output_per_million: output }))
            .collect();
        Pricing { models, currency: USD.to_string(), per_usd: 1.0 }
    }

    /// The built-in prices, overridden and extended by a scenario's `[pricing]` table.
    /// Every problem found is reported, one message each, naming the field.
    pub fn with_overrides(file: PricingFile) -> Result<Pricing, Vec<String>> {
        let mut problems = Vec::new();
        let mut pricing = Pricing::builtin();

        for (name, price) in file.models {
            if name.trim().is_empty() {
                problems.push("pricing.models: a model name must not be empty".to_string());
                continue;
            }
            let before = problems.len();
            check_price(&mut problems, &format!("pricing.models.{name:?}.input_per_million"), price.input_per_million);
            check_price(&mut problems, &format!("pricing.models.{name:?}.output_per_million"), price.output_per_million);
            if problems.len() == before {
                pricing.models.insert(name, price);
            }
        }

        if let Some(currency) = &file.currency
            && !valid_currency(currency)
        {
            problems.push(format!("pricing.currency must be 1 to 8 uppercase letters or digits, like \"EUR\", got {currency:?}"));
        }

        if let Some(per_usd) = file.per_usd {
            if !per_usd.is_finite() {
                problems.push(format!("pricing.per_usd must be a finite number, got {per_usd}"));
            } else if per_usd <= 0.0 {
                problems.push(format!("pricing.per_usd must be greater than zero, got {per_usd}"));
            }
        }

        // A rate without its currency (or the reverse) would label converted amounts with
        // the wrong unit.
        let currency = file.currency.unwrap_or_else(|| USD.to_string());
        match file.per_usd {
            None if currency != USD => {
                problems.push(format!("pricing.per_usd must be set when pricing.currency is {currency:?} (units of {currency} per 1 USD)"))
            }
            Some(per_usd) if currency == USD && per_usd != 1.0 => problems.push(format!(
                "pricing.per_usd is {per_usd} but the currency is USD; set pricing.currency to the currency this rate converts to"
            )),
            _ => {}
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        pricing.currency = currency;
        pricing.per_usd = file.per_usd.unwrap_or(1.0);
        Ok(pricing)
    }

    /// All known prices, by model name.
    pub fn models(&self) -> &BTreeMap<String, Price> {
        &self.models
    }

    /// The price for `model`: the exact name if known, else the longest known name that
    /// `model` starts with followed by '-' (so dated snapshots like "gpt-4.1-2025-04-14"
    /// find "gpt-4.1", while "gpt-4.1-mini" finds its own entry).
    pub fn price(&self, model: &str) -> Option<&Price> {
        if let Some(price) = self.models.get(model) {
            return Some(price);
        }
        self.models
            .iter()
            .filter(|(name, _)| model.strip_prefix(name.as_str()).is_some_and(|rest| rest.starts_with('-')))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, price)| price)
    }

    /// Cost in USD of one request's tokens, or None for a model without a price.
    pub fn cost_usd(&self, model: &str, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        let price = self.price(model)?;
        Some(prompt_tokens as f64 * price.input_per_million / 1e6 + completion_tokens as f64 * price.output_per_million / 1e6)
    }

    /// `usd` converted to the display currency.
    pub fn in_currency(&self, usd: f64) -> f64 {
        usd * self.per_usd
    }
}

fn check_price(problems: &mut Vec<String>, field: &str, value: f64) {
    if !value.is_finite() {
        problems.push(format!("{field} must be a finite number, got {value}"));
    } else if value < 0.0 {
        problems.push(format!("{field} must be zero or more, got {value}"));
    }
}

fn valid_currency(code: &str) -> bool {
    (1..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MILLION: u64 = 1_000_000;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn file(toml_text: &str) -> PricingFile {
        toml::from_str(toml_text).expect("pricing table parses")
    }

    fn problems(toml_text: &str) -> Vec<String> {
        Pricing::with_overrides(file(toml_text)).expect_err("overrides are rejected")
    }

    #[test]
    fn a_million_output_tokens_cost_the_list_price() {
        let p = Pricing::builtin();
        for (model, usd) in [("gpt-4.1", 8.00), ("claude-sonnet-4.5", 15.00), ("gemini-2.5-flash", 2.50), ("deepseek-v3.2", 0.42)] {
            let cost = p.cost_usd(model, 0, MILLION).unwrap();
            assert!(close(cost, usd), "{model}: {cost} != {usd}");
        }
    }

    #[test]
    fn input_and_output_tokens_add_up() {
        let p = Pricing::builtin();
        // 500k in at 2.00 + 250k out at 8.00 = 1.00 + 2.00
        assert!(close(p.cost_usd("gpt-4.1", 500_000, 250_000).unwrap(), 3.00));
        assert!(close(p.cost_usd("gpt-4.1-mini", MILLION, MILLION).unwrap(), 2.00));
        assert_eq!(p.cost_usd("gpt-4.1", 0, 0), Some(0.0));
    }

    #[test]
    fn builtin_is_in_usd() {
        let p = Pricing::builtin();
        assert_eq!(p.currency, "USD");
        assert_eq!(p.per_usd, 1.0);
        assert_eq!(p.in_currency(8.0), 8.0);
        assert_eq!(p.models().len(), 5);
    }

    #[test]
    fn converts_to_the_display_currency() {
        // The rate is the docs' example figure, not a market rate.
        let p = Pricing::with_overrides(file("currency = \"JPY\"\nper_usd = 7.3\n")).unwrap();
        assert_eq!(p.currency, "JPY");
        assert!(close(p.in_currency(8.00), 58.4));
        assert!(close(p.in_currency(p.cost_usd("gpt-4.1", 0, MILLION).unwrap()), 58.4));
    }

    #[test]
    fn dated_snapshot_finds_its_base_model() {
        let p = Pricing::builtin();
        assert_eq!(p.price("gpt-4.1-2025-04-14"), p.price("gpt-4.1"));
        assert_eq!(p.price("gpt-4.1-2025-04-14").unwrap().output_per_million, 8.00);
        assert_eq!(p.price("claude-sonnet-4.5-20250929").unwrap().output_per_million, 15.00);
    }

    #[test]
    fn longest_prefix_wins() {
        let p = Pricing::builtin();
        assert_eq!(p.price("gpt-4.1-mini").unwrap().output_per_million, 1.60);
        assert_eq!(p.price("gpt-4.1-mini-2025-04-14").unwrap().output_per_million, 1.60);
    }

    #[test]
    fn prefix_must_end_at_a_dash() {
        let p = Pricing::builtin();
        assert_eq!(p.price("gpt-4.10"), None);
        assert_eq!(p.price("gpt-4.1mini"), None);
        assert_eq!(p.price("gpt-4"), None);
    }

    #[test]
    fn unknown_model_has_no_price() {
        let p = Pricing::builtin();
        assert_eq!(p.price("llama-3-70b"), None);
        assert_eq!(p.price(""), None);
        assert_eq!(p.price("GPT-4.1"), None);
        assert_eq!(p.cost_usd("llama-3-70b", 10, 10), None);
    }

    #[test]
    fn overrides_replace_and_extend_builtin() {
        let p = Pricing::with_overrides(file(
            r#"
            models."gpt-4.1" = { input_per_million = 1.0, output_per_million = 4.0 }
            models."my-finetune" = { input_per_million = 0, output_per_million = 0.5 }
            "#,
        ))
        .unwrap();
        assert_eq!(p.price("gpt-4.1").unwrap(), &Price { input_per_million: 1.0, output_per_million: 4.0 });
        assert_eq!(p.price("gpt-4.1-2025-04-14").unwrap().output_per_million, 4.0);
        assert!(close(p.cost_usd("my-finetune-v2", 0, MILLION).unwrap(), 0.5));
        assert_eq!(p.price("claude-sonnet-4.5").unwrap().output_per_million, 15.00);
        assert_eq!(p.currency, "USD");
        assert_eq!(p.per_usd, 1.0);
    }

    #[test]
    fn an_empty_table_is_the_builtin() {
        assert_eq!(Pricing::with_overrides(PricingFile::default()).unwrap(), Pricing::builtin());
        assert_eq!(Pricing::with_overrides(file("")).unwrap(), Pricing::builtin());
    }

    #[test]
    fn negative_price_is_named() {
        let all = problems(r#"models."gpt-4.1" = { input_per_million = 2.0, output_per_million = -1 }"#);
        assert_eq!(all, vec![r#"pricing.models."gpt-4.1".output_per_million must be zero or more, got -1"#]);
    }

    #[test]
    fn every_problem_is_reported() {
        let all = problems(
            r#"
            currency = "eur"
            per_usd = 0
            models.a = { input_per_million = -0.5, output_per_million = nan }
            models.b = { input_per_million = inf, output_per_million = 1 }
            "#,
        );
        assert_eq!(
            all,
            vec![
                r#"pricing.models."a".input_per_million must be zero or more, got -0.5"#,
                r#"pricing.models."a".output_per_million must be a finite number, got NaN"#,
                r#"pricing.models."b".input_per_million must be a finite number, got inf"#,
                r#"pricing.currency must be 1 to 8 uppercase letters or digits, like "EUR", got "eur""#,
                "pricing.per_usd must be greater than zero, got 0",
            ]
        );
    }

    #[test]
    fn currency_codes() {
        for ok in ["EUR", "JPY", "USDC", "X", "ABCDEFGH"] {
            assert!(valid_currency(ok), "{ok}");
        }
        for bad in ["", "usd", "Eur", "ABCDEFGHI", "€", "US D"] {
            assert!(!valid_currency(bad), "{bad}");
        }
    }

    #[test]
    fn per_usd_must_be_finite() {
        assert_eq!(problems("currency = \"EUR\"\nper_usd = inf"), vec!["pricing.per_usd must be a finite number, got inf"]);
        assert_eq!(problems("currency = \"EUR\"\nper_usd = -0.9"), vec!["pricing.per_usd must be greater than zero, got -0.9"]);
    }

    #[test]
    fn currency_and_rate_go_together() {
        assert_eq!(
            problems("currency = \"EUR\""),
            vec![r#"pricing.per_usd must be set when pricing.currency is "EUR" (units of EUR per 1 USD)"#]
        );
        assert_eq!(
            problems("per_usd = 0.86"),
            vec!["pricing.per_usd is 0.86 but the currency is USD; set pricing.currency to the currency this rate converts to"]
        );
        assert!(Pricing::with_overrides(file("currency = \"USD\"\nper_usd = 1.0")).is_ok());
    }

    #[test]
    fn empty_model_name_is_rejected() {
        assert_eq!(
            problems(r#"models."" = { input_per_million = 1, output_per_million = 1 }"#),
            vec!["pricing.models: a model name must not be empty"]
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(toml::from_str::<PricingFile>("currencies = \"EUR\"").is_err());
        assert!(toml::from_str::<PricingFile>(r#"models.a = { input_per_million = 1, output_per_million = 1, cached = 0.1 }"#).is_err());
        assert!(toml::from_str::<PricingFile>(r#"models.a = { input_per_million = 1 }"#).is_err());
    }

    #[test]
    fn price_round_trips_through_json() {
        let price = Price { input_per_million: 0.28, output_per_million: 0.42 };
        let json = serde_json::to_string(&price).unwrap();
        assert_eq!(json, r#"{"input_per_million":0.28,"output_per_million":0.42}"#);
        assert_eq!(serde_json::from_str::<Price>(&json).unwrap(), price);
    }
}
