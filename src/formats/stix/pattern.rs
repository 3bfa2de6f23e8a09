//! The simple STIX patterns feeds use for IoCs: equality comparisons joined
//! by `AND`, inside one observation (`[a = 'x' AND b = 'y']`) or across
//! observations (`[a = 'x'] AND [b = 'y']`). Anything richer (`OR`,
//! `FOLLOWEDBY`, other operators, qualifiers) is not simple: the caller then
//! keeps the pattern as it is and derives no fields from it.

/// One `path = value` comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The object path with quotes removed, e.g. `file:hashes.SHA-256`.
    pub path: String,
    /// The literal: a string's text, or a number as written.
    pub value: String,
}

/// The comparisons of a simple pattern, or `None` when it is not simple.
pub fn parse(pattern: &str) -> Option<Vec<Comparison>> {
    let mut parser = Parser {
        chars: pattern.chars().collect(),
        at: 0,
    };
    let mut comparisons = Vec::new();
    loop {
        parser.expect('[')?;
        loop {
            comparisons.push(parser.comparison()?);
            if parser.keyword("AND") {
                continue;
            }
            break;
        }
        parser.expect(']')?;
        if parser.keyword("AND") {
            continue;
        }
        parser.skip_space();
        return (parser.at == parser.chars.len()).then_some(comparisons);
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn expect(&mut self, wanted: char) -> Option<()> {
        self.skip_space();
        (self.peek()? == wanted).then(|| self.at += 1)
    }

    /// Consumes `word` when it comes next as a whole word.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_space();
        let end = self.at + word.len();
        let matches = self.chars.get(self.at..end).is_some_and(|next| {
            next.iter().copied().eq(word.chars())
                && self
                    .chars
                    .get(end)
                    .is_none_or(|c| c.is_whitespace() || *c == '[')
        });
        if matches {
            self.at = end;
        }
        matches
    }

    /// A quoted string after its opening quote, with `\'` and `\\` escapes.
    fn quoted(&mut self) -> Option<String> {
        let mut text = String::new();
        loop {
            match self.peek()? {
                '\\' => {
                    self.at += 1;
                    text.push(self.peek()?);
                }
                '\'' => {
                    self.at += 1;
                    return Some(text);
                }
                other => text.push(other),
            }
            self.at += 1;
        }
    }

    fn comparison(&mut self) -> Option<Comparison> {
        self.skip_space();
        let mut path = String::new();
        while let Some(next) = self.peek() {
            match next {
                '\'' => {
                    self.at += 1;
                    path.push_str(&self.quoted()?);
                }
                c if c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '_' | '*') => {
                    path.push(c);
                    self.at += 1;
                }
                '[' | ']' => {
                    // list indexes such as protocols[*]
                    path.push(next);
                    self.at += 1;
                    if next == ']' && !path.contains('[') {
                        return None;
                    }
                }
                _ => break,
            }
        }
        if !path.contains(':') {
            return None;
        }
        self.expect('=')?;
        self.skip_space();
        let value = match self.peek()? {
            '\'' => {
                self.at += 1;
                self.quoted()?
            }
            _ => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '.')
                {
                    self.at += 1;
                }
                let number: String = self.chars.get(start..self.at)?.iter().collect();
                if number.is_empty() {
                    return None;
                }
                number
            }
        };
        Some(Comparison { path, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(pattern: &str) -> Option<Vec<(String, String)>> {
        parse(pattern).map(|list| list.into_iter().map(|c| (c.path, c.value)).collect())
    }

    #[test]
    fn simple_forms_are_read() {
        assert_eq!(
            pairs("[ipv4-addr:value = '10.0.0.0']").unwrap(),
            [("ipv4-addr:value".into(), "10.0.0.0".into())]
        );
        assert_eq!(
            pairs("[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '5.6.7.8' AND network-traffic:dst_port = '5678']")
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            pairs("[file:hashes.'SHA-256' = 'ab'] AND [url:value = 'http://x/it\\'s']").unwrap(),
            [
                ("file:hashes.SHA-256".into(), "ab".into()),
                ("url:value".into(), "http://x/it's".into())
            ]
        );
        assert_eq!(
            pairs("[network-traffic:dst_port = 22]").unwrap(),
            [("network-traffic:dst_port".into(), "22".into())]
        );
        assert_eq!(
            pairs("[network-traffic:protocols[*] = 'tcp']").unwrap(),
            [("network-traffic:protocols[*]".into(), "tcp".into())]
        );
    }

    #[test]
    fn richer_patterns_are_not_simple() {
        for pattern in [
            "[ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value = '1.2.3.5']",
            "[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [url:value = 'x']",
            "[ipv4-addr:value != '1.2.3.4']",
            "[ipv4-addr:value ISSUBSET '10.0.0.0/8']",
            "[url:value = 'x'] WITHIN 5 SECONDS",
            "([url:value = 'x'])",
            "[url:value = 'unterminated]",
            "",
        ] {
            assert_eq!(parse(pattern), None, "{pattern}");
        }
    }
}
