//! Flat IntelMQ → envelope → flat IntelMQ on the shipped fixtures repeated
//! to 100,000 events: the cost of the hub itself (parse, harmonization
//! check, envelope, encode, serialise).

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use intelmq_bridge::formats::{intelmq::IntelMq, DecodeContext, EncodeContext, Format};

const EVENTS: usize = 100_000;

/// The valid IntelMQ fixtures, each as one JSON line.
fn fixture_lines() -> Vec<String> {
    common::fixtures("fixtures/intelmq/valid")
        .into_iter()
        .map(|(_, event)| event.to_string())
        .collect()
}

fn flat_round_trip(c: &mut Criterion) {
    let lines = fixture_lines();
    let input: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .cycle()
        .take(EVENTS)
        .collect();
    let decode = DecodeContext::new("bench");
    let encode = EncodeContext::new("bench");
    let mut group = c.benchmark_group("intelmq");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("flat -> envelope -> flat, 100k events", |b| {
        let mut out = Vec::with_capacity(64 << 20);
        b.iter(|| {
            out.clear();
            for line in &input {
                let value = serde_json::from_str(line).expect("fixture is JSON");
                let envelopes = IntelMq.decode(value, &decode).expect("fixture is valid");
                for message in IntelMq.encode(&envelopes, &encode).expect("encodes") {
                    serde_json::to_writer(&mut out, &message).expect("writes");
                    out.push(b'\n');
                }
            }
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, flat_round_trip);
criterion_main!(benches);
