//! The GitHub App manifest: `app-manifest/manifest.json`, embedded in the binary so the setup
//! page registers exactly what the repository says. Its URLs hold a placeholder that the
//! setup flow replaces with foreman's public URL.

use std::collections::BTreeMap;

use serde_json::Value;

/// The manifest as shipped, with [`PUBLIC_URL_PLACEHOLDER`] where foreman's URL goes.
pub const MANIFEST_JSON: &str = include_str!("../../app-manifest/manifest.json");
/// Stands for foreman's public base URL (no trailing slash) in the manifest's URLs.
pub const PUBLIC_URL_PLACEHOLDER: &str = "{{PUBLIC_URL}}";
/// Where GitHub posts webhooks (the route of [`crate::server`]).
pub const WEBHOOK_PATH: &str = "/webhooks/github";
/// The setup page.
pub const SETUP_PATH: &str = "/setup";
/// Where GitHub sends the browser back after registering the App (`?code=…&state=…`).
pub const CALLBACK_PATH: &str = "/setup/callback";
/// Events GitHub delivers to every App without a subscription (they cannot be listed in
/// `default_events`): the webhook's `ping` and the App's own installation changes.
pub const DELIVERED_WITHOUT_SUBSCRIPTION: &[&str] =
    &["ping", "installation", "installation_repositories"];
/// Longest App name GitHub accepts.
pub const MAX_APP_NAME: usize = 34;

/// The manifest as shipped. It is part of the binary, and a unit test parses it, so this
/// cannot fail at run time.
pub fn template() -> Value {
    serde_json::from_str(MANIFEST_JSON).expect("app-manifest/manifest.json is valid JSON")
}

/// The manifest to post for a foreman reached at `public_url`, named `name` (GitHub's
/// default: the manifest's own name). Every placeholder is replaced.
pub fn for_public_url(public_url: &str, name: Option<&str>) -> Value {
    let base = public_url.trim_end_matches('/');
    let mut manifest = template();
    fill(&mut manifest, base);
    if let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) {
        manifest["name"] = Value::String(name.to_owned());
    }
    manifest
}

fn fill(value: &mut Value, base: &str) {
    match value {
        Value::String(s) if s.contains(PUBLIC_URL_PLACEHOLDER) => {
            *s = s.replace(PUBLIC_URL_PLACEHOLDER, base);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| fill(v, base)),
        Value::Object(fields) => fields.values_mut().for_each(|v| fill(v, base)),
        _ => {}
    }
}

/// The webhook events the manifest subscribes to.
pub fn subscribed_events() -> Vec<String> {
    template()["default_events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The permissions the manifest asks for: name → `read` or `write`.
pub fn permissions() -> BTreeMap<String, String> {
    template()["default_permissions"]
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The manifest's default App name.
pub fn default_name() -> String {
    template()["name"].as_str().unwrap_or("foreman").to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::github::events;

    #[test]
    fn the_manifest_is_valid_and_private() {
        let manifest = template();
        assert_eq!(manifest["public"], Value::Bool(false));
        assert_eq!(manifest["hook_attributes"]["active"], Value::Bool(true));
        assert!(!default_name().is_empty() && default_name().len() <= MAX_APP_NAME);
    }

    /// "Handled" is what `events::parse` reads into a typed event: the handlers of some of
    /// them (reviews, checks, workflow runs) are still being written, but an event foreman
    /// parses is one it means to act on, and one it does not parse it can never act on.
    #[test]
    fn subscribed_events_are_exactly_the_parsed_ones() {
        let parsed: BTreeSet<String> = events::parsed_events()
            .filter(|e| !DELIVERED_WITHOUT_SUBSCRIPTION.contains(e))
            .map(str::to_owned)
            .collect();
        let subscribed: BTreeSet<String> = subscribed_events().into_iter().collect();
        let unsubscribed: Vec<_> = parsed.difference(&subscribed).collect();
        let unparsed: Vec<_> = subscribed.difference(&parsed).collect();
        assert!(
            unsubscribed.is_empty(),
            "parsed by events::parse but not in app-manifest/manifest.json default_events: {unsubscribed:?}"
        );
        assert!(
            unparsed.is_empty(),
            "subscribed in app-manifest/manifest.json but not parsed by events::parse: {unparsed:?}"
        );
        assert_eq!(
            subscribed_events().len(),
            subscribed.len(),
            "an event is listed twice"
        );
        for always in DELIVERED_WITHOUT_SUBSCRIPTION {
            assert!(
                events::parsed_events().any(|e| e == *always),
                "{always} arrives anyway and must be parsed"
            );
        }
    }

    #[test]
    fn permissions_are_the_ones_foreman_needs() {
        let expected: BTreeMap<String, String> = [
            ("actions", "read"),
            ("checks", "read"),
            ("contents", "write"),
            ("issues", "write"),
            ("members", "read"),
            ("metadata", "read"),
            ("pull_requests", "write"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(permissions(), expected);
    }

    #[test]
    fn the_public_url_fills_every_url() {
        let manifest = for_public_url("https://foreman.example.com/", Some("acme-foreman"));
        assert_eq!(manifest["url"], "https://foreman.example.com");
        assert_eq!(
            manifest["hook_attributes"]["url"],
            format!("https://foreman.example.com{WEBHOOK_PATH}")
        );
        assert_eq!(
            manifest["redirect_url"],
            format!("https://foreman.example.com{CALLBACK_PATH}")
        );
        assert_eq!(manifest["name"], "acme-foreman");
        assert!(!manifest.to_string().contains(PUBLIC_URL_PLACEHOLDER));
        assert_eq!(
            for_public_url("http://h", Some("  "))["name"],
            Value::String(default_name())
        );
    }
}
