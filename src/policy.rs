//! Egress policy: what each partner may receive. A CERT shares an event
//! only up to the partner's TLP level, and an n6 `restriction` only when the
//! partner is allowed it; an event above either is withheld from that
//! partner (counted and logged by the gateway, never with its contents).
//!
//! The policy is pure: [`Policy::admits`] looks at one event and answers.

use std::fmt;

use crate::config::PartnerConfig;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::formats::n6;

/// A Traffic Light Protocol level, ordered from most to least shareable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tlp {
    /// Shareable without limit.
    White,
    /// Shareable within the community.
    Green,
    /// Shareable within the recipient's organisation, need to know.
    Amber,
    /// Not shareable beyond the recipients named.
    Red,
}

impl Tlp {
    /// Every level, in order, for messages that list them.
    pub const ALL: [Tlp; 4] = [Tlp::White, Tlp::Green, Tlp::Amber, Tlp::Red];

    /// The level of IntelMQ's `tlp` text (`WHITE`, `GREEN`, `AMBER`, `RED`;
    /// case-insensitive in the configuration).
    pub fn parse(text: &str) -> Option<Tlp> {
        Tlp::ALL
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(text))
    }

    /// The level's name as IntelMQ writes it.
    pub fn name(self) -> &'static str {
        match self {
            Tlp::White => "WHITE",
            Tlp::Green => "GREEN",
            Tlp::Amber => "AMBER",
            Tlp::Red => "RED",
        }
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The level a partner may receive unless its configuration says otherwise.
pub const DEFAULT_MAX_TLP: Tlp = Tlp::Amber;
/// The level assumed for an event without `tlp` unless configured.
pub const DEFAULT_TLP: Tlp = Tlp::Amber;
/// The n6 restrictions a partner may receive unless configured: `internal`
/// never leaves unless a partner is given it explicitly.
pub const DEFAULT_N6_RESTRICTIONS: [&str; 2] = ["public", "need-to-know"];

/// Why an event was withheld from a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The event's TLP level (or the default for one without) is above the
    /// partner's maximum.
    Tlp(Tlp),
    /// The event's n6 restriction is not one the partner may receive.
    Restriction(String),
}

impl Refusal {
    /// The metric label of this kind of refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Tlp(_) => "tlp",
            Refusal::Restriction(_) => "restriction",
        }
    }

    /// The level or restriction that was refused (no event content).
    pub fn level(&self) -> &str {
        match self {
            Refusal::Tlp(level) => level.name(),
            Refusal::Restriction(restriction) => restriction,
        }
    }
}

/// One partner's egress policy, checked at start from its configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    max_tlp: Tlp,
    default_tlp: Tlp,
    n6_restrictions: Vec<String>,
    /// Whether the partner reads n6, so the restriction its encoder would
    /// write is judged too.
    n6_partner: bool,
}

impl Policy {
    /// The policy of `partner`; errors name the key under `key`
    /// (`partners[1].max_tlp: "PURPLE" is not a TLP level ...`).
    pub fn from_config(key: &str, partner: &PartnerConfig) -> Result<Self> {
        let level = |field: &str, value: &Option<String>, default: Tlp| match value {
            None => Ok(default),
            Some(text) => Tlp::parse(text).ok_or_else(|| {
                Error::Config(format!(
                    "{key}.{field}: {text:?} is not a TLP level (WHITE, GREEN, AMBER, RED)"
                ))
            }),
        };
        let restrictions = match &partner.n6_restrictions {
            None => DEFAULT_N6_RESTRICTIONS.map(str::to_owned).to_vec(),
            Some(list) => list.clone(),
        };
        let tables = n6::mapping::Tables::get();
        for (i, restriction) in restrictions.iter().enumerate() {
            if tables.tlp_of(restriction).is_none() {
                return Err(Error::Config(format!(
                    "{key}.n6_restrictions[{i}]: {restriction:?} is not an n6 restriction (public, need-to-know, internal)"
                )));
            }
        }
        Ok(Policy {
            max_tlp: level("max_tlp", &partner.max_tlp, DEFAULT_MAX_TLP)?,
            default_tlp: level("default_tlp", &partner.default_tlp, DEFAULT_TLP)?,
            n6_restrictions: restrictions,
            n6_partner: partner.format == n6::NAME,
        })
    }

