//! No input makes the bridge panic: every fixture of every format, mutated
//! many ways (values swapped for hostile ones, keys dropped or added, lists
//! grown and shrunk), goes through decoding by shape and encoding into every
//! format. Errors are fine; a panic fails the test.

mod common;

use intelmq_bridge::envelope::WireForm;
use intelmq_bridge::formats::{DecodeContext, EncodeContext, Registry};
use intelmq_bridge::pipeline::{Output, Translator};
use serde_json::{json, Value};

/// Mutations per fixture.
const ROUNDS: usize = 40;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn hostile(dice: &mut Dice) -> Value {
    let choices = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(1.5e308),
        json!(""),
        json!("x".repeat(5000)),
        json!("999.1.1.1"),
        json!("::"),
        json!("2026-13-40T99:99:99Z"),
        json!("\u{0}\u{202e}"),
        json!([]),
        json!({}),
        json!([{}]),
        json!({"a": {"b": {"c": [1, {"d": null}]}}}),
    ];
    choices[dice.below(choices.len())].clone()
}

const KEYS: [&str; 10] = [
    "__type", "meta", "payload", "ID", "Source", "address", "objects", "id", "extra", "x",
];

fn mutate(value: Value, dice: &mut Dice) -> Value {
    match value {
        Value::Object(mut map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            match dice.below(4) {
                0 if !keys.is_empty() => {
                    let key = &keys[dice.below(keys.len())];
                    let inner = map.remove(key).unwrap_or_default();
                    map.insert(key.clone(), mutate(inner, dice));
                }
                1 if !keys.is_empty() => {
                    map.remove(&keys[dice.below(keys.len())]);
                }
                2 => {
                    map.insert(KEYS[dice.below(KEYS.len())].to_owned(), hostile(dice));
                }
                _ => {
                    for key in keys.iter().take(3) {
                        let inner = map.remove(key).unwrap_or_default();
                        map.insert(key.clone(), mutate(inner, dice));
                    }
                }
            }
            Value::Object(map)
        }
        Value::Array(mut items) => {
            match dice.below(3) {
                0 if !items.is_empty() => {
                    let at = dice.below(items.len());
                    let inner = std::mem::take(&mut items[at]);
                    items[at] = mutate(inner, dice);
                }
                1 => items.push(hostile(dice)),
                _ => {
                    items.pop();
                }
            }
            Value::Array(items)
        }
        other => match dice.below(4) {
            0 => other,
            _ => hostile(dice),
        },
    }
}

#[test]
fn mutated_messages_never_panic() {
    let registry = Registry::standard();
    let names = registry.names();
    let translators: Vec<Translator> = names
        .iter()
        .map(|name| {
            let to = registry.get(name).expect("registered");
            Translator::new(
                &registry,
                None,
                to,
                Output::Native,
                DecodeContext::new("fuzz"),
                EncodeContext::new("fuzz"),
            )
        })
        .collect();
    let mut inputs = Vec::new();
    for format in &names {
        for folder in ["valid", "sanitizable", "invalid", "from-intelmq", "foreign"] {
            let path = format!("fixtures/{format}/{folder}");
            if common::repo_path(&path).is_dir() {
                inputs.extend(common::fixtures(&path).into_iter().map(|(_, value)| value));
            }
        }
    }
    assert!(inputs.len() > 100, "fixtures found: {}", inputs.len());
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    for input in inputs {
        for _ in 0..ROUNDS {
            let mut message = input.clone();
            for _ in 0..=dice.below(3) {
                message = mutate(message, &mut dice);
            }
            for translator in &translators {
                if let Ok(events) = translator.decode(message.clone()) {
                    decoded += 1;
                    let _ = translator.encode(&events);
                }
            }
        }
    }
    // The mutations must leave some messages decodable, or encoding went untested.
    assert!(decoded > 1000, "only {decoded} mutated messages decoded");
}

#[test]
fn the_direct_intelmq_parse_agrees_with_the_value_path() {
    let registry = Registry::standard();
    let intelmq = registry.get("intelmq").expect("registered");
    let translator = Translator::new(
        &registry,
        Some(intelmq),
        intelmq,
        Output::Native,
        DecodeContext::new("fuzz"),
        EncodeContext::new("fuzz"),
    );
    // What a decoding came to: the payloads, or the error's text (ids are
    // new on every decoding, so they are left out).
    let outcome =
        |result: intelmq_bridge::error::Result<Vec<intelmq_bridge::envelope::Envelope>>| {
            result
                .map(|events| {
                    events
                        .iter()
                        .map(|event| event.to_wire(WireForm::Iep04)["payload"].clone())
                        .collect::<Vec<_>>()
                })
                .map_err(|error| error.to_string())
        };
    let mut dice = Dice(0x2545_f491_4f6c_dd1d);
    let mut compared = 0;
    for folder in ["valid", "sanitizable", "invalid"] {
        for (name, input) in common::fixtures(&format!("fixtures/intelmq/{folder}")) {
            for round in 0..ROUNDS {
                let mut message = input.clone();
                for _ in 0..round.min(1) + dice.below(3) {
                    message = mutate(message, &mut dice);
                }
                let text = message.to_string();
                assert_eq!(
                    outcome(translator.decode_text(&text)),
                    outcome(translator.decode(message)),
                    "{name}: {text}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 1000, "only {compared} compared");
}
