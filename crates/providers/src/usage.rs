//! Token usage of a model call and its cost from per-resource prices.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Token counts of one model call. `prompt_tokens` counts every input token, cached and
/// cache-written ones included; `completion_tokens` includes reasoning tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Input tokens (all of them).
    pub prompt_tokens: u64,
    /// Output tokens (reasoning included).
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens` unless the provider says otherwise.
    pub total_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    /// Output tokens spent on hidden reasoning.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Take every non-zero count of `other` (streams report usage in pieces).
    pub fn merge(&mut self, other: &Usage) {
        let pick = |a: &mut u64, b: u64| {
            if b != 0 {
                *a = b;
            }
        };
        pick(&mut self.prompt_tokens, other.prompt_tokens);
        pick(&mut self.completion_tokens, other.completion_tokens);
        pick(&mut self.total_tokens, other.total_tokens);
        pick(&mut self.cached_tokens, other.cached_tokens);
        pick(&mut self.cache_write_tokens, other.cache_write_tokens);
        pick(&mut self.reasoning_tokens, other.reasoning_tokens);
    }

    /// Fill in `total_tokens` when the provider did not report it.
    #[must_use]
    pub fn with_total(mut self) -> Self {
        if self.total_tokens == 0 {
            self.total_tokens = self.prompt_tokens + self.completion_tokens;
        }
        self
    }

    /// Add another call's counts (structured-output retries).
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.cached_tokens += other.cached_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
    }

    /// The op's `usage` output.
    pub fn to_json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        })
    }
}

/// Prices of one model in USD per million tokens (`pricing:` in resources.yaml).
///
/// ```yaml
/// pricing: {input_per_mtok: 0.15, output_per_mtok: 0.6, cached_input_per_mtok: 0.075, cache_write_per_mtok: 0.1875}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// Uncached input tokens.
    pub input_per_mtok: f64,
    /// Output tokens (reasoning included).
    pub output_per_mtok: f64,
    /// Input tokens read from the prompt cache (default: `input_per_mtok`).
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
    /// Input tokens written to the prompt cache (default: `input_per_mtok`).
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
}

impl Pricing {
    /// The cost in USD: `(prompt − cached − cache_write)·input + cached·cached_input +
    /// cache_write·cache_write + completion·output`, per million tokens.
    pub fn cost(&self, u: &Usage) -> f64 {
        let uncached = u.prompt_tokens.saturating_sub(u.cached_tokens).saturating_sub(u.cache_write_tokens);
        let cached_rate = self.cached_input_per_mtok.unwrap_or(self.input_per_mtok);
        let write_rate = self.cache_write_per_mtok.unwrap_or(self.input_per_mtok);
        (uncached as f64 * self.input_per_mtok
            + u.cached_tokens as f64 * cached_rate
            + u.cache_write_tokens as f64 * write_rate
            + u.completion_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_splits_cached_and_written_tokens() {
        let p = Pricing {
            input_per_mtok: 1.0,
            output_per_mtok: 4.0,
            cached_input_per_mtok: Some(0.1),
            cache_write_per_mtok: Some(1.25),
        };
        let u = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 500_000,
            cached_tokens: 200_000,
            cache_write_tokens: 100_000,
            ..Usage::default()
        };
        let expected = 0.7 + 0.02 + 0.125 + 2.0;
        assert!((p.cost(&u) - expected).abs() < 1e-9, "{}", p.cost(&u));
        let plain = Pricing {
            input_per_mtok: 0.15,
            output_per_mtok: 0.6,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
        };
        let u = Usage { prompt_tokens: 1000, completion_tokens: 100, ..Usage::default() };
        assert!((plain.cost(&u) - 0.000_21).abs() < 1e-12);
    }

    #[test]
    fn merge_keeps_earlier_counts() {
        let mut u = Usage { prompt_tokens: 10, cached_tokens: 4, ..Usage::default() };
        u.merge(&Usage { completion_tokens: 7, ..Usage::default() });
        assert_eq!(
            u.with_total(),
            Usage { prompt_tokens: 10, completion_tokens: 7, total_tokens: 17, cached_tokens: 4, ..Usage::default() }
        );
    }
}
