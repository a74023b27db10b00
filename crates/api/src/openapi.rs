//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations as they
//! are routed, then finished with what every operation shares: the bearer scheme and the
//! error answers (Airflow documents the same set on each operation).

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{HTTPExceptionResponse, HTTPValidationError, ValidationError};
use crate::routes::{access, dags, monitor, resources, runs, task_instances};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Updraft API",
        description = "Airflow 3 compatible REST API of Updraft."
    ),
    components(schemas(HTTPExceptionResponse, HTTPValidationError, ValidationError))
)]
struct Document;

/// Every routed handler, with its path in the document.
pub fn router() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi as _;
    OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(access::create_token))
        .routes(routes!(access::create_token_cli))
        .routes(routes!(access::list_users, access::create_user))
        .routes(routes!(access::delete_user))
        .routes(routes!(monitor::health))
        .routes(routes!(monitor::version))
        .routes(routes!(dags::list_dags))
        .routes(routes!(dags::get_dag, dags::patch_dag, dags::delete_dag))
        .routes(routes!(dags::get_dag_details))
        .routes(routes!(dags::list_tasks))
        .routes(routes!(dags::get_task))
        .routes(routes!(runs::list_runs, runs::trigger_run))
        .routes(routes!(runs::list_runs_batch))
        .routes(routes!(runs::get_run, runs::patch_run, runs::delete_run))
        .routes(routes!(runs::clear_run))
        .routes(routes!(runs::create_backfill))
        .routes(routes!(task_instances::list_task_instances))
        .routes(routes!(
            task_instances::get_task_instance,
            task_instances::patch_task_instance
        ))
        .routes(routes!(
            task_instances::get_mapped_task_instance,
            task_instances::patch_mapped_task_instance
        ))
        .routes(routes!(task_instances::list_mapped))
        .routes(routes!(task_instances::clear_task_instances))
        .routes(routes!(task_instances::get_log))
        .routes(routes!(task_instances::list_xcoms))
        .routes(routes!(task_instances::get_xcom))
        .routes(routes!(
            resources::list_variables,
            resources::create_variable
        ))
        .routes(routes!(
            resources::get_variable,
            resources::patch_variable,
            resources::delete_variable
        ))
        .routes(routes!(
            resources::list_connections,
            resources::create_connection
        ))
        .routes(routes!(
            resources::get_connection,
            resources::patch_connection,
            resources::delete_connection
        ))
        .routes(routes!(resources::list_pools, resources::create_pool))
        .routes(routes!(
            resources::get_pool,
            resources::patch_pool,
            resources::delete_pool
        ))
        .routes(routes!(resources::list_import_errors))
        .routes(routes!(resources::get_import_error))
}

/// Paths anyone may call.
const PUBLIC: [&str; 4] = [
    "/api/v2/monitor/health",
    "/api/v2/version",
    "/auth/token",
    "/auth/token/cli",
];

/// Add the bearer scheme and the shared error answers to the generated document.
pub fn finish(mut document: OpenApi) -> OpenApi {
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "HTTPBearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    for (path, item) in document.paths.paths.iter_mut() {
        let public = PUBLIC.contains(&path.as_str());
        for operation in [
            item.get.as_mut(),
            item.post.as_mut(),
            item.patch.as_mut(),
            item.put.as_mut(),
            item.delete.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            add_errors(operation, public);
        }
    }
    document
}

fn add_errors(operation: &mut Operation, public: bool) {
    let exception = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("HTTPExceptionResponse")))
                    .build(),
            )
            .build()
    };
    let mut statuses = vec![
        ("400", "Bad Request"),
        ("404", "Not Found"),
        ("408", "Request Timeout"),
        ("409", "Conflict"),
        ("413", "Content Too Large"),
    ];
    if !public {
        statuses.push(("401", "Unauthorized"));
        statuses.push(("403", "Forbidden"));
        operation.security = Some(vec![SecurityRequirement::new(
            "HTTPBearer",
            Vec::<String>::new(),
        )]);
    }
    for (status, description) in statuses {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| exception(description).into());
    }
    operation
        .responses
        .responses
        .entry("422".to_string())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description("Validation Error")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("HTTPValidationError")))
                        .build(),
                )
                .build()
                .into()
        });
}
