//! STIX 2.1 bundles: the controlled hand-over point to MISP, OpenCTI and
//! TAXII servers.
//!
//! - [`encode`]: one bundle per source message (a split group is merged),
//!   with the objects other tools read natively and the whole envelope in
//!   the bridge's property-extension, so nothing is lost on the way back.
//! - [`decode`]: the envelopes back from that extension, or events derived
//!   from a foreign bundle's indicators, observed-data and infrastructure.
//! - [`ids`]: deterministic STIX ids (never UUIDv7) and timestamps.
//! - [`pattern`]: the simple STIX patterns IoC feeds use.
//! - [`mapping`]: the tables of `mappings/stix/`.
//!
//! Every bundle written passes `stix2_validator --strict`; see
//! `mappings/stix/README.md` for the mapping and its choices.

pub mod decode;
pub mod encode;
pub mod ids;
pub mod mapping;
pub mod pattern;

use std::sync::LazyLock;

use serde_json::Value;

use super::{DecodeContext, EncodeContext, Format};
use crate::envelope::Envelope;
use crate::error::Result;
use crate::schema::Schema;

/// Name of this format.
pub const NAME: &str = "stix";

/// The scheme of STIX ids in `meta.uuid.alternate` (`stix:<type>--<uuid>`).
pub const ID_SCHEME: &str = "stix";

/// The `source_name` of the envelope id in `external_references`.
pub const SOURCE_NAME: &str = "intelmq-bridge";

/// The fixed id of the bridge's extension-definition, which carries the
/// envelope. A UUIDv4 chosen once (the one of the worked example in the
/// reference notes); it never changes while the extension's schema is 1.x.
pub const EXTENSION_ID: &str = "extension-definition--5979367c-0d4c-4060-a4bb-fb0f6722683b";

/// The extension-definition's `schema`: STIX allows plain text explaining
/// the definition where there is no URL to point to.
pub const EXTENSION_SCHEMA: &str = "A JSON object with \"meta\" (IEP04 meta: version, type, format, uuid {origin, id, related, group, alternate}, links, x-* extensions) and \"payload\" (the flat IntelMQ 3.x event, keys and values as in IntelMQ's harmonization), as in intelmq-bridge's schemas/envelope.schema.json.";

/// The fixed id of the bridge's own identity, creator of the extension-definition.
pub const PROJECT_IDENTITY_ID: &str = "identity--3d5c9b1e-6f0a-4c8e-9b2d-7a1f0e4c5b63";

/// `created`/`modified` of the objects that do not belong to one event
/// (the identities and the extension-definition): the release of the
/// extension's version 1.0.0, fixed so that output never depends on the clock.
pub const FIXED_CREATED: &str = "2026-01-01T00:00:00.000Z";

static BUNDLE_SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    Schema::embedded(
        "stix-bundle",
        include_str!("../../../schemas/stix-bundle.schema.json"),
    )
});

/// The shape of a STIX 2.1 bundle (`schemas/stix-bundle.schema.json`).
pub fn bundle_schema() -> &'static Schema {
    &BUNDLE_SCHEMA
}

/// The STIX 2.1 format.
pub struct Stix;

impl Format for Stix {
    fn name(&self) -> &'static str {
        NAME
    }

    /// A JSON object with `"type": "bundle"` and an `objects` list.
    fn recognises(&self, message: &Value) -> bool {
        message.get("type").and_then(Value::as_str) == Some("bundle")
            && message.get("objects").is_some_and(Value::is_array)
    }

    fn decode(&self, message: Value, context: &DecodeContext) -> Result<Vec<Envelope>> {
        bundle_schema().check(&message)?;
        decode::envelopes(&message, context)
    }

    fn encode(&self, events: &[Envelope], context: &EncodeContext) -> Result<Vec<Value>> {
        encode::bundle(events, context).map(|bundle| vec![bundle])
    }

    /// The bundle written straight from the events, without a [`Value`] tree.
    fn encode_lines(
        &self,
        events: &[Envelope],
        context: &EncodeContext,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        encode::write_bundle(events, context, out)?;
        out.push(b'\n');
        Ok(1)
    }

    fn merges_groups(&self) -> bool {
        true
    }
}
