//! JSON documents as rows: a webhook payload, or one document of a JSON export. A field is a
//! JSON pointer (RFC 6901, `/ticket/state`) or a name under `[json.select]`; only the keys the
//! mapping uses are read, so a large payload costs what the mapping needs.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::mapping::{Mapping, Select};
use super::source::Record;

/// Reads rows out of JSON documents for one mapping.
#[derive(Debug, Clone)]
pub struct JsonRows {
    keys: Vec<String>,
    select: BTreeMap<String, Select>,
}

/// A scalar as text: strings as they are, numbers and booleans written out; null, objects and
/// arrays have no text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

impl JsonRows {
    /// The reader of `mapping`'s fields (`columns`: the keys it refers to).
    pub fn new(mapping: &Mapping, columns: Vec<String>) -> JsonRows {
        JsonRows {
            keys: columns,
            select: mapping.json.select.clone(),
        }
    }

    /// The row of one document.
    pub fn record(&self, row: u64, doc: &Value) -> Record {
        let mut values = HashMap::with_capacity(self.keys.len());
        for key in &self.keys {
            let v = if key.starts_with('/') {
                doc.pointer(key).and_then(text)
            } else {
                self.select.get(key).and_then(|s| selected(doc, s))
            };
            if let Some(v) = v {
                values.insert(key.clone(), v);
            }
        }
        Record::from_map(row, values)
    }
}

/// The value a `[json.select]` entry chooses in `doc`.
fn selected(doc: &Value, s: &Select) -> Option<String> {
    if let Some(p) = &s.present
        && doc.pointer(p).and_then(text).is_none()
    {
        return None;
    }
    let equals = |base: &Value, (k, want): (&String, &String)| {
        base.pointer(k).and_then(text).as_deref() == Some(want.as_str())
    };
    if s.unless.iter().any(|kv| equals(doc, kv)) {
        return None;
    }
    let Some(array) = &s.array else {
        if !s.matching.iter().all(|kv| equals(doc, kv)) {
            return None;
        }
        return doc.pointer(&s.value).and_then(text);
    };
    doc.pointer(array)?
        .as_array()?
        .iter()
        .find(|e| s.matching.iter().all(|kv| equals(e, kv)))
        .and_then(|e| e.pointer(&s.value))
        .and_then(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn select(value: &str, array: Option<&str>, matching: &[(&str, &str)]) -> Select {
        Select {
            value: value.into(),
            array: array.map(Into::into),
            matching: matching
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            present: None,
            unless: BTreeMap::new(),
        }
    }

    #[test]
    fn pointers_and_selections_read_what_the_mapping_names() {
        let doc = json!({
            "item": {"id": 7, "status": {"id": 2, "name": "Processing (assigned)"},
                     "urgent": true, "nothing": null,
                     "team": [{"type": "User", "role": "requester", "name": "ann"},
                              {"type": "Group", "role": "assigned", "name": "Network"},
                              {"type": "User", "role": "assigned", "name": "bob"}]},
            "a~b": {"c/d": "escaped"}
        });
        let mut rows = JsonRows {
            keys: vec![
                "/item/id".into(),
                "/item/status/name".into(),
                "/item/urgent".into(),
                "/item/nothing".into(),
                "/item/team".into(),
                "/a~0b/c~1d".into(),
                "/missing".into(),
                "group".into(),
                "agent".into(),
                "nobody".into(),
            ],
            select: BTreeMap::new(),
        };
        rows.select.insert(
            "group".into(),
            select(
                "/name",
                Some("/item/team"),
                &[("/type", "Group"), ("/role", "assigned")],
            ),
        );
        rows.select.insert(
            "agent".into(),
            select(
                "/name",
                Some("/item/team"),
                &[("/type", "User"), ("/role", "assigned")],
            ),
        );
        rows.select.insert(
            "nobody".into(),
            select("/name", Some("/item/team"), &[("/role", "observer")]),
        );
        let r = rows.record(3, &doc);
        assert_eq!(r.row, 3);
        assert_eq!(r.get("/item/id"), Some("7"));
        assert_eq!(r.get("/item/status/name"), Some("Processing (assigned)"));
        assert_eq!(r.get("/item/urgent"), Some("true"));
        assert_eq!(r.get("/item/nothing"), None, "null is no value");
        assert_eq!(r.get("/item/team"), None, "an array is no value");
        assert_eq!(r.get("/a~0b/c~1d"), Some("escaped"));
        assert_eq!(r.get("/missing"), None);
        assert_eq!(r.get("group"), Some("Network"));
        assert_eq!(r.get("agent"), Some("bob"));
        assert_eq!(r.get("nobody"), None);
    }

    #[test]
    fn a_selection_with_present_needs_that_value() {
        let mut s = select("/issue/fields/project/name", None, &[]);
        s.present = Some("/issue/fields/assignee/accountId".into());
        let unassigned =
            json!({"issue": {"fields": {"project": {"name": "IT"}, "assignee": null}}});
        let assigned = json!({"issue": {"fields": {"project": {"name": "IT"},
                                                   "assignee": {"accountId": "5b10"}}}});
        assert_eq!(selected(&unassigned, &s), None);
        assert_eq!(selected(&assigned, &s).as_deref(), Some("IT"));
    }

    #[test]
    fn conditions_on_the_document_choose_or_refuse_a_value() {
        let unowned = json!({"ticket": {"owner_id": 1, "group": {"name": "Service Desk"}}});
        let owned = json!({"ticket": {"owner_id": 5, "group": {"name": "Service Desk"}}});
        let mut s = select("/ticket/group/name", None, &[]);
        s.unless.insert("/ticket/owner_id".into(), "1".into());
        assert_eq!(selected(&unowned, &s), None);
        assert_eq!(selected(&owned, &s).as_deref(), Some("Service Desk"));
        let only_five = select("/ticket/group/name", None, &[("/ticket/owner_id", "5")]);
        assert_eq!(selected(&unowned, &only_five), None);
        assert_eq!(
            selected(&owned, &only_five).as_deref(),
            Some("Service Desk")
        );
    }
}
