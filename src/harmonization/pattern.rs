//! The `regex`/`iregex` constraints of harmonization fields, as IntelMQ's
//! `re.search` applies them: does the value's text contain a match?
//!
//! Every checked value of such a field is searched, so the pattern is built
//! once into a dense DFA and searched directly: a regex's general searcher
//! (its cache pool and strategy choice) costs more than these short,
//! anchored patterns take to run.

use std::error::Error;
use std::fmt;

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson::NFA;
use regex_automata::{Anchored, Input};

/// A field's pattern, ready to be searched for.
pub struct Pattern {
    /// The pattern as written (with `(?i)` for an `iregex`), for messages.
    source: String,
    dfa: dense::DFA<Vec<u32>>,
    /// Whether every match starts at the beginning (`^...`): the search
    /// then starts there alone, and the DFA is built for that start only,
    /// which is much the smaller and quicker to build.
    anchored: Anchored,
}

impl Pattern {
    /// Compiles `source` (Rust `regex` syntax, which covers what IntelMQ's
    /// patterns use).
    pub fn new(source: String) -> Result<Self, String> {
        let nfa = NFA::new(&source).map_err(|error| with_causes(&error))?;
        let (start, anchored) = match nfa.is_always_start_anchored() {
            true => (StartKind::Anchored, Anchored::Yes),
            false => (StartKind::Unanchored, Anchored::No),
        };
        let dfa = dense::Builder::new()
            .configure(dense::Config::new().start_kind(start))
            .build_from_nfa(&nfa)
            .map_err(|error| with_causes(&error))?;
        Ok(Pattern {
            source,
            dfa,
            anchored,
        })
    }

    /// Whether `text` contains a match anywhere, as `re.search` asks.
    pub fn is_match(&self, text: &str) -> bool {
        let input = Input::new(text).earliest(true).anchored(self.anchored);
        // The DFA has no quit bytes and supports this start, so its search
        // cannot fail.
        matches!(self.dfa.try_search_fwd(&input), Ok(Some(_)))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// An error's text followed by its causes': the DFA builder's own text
/// ("error parsing regex") leaves the problem to its cause.
fn with_causes(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

impl fmt::Debug for Pattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("Pattern")
            .field(&self.source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(source: &str) -> Pattern {
        Pattern::new(source.to_owned()).unwrap()
    }

    #[test]
    fn matches_as_re_search_does() {
        // Unanchored unless the pattern anchors itself.
        assert!(pattern("b+").is_match("abbc"));
        assert!(!pattern("^b+").is_match("abbc"));
        assert!(pattern("^a|c$").is_match("abbc"));
        assert!(pattern("(?m)^b").is_match("a\nb"));
        let fqdn = pattern(r"^.*[^\.]$");
        assert!(fqdn.is_match("example.com"));
        assert!(fqdn.is_match("ünï.例え"));
        assert!(!fqdn.is_match("example.com."));
        let cc = pattern("^[a-zA-Z0-9]{2}$");
        assert!(cc.is_match("PL"));
        assert!(!cc.is_match("POL"));
        assert!(!cc.is_match("P"));
        let printable = pattern("^[ -~]+$");
        assert!(printable.is_match("gozi v2"));
        assert!(!printable.is_match("gozi\tv2"));
        assert!(!printable.is_match("é"));
    }

    #[test]
    fn iregex_ignores_case() {
        let transport = pattern("(?i)^(tcp|udp|nvp(-ii)?)$");
        for text in ["tcp", "UDP", "Nvp-II", "nvp"] {
            assert!(transport.is_match(text), "{text}");
        }
        for text in ["tcpx", "nvp-", ""] {
            assert!(!transport.is_match(text), "{text}");
        }
    }

    #[test]
    fn a_bad_pattern_is_an_error_naming_the_problem() {
        let error = Pattern::new("^(unclosed".to_owned()).unwrap_err();
        assert!(error.contains("unclosed"), "{error}");
        assert_eq!(pattern("^a$").as_str(), "^a$");
    }
}
