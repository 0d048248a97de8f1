//! The registry client's parsers of what a registry's authentication says
//! (`ocirender::source::registry::auth`): `WWW-Authenticate` challenges and the
//! token service's JSON answer.
//!
//! Input: `WWW-Authenticate` header values, then `SEPARATOR`, then a token
//! answer's body (the rest; as text, which is what an HTTP body is handed
//! over as here).
//!
//! Properties: no panic. The challenge chosen is a Bearer one with a
//! realm, or Basic; a Bearer challenge printed again (parameters quoted
//! and escaped) parses back to itself alone. A token answer is accepted
//! only when it holds a `token` or `access_token` string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender::source::registry::auth::{parse_challenges, parse_token, Challenge};
use ocirender_fuzz::split;

fuzz_target!(|data: &[u8]| {
    let pieces = split(data);
    let headers: Vec<String> = pieces[0]
        .split(|&b| b == b'\n')
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    if let Some(challenge) = parse_challenges(&headers) {
        if let Challenge::Bearer { .. } = &challenge {
            let printed = print(&challenge);
            assert_eq!(
                parse_challenges(&[&printed]),
                Some(challenge.clone()),
                "{printed:?}"
            );
        }
    }
    if let Some(body) = pieces.get(1) {
        let body = String::from_utf8_lossy(body);
        let response = ureq::Response::new(200, "OK", &body).expect("a response");
        if parse_token(response, None).is_ok() {
            assert!(body.contains("token"), "a token from {body:?}");
        }
    }
});

/// A Bearer challenge as a header value.
fn print(challenge: &Challenge) -> String {
    let Challenge::Bearer {
        realm,
        service,
        scope,
    } = challenge
    else {
        return "Basic".to_owned();
    };
    let quoted = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = format!("Bearer realm={}", quoted(realm));
    for (key, value) in [("service", service), ("scope", scope)] {
        if let Some(value) = value {
            out.push_str(&format!(",{key}={}", quoted(value)));
        }
    }
    out
}
