//! JSON events on stderr, one object a line, for programs driving a
//! pipeline: `{"event":NAME,...fields}`, the name first for people
//! reading along. Each line is one write, so events of several threads
//! (or programs sharing stderr) never mix within a line.
//!
//! ```no_run
//! use ocirender_cli::progress::JsonEvents;
//! use serde_json::json;
//! let events = JsonEvents::new();
//! events.emit("phase", json!({ "what": "building" }));
//! events.emit("done", json!({ "elapsed_ms": 41 }));
//! ```

use serde_json::Value;
use std::io::Write;

/// Writes events to stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonEvents;

impl JsonEvents {
    /// Events to stderr.
    pub fn new() -> JsonEvents {
        JsonEvents
    }

    /// Writes `{"event":EVENT,...fields}` as one line (`fields` is an
    /// object).
    pub fn emit(&self, event: &str, fields: Value) {
        let line = event_line(event, &fields);
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// `{"event":EVENT,...fields}` and a newline.
fn event_line(event: &str, fields: &Value) -> String {
    let fields = fields.to_string();
    let rest = fields.strip_prefix('{').unwrap_or("}");
    let comma = if rest == "}" { "" } else { "," };
    format!("{{\"event\":{}{comma}{rest}\n", Value::from(event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_one_object_a_line_named_first() {
        let line = event_line("bytes", &json!({ "total": null, "read": 5 }));
        assert_eq!(line, "{\"event\":\"bytes\",\"read\":5,\"total\":null}\n");
        assert_eq!(event_line("x", &json!({})), "{\"event\":\"x\"}\n");
    }
}
