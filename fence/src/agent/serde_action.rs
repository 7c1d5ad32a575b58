//! [`Action`] as its agent name (`"list-status"`) in recordings.

use crate::Action;
use serde::{Deserialize, Deserializer, Serializer};

/// Writes the action's name.
pub fn serialize<S: Serializer>(action: &Action, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(action.as_str())
}

/// Reads an action name.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(serde::de::Error::custom)
}
