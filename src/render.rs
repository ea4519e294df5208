//! Handlebars rendering of the templates under `templates/`, embedded in the binary.
//!
//! Nothing is HTML-escaped by default: each template escapes with the helper that fits its
//! output (`json` for YAML/JSON scalars).

use anyhow::Context;
use handlebars::{Handlebars, handlebars_helper};

/// The inventory template, kept in `templates/` and embedded here.
pub const INVENTORY: &str = include_str!("../templates/inventory.yml.hbs");

handlebars_helper!(json: |v: Json| serde_json::to_string(v).unwrap_or_default());

/// A registry with rollci's helpers and strict variables (a typo is an error, not blank).
pub fn registry() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.register_escape_fn(handlebars::no_escape);
    hb.set_strict_mode(true);
    hb.register_helper("json", Box::new(json));
    hb
}

/// Renders one template text with data.
pub fn render(name: &str, template: &str, data: &serde_json::Value) -> anyhow::Result<String> {
    registry()
        .render_template(template, data)
        .with_context(|| format!("failed to render template `{name}`"))
}
