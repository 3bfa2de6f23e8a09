//! Every IntelMQ fixture through every format and back: the envelope that
//! returns is the envelope that left, field for field and id for id; a
//! format may only add its own ids (`stix:…`) to the alternates.

mod common;

use intelmq_bridge::formats::{DecodeContext, EncodeContext, Registry};

#[test]
fn intelmq_events_survive_every_format() {
    let registry = Registry::standard();
    let intelmq = registry.get("intelmq").expect("registered");
    let decode = DecodeContext::new("cert-a");
    let encode = EncodeContext::new("cert-a");
    // Through IntelMQ itself, ids ride in extra.iep04.
    let mut carry = EncodeContext::new("cert-a");
    carry.meta_in_extra = true;
    let events = common::fixtures("fixtures/intelmq/valid");
    for format in registry.names() {
        let target = registry.get(format).expect("registered");
        for (name, event) in &events {
            let sent = intelmq
                .decode(event.clone(), &decode)
                .expect("valid fixture");
            let native = target
                .encode(&sent, &carry)
                .unwrap_or_else(|e| panic!("{name} -> {format}: {e}"));
            let mut back: Vec<intelmq_bridge::Envelope> = Vec::new();
            for message in native {
                let decoded = target
                    .decode(message, &decode)
                    .unwrap_or_else(|e| panic!("{name} -> {format} -> back: {e}"));
                back.extend(decoded);
            }
            assert_eq!(back.len(), sent.len(), "{name} through {format}");
            for (back, sent) in back.iter_mut().zip(&sent) {
                let own_scheme = format!("{format}:");
                let added: Vec<String> = back
                    .meta
                    .uuid
                    .alternates()
                    .iter()
                    .filter(|id| !sent.meta.uuid.alternates().contains(id))
                    .cloned()
                    .collect();
                assert!(
                    added.iter().all(|id| id.starts_with(&own_scheme)),
                    "{name} through {format}: {added:?}"
                );
                back.meta.uuid.alternate = sent.meta.uuid.alternate.clone();
                assert_eq!(back, sent, "{name} through {format}");
            }
            let flat = intelmq.encode(&back, &encode).expect("encodes");
            assert_eq!(flat, vec![event.clone()], "{name} through {format}, flat");
        }
    }
}
