//! n6 adapter throughput, both directions, on the valid fixtures repeated
//! to about 10,000 n6 events.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use intelmq_bridge::envelope::Envelope;
use intelmq_bridge::formats::n6::N6;
use intelmq_bridge::formats::{DecodeContext, EncodeContext, Format};
use serde_json::Value;

const EVENTS: usize = 10_000;

fn fixtures() -> Vec<Value> {
    let one: Vec<Value> = common::fixtures("fixtures/n6/valid")
        .into_iter()
        .map(|(_, message)| message)
        .collect();
    one.iter().cycle().take(EVENTS).cloned().collect()
}

fn bench(c: &mut Criterion) {
    let messages = fixtures();
    let decode_context = DecodeContext::new("bench");
    let encode_context = EncodeContext::new("bench");
    let groups: Vec<Vec<Envelope>> = messages
        .iter()
        .map(|m| N6.decode(m.clone(), &decode_context).unwrap())
        .collect();
    let envelopes: usize = groups.iter().map(Vec::len).sum();

    let mut group = c.benchmark_group("n6");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("decode n6 events", |b| {
        b.iter_batched(
            || messages.clone(),
            |messages| {
                for message in messages {
                    black_box(N6.decode(message, &decode_context).unwrap());
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.throughput(Throughput::Elements(envelopes as u64));
    group.bench_function("encode IntelMQ events", |b| {
        b.iter(|| {
            for events in &groups {
                black_box(N6.encode(events, &encode_context).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
