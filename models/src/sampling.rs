//! Per-request sampling parameters and stop strings.

use candle_transformers::generation::Sampling;

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    pub max_tokens: usize,
    /// 0 means greedy.
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    /// 1.0 means none.
    pub repetition_penalty: f32,
    pub seed: u64,
    pub stop: Vec<String>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 512,
            temperature: 0.7,
            top_p: Some(0.9),
            top_k: None,
            repetition_penalty: 1.1,
            seed: 42,
            stop: Vec::new(),
        }
    }
}

impl GenerateParams {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_tokens == 0 {
            return Err("max_tokens must be at least 1".into());
        }
        if !(0.0..=5.0).contains(&self.temperature) {
            return Err("temperature must be between 0 and 5".into());
        }
        if self.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            return Err("top_p must be in (0, 1]".into());
        }
        if self.top_k == Some(0) {
            return Err("top_k must be at least 1".into());
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty <= 5.0) {
            return Err("repetition_penalty must be in (0, 5]".into());
        }
        if self.stop.len() > 8 || self.stop.iter().any(|s| s.is_empty() || s.len() > 256) {
            return Err("at most 8 stop strings, each 1 to 256 bytes".into());
        }
        Ok(())
    }

    pub(crate) fn sampling(&self) -> Sampling {
        let temperature = self.temperature;
        if temperature < 1e-6 {
            return Sampling::ArgMax;
        }
        match (self.top_k, self.top_p.filter(|p| *p < 1.0)) {
            (None, None) => Sampling::All { temperature },
            (Some(k), None) => Sampling::TopK { k, temperature },
            (None, Some(p)) => Sampling::TopP { p, temperature },
            (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
        }
    }
}

/// Watches streamed text for stop strings, holding back text that might be the start of one so
/// a stop string never reaches the client.
pub struct StopStrings {
    stops: Vec<String>,
    text: String,
    /// Bytes of `text` already handed out.
    emitted: usize,
    done: bool,
}

impl StopStrings {
    pub fn new(stops: &[String]) -> StopStrings {
        StopStrings { stops: stops.to_vec(), text: String::new(), emitted: 0, done: false }
    }

    /// Adds `piece`; returns the text safe to show now and whether a stop string was hit.
    pub fn feed(&mut self, piece: &str) -> (String, bool) {
        if self.done {
            return (String::new(), true);
        }
        self.text.push_str(piece);
        // A stop string can only end in the new text, so search from just before it.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = self.emitted.saturating_sub(longest);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let found = self.stops.iter().filter_map(|s| self.text[from..].find(s.as_str())).min();
        if let Some(at) = found.map(|i| i + from) {
            self.text.truncate(at);
            self.done = true;
            let ready = self.text.get(self.emitted..).unwrap_or_default().to_string();
            self.emitted = self.text.len();
            return (ready, true);
        }
        // Hold back the longest tail that could be the start of a stop string.
        let hold = self
            .stops
            .iter()
            .flat_map(|s| s.char_indices().skip(1).map(move |(i, _)| &s[..i]))
            .filter(|prefix| self.text.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let safe = (self.text.len() - hold).max(self.emitted);
        let ready = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        (ready, false)
    }

    /// Whatever was held back, once generation is over.
    pub fn finish(&mut self) -> String {
        let rest = self.text.get(self.emitted..).unwrap_or_default().to_string();
        self.emitted = self.text.len();
        rest
    }

    /// The whole reply, without any stop string.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, String, bool) {
        let mut s = StopStrings::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut shown = String::new();
        let mut hit = false;
        for p in pieces {
            let (ready, stopped) = s.feed(p);
            shown.push_str(&ready);
            if stopped {
                hit = true;
                break;
            }
        }
        shown.push_str(&s.finish());
        (shown, s.text().to_string(), hit)
    }

    #[test]
    fn stop_strings_split_across_pieces_never_show() {
        assert_eq!(run(&["END"], &["Hello E", "N", "D and more"]), ("Hello ".into(), "Hello ".into(), true));
        assert_eq!(run(&["END"], &["Hello E", "ND"]).0, "Hello ");
        assert_eq!(run(&["END"], &["Hello E", "x"]), ("Hello Ex".into(), "Hello Ex".into(), false));
        assert_eq!(run(&[], &["a", "b"]).0, "ab");
        assert_eq!(run(&["\n\n", "###"], &["x\n", "\ny"]).0, "x");
        assert_eq!(run(&["é!"], &["caf", "é", "!"]).0, "caf");
    }

    #[test]
    fn parameters_are_checked() {
        assert!(GenerateParams::default().validate().is_ok());
        let bad = |f: fn(&mut GenerateParams)| {
            let mut p = GenerateParams::default();
            f(&mut p);
            p.validate().is_err()
        };
        assert!(bad(|p| p.max_tokens = 0));
        assert!(bad(|p| p.temperature = -1.0));
        assert!(bad(|p| p.top_p = Some(0.0)));
        assert!(bad(|p| p.top_k = Some(0)));
        assert!(bad(|p| p.stop = vec![String::new()]));
        let greedy = GenerateParams { temperature: 0.0, ..Default::default() };
        assert!(matches!(greedy.sampling(), Sampling::ArgMax));
    }
}
