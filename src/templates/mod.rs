//! Handlebars rendering of the templates under `templates/`, embedded in the binary.
//!
//! Nothing is HTML-escaped by default: each template escapes with the helper that fits its
//! output (`json` for YAML/JSON scalars, `groovy` for Groovy string literals and `xml` for
//! XML text in the Jenkins templates).

use anyhow::Context;
use handlebars::{
    Handlebars, Helper, HelperResult, Output, RenderContext, RenderError, RenderErrorReason,
    handlebars_helper,
};

pub mod escape;

/// The inventory template, kept in `templates/` and embedded here.
pub const INVENTORY: &str = include_str!("../../templates/inventory.yml.hbs");
/// The declarative pipeline `rollci jenkins jenkinsfile` writes.
pub const JENKINSFILE: &str = include_str!("../../templates/Jenkinsfile.hbs");
/// The Pipeline job's `config.xml` `rollci jenkins job-config` writes.
pub const JOB_CONFIG: &str = include_str!("../../templates/job-config.xml.hbs");
/// The periodic strays job's pipeline `rollci jenkins strays-jenkinsfile` writes.
pub const STRAYS_JENKINSFILE: &str = include_str!("../../templates/strays.Jenkinsfile.hbs");

handlebars_helper!(json: |v: Json| serde_json::to_string(v).unwrap_or_default());

/// A registry with rollci's helpers and strict variables (a typo is an error, not blank).
pub fn registry() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.register_escape_fn(handlebars::no_escape);
    hb.set_strict_mode(true);
    hb.register_helper("json", Box::new(json));
    hb.register_helper("groovy", Box::new(groovy));
    hb.register_helper("groovy_comment", Box::new(groovy_comment));
    hb.register_helper("xml", Box::new(xml));
    hb
}

/// `{{groovy v}}`: a single-quoted Groovy string literal meaning exactly `v`.
fn groovy(
    h: &Helper,
    _: &Handlebars,
    _: &handlebars::Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&escape::groovy_literal(&scalar(h, "groovy")?))?;
    Ok(())
}

/// `{{groovy_comment v}}`: `v` made safe inside a `//` comment (no line break can end it).
fn groovy_comment(
    h: &Helper,
    _: &Handlebars,
    _: &handlebars::Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&escape::groovy_content(&scalar(h, "groovy_comment")?))?;
    Ok(())
}

/// `{{xml v}}`: XML text meaning exactly `v` (an error for characters XML 1.0 cannot carry).
fn xml(
    h: &Helper,
    _: &Handlebars,
    _: &handlebars::Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let text = escape::xml_text(&scalar(h, "xml")?)
        .map_err(|e| RenderError::from(RenderErrorReason::Other(e)))?;
    out.write(&text)?;
    Ok(())
}

/// The helper's one parameter as text: a string, number or boolean (anything else, null
/// included, is an error rather than an empty or `null` value in generated code).
fn scalar(h: &Helper, name: &'static str) -> Result<String, RenderError> {
    let param = h
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(name, 0))?;
    match param.value() {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(RenderErrorReason::InvalidParamType("string, number or boolean").into()),
    }
}

/// Renders one template text with data.
pub fn render(name: &str, template: &str, data: &serde_json::Value) -> anyhow::Result<String> {
    registry()
        .render_template(template, data)
        .with_context(|| format!("failed to render template `{name}`"))
}
