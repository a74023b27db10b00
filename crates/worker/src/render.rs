//! Rendering for a try: its template context (with the XComs and secrets its templates read,
//! and nothing more), the arguments a mapped instance binds, and text or JSON rendered with it.

use std::collections::BTreeMap;

use dag::mapping::Expansion;
use dag::template::{self, Reads, TemplateContext, TemplateError};
use serde_json::Value;

use crate::attempt::Attempt;

/// Why a try's template context could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContextError {
    /// The run's XComs could not be read.
    #[error("could not read the run's XComs: {0}")]
    Xcoms(#[source] store::StoreError),
    /// Variables or connections could not be opened (the store's message).
    #[error("{0}")]
    Secrets(String),
    /// `expand` did not yield this instance's arguments.
    #[error("{0}")]
    Expand(String),
}

/// What the task's own templates read besides its kind's: `env` values and `expand`.
pub(crate) fn task_reads(attempt: &Attempt<'_>) -> Reads {
    let task = attempt.task;
    let mut reads = Reads::default();
    for value in task.env.values() {
        reads |= template::reads(value);
    }
    for value in task.expand.iter().flat_map(|e| e.values()) {
        reads |= template::reads_value(value);
    }
    reads
}

/// The template context of a try whose templates read `reads`: the run's XComs are read,
/// and variables and connections opened (their secrets masked in the log), only when read.
pub(crate) async fn context(
    attempt: &Attempt<'_>,
    reads: Reads,
) -> Result<TemplateContext, ContextError> {
    let ti = &attempt.claimed.ti;
    let run = &attempt.claimed.run;
    let xcoms = if reads.xcoms {
        // Through an outage the try waits for the store rather than fail for want of it.
        attempt
            .reporting
            .read(|| attempt.store.list_xcoms(run.id, None))
            .await
            .map_err(ContextError::Xcoms)?
    } else {
        Vec::new()
    };
    let mut ctx = run.template_context(
        attempt.dag,
        &ti.task_id,
        ti.map_index,
        ti.try_number,
        &xcoms,
    );
    if reads.secrets() {
        open_secrets(attempt, &mut ctx).await?;
    }
    Ok(ctx)
}

/// Open variables and connections into `ctx`, masking their secrets in the try's log.
pub(crate) async fn open_secrets(
    attempt: &Attempt<'_>,
    ctx: &mut TemplateContext,
) -> Result<(), ContextError> {
    let config = attempt.config;
    let secrets = store::secrets::load_template_secrets(
        attempt.store.as_ref(),
        &config.vault,
        &config.env_connections,
    )
    .await
    .map_err(ContextError::Secrets)?;
    attempt.log.mask(secrets.masks);
    ctx.variables = secrets.variables;
    ctx.connections = secrets.connections;
    Ok(())
}

/// [`context`] with the arguments of a mapped instance bound into it.
pub(crate) async fn bound_context(
    attempt: &Attempt<'_>,
    reads: Reads,
) -> Result<TemplateContext, ContextError> {
    let mut ctx = context(attempt, reads).await?;
    let bound = bind_expand(attempt, &ctx).map_err(ContextError::Expand)?;
    ctx.extra.extend(bound);
    Ok(ctx)
}

/// The names a mapped instance binds: `expand` rendered now (its upstream is done, so it
/// yields what the scheduler expanded), picked at this instance's map index.
fn bind_expand(
    attempt: &Attempt<'_>,
    ctx: &TemplateContext,
) -> Result<BTreeMap<String, Value>, String> {
    let Ok(index) = usize::try_from(ctx.map_index) else {
        return Ok(BTreeMap::new());
    };
    match Expansion::of(attempt.task, ctx) {
        None => Ok(BTreeMap::new()),
        Some(Err(message)) => Err(message),
        Some(Ok(expansion)) => expansion.bind(index).ok_or_else(|| {
            format!(
                "map_index {index} is out of range: expand yields {} instances now",
                expansion.len()
            )
        }),
    }
}

fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Render text, skipping the template engine for plain text (most commands).
pub(crate) fn render_text(text: &str, ctx: &TemplateContext) -> Result<String, TemplateError> {
    if is_template(text) {
        template::render(text, ctx)
    } else {
        Ok(text.to_string())
    }
}

fn has_template(value: &Value) -> bool {
    match value {
        Value::String(text) => is_template(text),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(map) => map.values().any(has_template),
        _ => false,
    }
}

/// Render a JSON value as data: a string that is exactly one `{{ expr }}` yields the value.
pub(crate) fn render_json(value: &Value, ctx: &TemplateContext) -> Result<Value, TemplateError> {
    if has_template(value) {
        template::render_value(value, ctx)
    } else {
        Ok(value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_recognised() {
        assert!(is_template("echo {{ ds }}"));
        assert!(is_template("{% if x %}y{% endif %}"));
        assert!(!is_template("echo ${HOME} {a,b}"));
    }
}
