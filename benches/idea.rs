//! IDEA throughput both ways, on the project's fixtures repeated to about
//! 10 000 events: decoding IDEA into events (with splitting), and encoding
//! events (and split groups) into IDEA.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use intelmq_bridge::envelope::Envelope;
use intelmq_bridge::formats::idea::Idea;
use intelmq_bridge::formats::intelmq::IntelMq;
use intelmq_bridge::formats::{DecodeContext, EncodeContext, Format};
use serde_json::Value;

const EVENTS: usize = 10_000;

/// The JSON documents of a fixture directory (an array stays one document).
fn documents(dir: &str) -> Vec<Value> {
    common::fixtures(dir)
        .into_iter()
        .map(|(_, document)| document)
        .collect()
}

fn decode_benchmark(c: &mut Criterion) {
    let context = DecodeContext::new("bench");
    let samples = documents("fixtures/idea/valid");
    let per_round: usize = samples
        .iter()
        .map(|m| Idea.decode(m.clone(), &context).unwrap().len())
        .sum();
    let rounds = EVENTS.div_ceil(per_round);
    let messages: Vec<Value> = (0..rounds).flat_map(|_| samples.iter().cloned()).collect();
    let mut group = c.benchmark_group("idea");
    group.throughput(Throughput::Elements((rounds * per_round) as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            for message in &messages {
                black_box(Idea.decode(message.clone(), &context).unwrap());
            }
        })
    });
    group.finish();
}

fn encode_benchmark(c: &mut Criterion) {
    let decode_context = DecodeContext::new("bench");
    let context = EncodeContext::new("bench");
    // Whole split groups and single events, as the pipeline hands them over:
    // an array of envelopes is one group.
    let envelope = |value: Value| match Envelope::wire_form(&value) {
        Some(_) => vec![Envelope::from_value(value, decode_context.harmonization).unwrap()],
        None => IntelMq.decode(value, &decode_context).unwrap(),
    };
    let mut batches: Vec<Vec<Envelope>> = documents("fixtures/idea/from-intelmq")
        .into_iter()
        .map(|document| match document {
            Value::Array(items) => items.into_iter().flat_map(envelope).collect(),
            other => envelope(other),
        })
        .collect();
    batches.extend(
        documents("fixtures/idea/valid")
            .into_iter()
            .map(|m| Idea.decode(m, &decode_context).unwrap()),
    );
    let per_round: usize = batches.iter().map(Vec::len).sum();
    let rounds = EVENTS.div_ceil(per_round);
    let mut group = c.benchmark_group("idea");
    group.throughput(Throughput::Elements((rounds * per_round) as u64));
    group.bench_function("encode", |b| {
        b.iter(|| {
            for _ in 0..rounds {
                for batch in &batches {
                    black_box(Idea.encode(batch, &context).unwrap());
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, decode_benchmark, encode_benchmark);
criterion_main!(benches);