    /// Whether the partner may receive `event`, and if not, why.
    ///
    /// A `tlp` that is not a known level (the harmonization refuses such
    /// values, so only a bug could bring one) counts as RED: unknown means
    /// not shared.
    pub fn admits(&self, event: &Event) -> std::result::Result<(), Refusal> {
        let tlp = match event.get_str("tlp") {
            None => self.default_tlp,
            Some(text) => Tlp::parse(text).unwrap_or(Tlp::Red),
        };
        if tlp > self.max_tlp {
            return Err(Refusal::Tlp(tlp));
        }
        let explicit = event.get_str(&format!("{}restriction", n6::EXTRA_PREFIX));
        let written = self.n6_partner.then(|| n6::restriction(event));
        for restriction in explicit.into_iter().chain(written) {
            if !self.n6_restrictions.iter().any(|r| r == restriction) {
                return Err(Refusal::Restriction(restriction.to_owned()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::formats::Registry;
    use crate::harmonization::{Harmonization, MessageType};
    use serde_json::json;

    fn policy(format: &str, settings: &str) -> Result<Policy> {
        let text = format!(
            "origin = \"a\"\n[[partners]]\nname = \"p\"\nformat = \"{format}\"\ntransport = \"file\"\npath = \"-\"\n{settings}"
        );
        let config = Config::parse(&text, &Registry::standard())?;
        Policy::from_config("partners[0]", &config.partners[0])
    }

    fn event(fields: serde_json::Value) -> Event {
        let serde_json::Value::Object(map) = fields else {
            panic!("{fields}")
        };
        Event::from_fields(MessageType::Event, map, Harmonization::intelmq()).unwrap()
    }

    #[test]
    fn levels_are_ordered_and_parsed() {
        assert!(Tlp::White < Tlp::Green && Tlp::Green < Tlp::Amber && Tlp::Amber < Tlp::Red);
        assert_eq!(Tlp::parse("amber"), Some(Tlp::Amber));
        assert_eq!(Tlp::parse("PURPLE"), None);
    }

    #[test]
    fn defaults_allow_up_to_amber() {
        let policy = policy("intelmq", "").unwrap();
        for tlp in ["WHITE", "GREEN", "AMBER"] {
            assert_eq!(policy.admits(&event(json!({"tlp": tlp}))), Ok(()));
        }
        assert_eq!(
            policy.admits(&event(json!({"tlp": "RED"}))),
            Err(Refusal::Tlp(Tlp::Red))
        );
        assert_eq!(policy.admits(&event(json!({}))), Ok(()));
    }

    #[test]
    fn the_default_tlp_applies_to_events_without_one() {
        let policy = policy("intelmq", "max_tlp = \"GREEN\"").unwrap();
        assert_eq!(
            policy.admits(&event(json!({}))),
            Err(Refusal::Tlp(Tlp::Amber))
        );
        let policy = policy_with("max_tlp = \"GREEN\"\ndefault_tlp = \"WHITE\"");
        assert_eq!(policy.admits(&event(json!({}))), Ok(()));
        assert_eq!(
            policy.admits(&event(json!({"tlp": "AMBER"}))),
            Err(Refusal::Tlp(Tlp::Amber))
        );
    }

    fn policy_with(settings: &str) -> Policy {
        policy("intelmq", settings).unwrap()
    }

    #[test]
    fn an_explicit_internal_restriction_never_leaves_unless_listed() {
        let internal = event(json!({"tlp": "WHITE", "extra.n6.restriction": "internal"}));
        let refused = Err(Refusal::Restriction("internal".into()));
        assert_eq!(policy_with("").admits(&internal), refused);
        let allowed = policy_with("n6_restrictions = [\"public\", \"need-to-know\", \"internal\"]");
        assert_eq!(allowed.admits(&internal), Ok(()));
    }

    #[test]
    fn an_n6_partner_is_judged_by_the_restriction_it_would_receive() {
        // RED maps to `internal`; with max_tlp RED only the restriction stops it.
        let red = event(json!({"tlp": "RED"}));
        let n6 = policy("n6", "max_tlp = \"RED\"").unwrap();
        assert_eq!(
            n6.admits(&red),
            Err(Refusal::Restriction("internal".into()))
        );
        let intelmq = policy("intelmq", "max_tlp = \"RED\"").unwrap();
        assert_eq!(intelmq.admits(&red), Ok(()));
        let public_only = policy("n6", "n6_restrictions = [\"public\"]").unwrap();
        assert_eq!(
            public_only.admits(&event(json!({"tlp": "GREEN"}))),
            Err(Refusal::Restriction("need-to-know".into()))
        );
        assert_eq!(public_only.admits(&event(json!({"tlp": "WHITE"}))), Ok(()));
    }

    #[test]
    fn errors_name_the_key() {
        let error = policy("intelmq", "max_tlp = \"PURPLE\"")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(r#"partners[0].max_tlp: "PURPLE" is not a TLP level"#),
            "{error}"
        );
        let error = policy("intelmq", "default_tlp = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("partners[0].default_tlp"), "{error}");
        let error = policy("intelmq", "n6_restrictions = [\"public\", \"secret\"]")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(r#"partners[0].n6_restrictions[1]: "secret" is not an n6 restriction"#),
            "{error}"
        );
    }
}
