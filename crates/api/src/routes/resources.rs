//! Variables, connections, pools and import errors: Airflow's CRUD shapes. Secrets are sealed
//! with the deployment's Fernet key at rest and masked (`***`) in answers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use store::secrets::{Connection, is_secret_variable};
use store::{ConnectionRecord, PoolRecord, VariableRecord};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, QueryPairs, like, order, path_int};
use crate::models::*;

const MASK: &str = "***";

fn variable_missing(key: &str) -> ApiError {
    ApiError::not_found(format!("The Variable with key: `{key}` was not found"))
}

fn connection_missing(conn_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "The Connection with connection_id: `{conn_id}` was not found"
    ))
}

fn pool_missing(name: &str) -> ApiError {
    ApiError::not_found(format!("The Pool with name: `{name}` was not found"))
}

fn check_key(loc: &[&str], key: &str) -> ApiResult<()> {
    if key.is_empty() || key.len() > 250 {
        return Err(ApiError::invalid(
            loc,
            "must be 1 to 250 characters",
            "string_too_long",
        ));
    }
    Ok(())
}

fn variable_response(state: &AppState, record: &VariableRecord) -> ApiResult<VariableResponse> {
    let value = state
        .vault
        .open_variable(record)
        .map_err(ApiError::internal)?;
    Ok(VariableResponse {
        key: record.key.clone(),
        value: if is_secret_variable(&record.key) {
            MASK.to_string()
        } else {
            value
        },
        description: record.description.clone(),
        is_encrypted: record.is_encrypted,
        team_name: None,
    })
}

fn variable_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Variables.
#[utoipa::path(get, path = "/api/v2/variables", tag = "Variable",
    params(("limit" = Option<i64>, Query, minimum = 0), ("offset" = Option<i64>, Query, minimum = 0),
        ("order_by" = Option<String>, Query), ("variable_key_pattern" = Option<String>, Query)),
    responses((status = 200, body = VariableCollectionResponse)))]
pub async fn list_variables(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<VariableCollectionResponse>> {
    caller.require(Role::Op)?;
    let page = query.page()?;
    let pattern = query.get("variable_key_pattern");
    let mut records: Vec<VariableRecord> = state
        .store
        .list_variables()
        .await?
        .into_iter()
        .filter(|v| pattern.is_none_or(|p| like(p, &v.key)))
        .collect();
    order(
        &mut records,
        query.get("order_by"),
        "key",
        &[
            ("key", |a, b| a.key.cmp(&b.key)),
            ("id", |a, b| a.key.cmp(&b.key)),
            ("description", |a, b| a.description.cmp(&b.description)),
            ("is_encrypted", |a, b| a.is_encrypted.cmp(&b.is_encrypted)),
        ],
    )?;
    let total = records.len() as i64;
    Ok(Json(VariableCollectionResponse {
        variables: page
            .apply(records)
            .iter()
            .map(|r| variable_response(&state, r))
            .collect::<ApiResult<_>>()?,
        total_entries: total,
    }))
}

/// One variable.
#[utoipa::path(get, path = "/api/v2/variables/{variable_key}", tag = "Variable",
    params(("variable_key" = String, Path)),
    responses((status = 200, body = VariableResponse)))]
pub async fn get_variable(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<VariableResponse>> {
    caller.require(Role::Op)?;
    let record = state
        .store
        .get_variable(&key)
        .await?
        .ok_or_else(|| variable_missing(&key))?;
    Ok(Json(variable_response(&state, &record)?))
}

/// Create a variable; an existing key is a 409.
#[utoipa::path(post, path = "/api/v2/variables", tag = "Variable",
    request_body = VariableBody,
    responses((status = 201, body = VariableResponse)))]
pub async fn create_variable(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<VariableBody>,
) -> ApiResult<(StatusCode, Json<VariableResponse>)> {
    caller.require(Role::Op)?;
    check_key(&["body", "key"], &body.key)?;
    if state.store.get_variable(&body.key).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "The Variable with key: `{}` already exists",
            body.key
        )));
    }
    let record = state.vault.seal_variable(
        &body.key,
        &variable_text(&body.value),
        body.description.as_deref(),
    );
    state.store.set_variable(&record).await?;
    Ok((
        StatusCode::CREATED,
        Json(variable_response(&state, &record)?),
    ))
}

/// Update a variable (`update_mask` limits which of `value`, `description` change).
#[utoipa::path(patch, path = "/api/v2/variables/{variable_key}", tag = "Variable",
    params(("variable_key" = String, Path), ("update_mask" = Option<Vec<String>>, Query)),
    request_body = VariableBody,
    responses((status = 200, body = VariableResponse)))]
pub async fn patch_variable(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    query: QueryPairs,
    Body(body): Body<VariableBody>,
) -> ApiResult<Json<VariableResponse>> {
    caller.require(Role::Op)?;
    if body.key != key {
        return Err(ApiError::bad_request(
            "Invalid body, key from request body doesn't match uri parameter",
        ));
    }
    let mask = query.all("update_mask");
    if let Some(bad) = mask.iter().find(|f| *f != "value" && *f != "description") {
        return Err(ApiError::bad_request(format!(
            "Invalid field `{bad}` in update mask"
        )));
    }
    let existing = state
        .store
        .get_variable(&key)
        .await?
        .ok_or_else(|| variable_missing(&key))?;
    let current = state
        .vault
        .open_variable(&existing)
        .map_err(ApiError::internal)?;
    let wants = |field: &str| mask.is_empty() || mask.iter().any(|f| f == field);
    let value = if wants("value") {
        variable_text(&body.value)
    } else {
        current
    };
    let description = if wants("description") {
        body.description
    } else {
        existing.description
    };
    let record = state
        .vault
        .seal_variable(&key, &value, description.as_deref());
    state.store.set_variable(&record).await?;
    Ok(Json(variable_response(&state, &record)?))
}

/// Delete a variable.
#[utoipa::path(delete, path = "/api/v2/variables/{variable_key}", tag = "Variable",
    params(("variable_key" = String, Path)),
    responses((status = 204)))]
pub async fn delete_variable(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Op)?;
    state
        .store
        .delete_variable(&key)
        .await
        .map_err(|err| match err {
            store::StoreError::NotFound(_) => variable_missing(&key),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

// --- connections ------------------------------------------------------------------------------

fn connection_response(
    state: &AppState,
    record: &ConnectionRecord,
) -> ApiResult<ConnectionResponse> {
    let open = state
        .vault
        .open_connection(record)
        .map_err(ApiError::internal)?;
    Ok(ConnectionResponse {
        connection_id: open.conn_id,
        conn_type: open.conn_type,
        description: open.description,
        host: open.host,
        login: open.login,
        schema: open.schema,
        port: open.port.map(i64::from),
        password: open.password.map(|_| MASK.to_string()),
        extra: open.extra.map(|extra| mask_extra(&extra)),
        team_name: None,
    })
}

/// Secret-looking keys of a JSON `extra` masked; other text left as it is.
fn mask_extra(extra: &str) -> String {
    match serde_json::from_str::<Value>(extra) {
        Ok(Value::Object(mut map)) => {
            for (key, value) in map.iter_mut() {
                if is_secret_variable(key) {
                    *value = Value::String(MASK.to_string());
                }
            }
            Value::Object(map).to_string()
        }
        _ => extra.to_string(),
    }
}

fn connection_from(body: ConnectionBody) -> ApiResult<Connection> {
    check_key(&["body", "connection_id"], &body.connection_id)?;
    if let Some(extra) = &body.extra
        && !extra.trim().is_empty()
        && serde_json::from_str::<Value>(extra).is_err()
    {
        return Err(ApiError::invalid(
            &["body", "extra"],
            "extra must be a JSON text",
            "value_error",
        ));
    }
    Ok(Connection {
        conn_id: body.connection_id,
        conn_type: body.conn_type,
        description: body.description,
        host: body.host,
        schema: body.schema,
        login: body.login,
        password: body.password,
        port: body.port,
        extra: body.extra,
    })
}

/// Connections.
#[utoipa::path(get, path = "/api/v2/connections", tag = "Connection",
    params(("limit" = Option<i64>, Query, minimum = 0), ("offset" = Option<i64>, Query, minimum = 0),
        ("order_by" = Option<String>, Query), ("connection_id_pattern" = Option<String>, Query)),
    responses((status = 200, body = ConnectionCollectionResponse)))]
pub async fn list_connections(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<ConnectionCollectionResponse>> {
    caller.require(Role::Op)?;
    let page = query.page()?;
    let pattern = query.get("connection_id_pattern");
    let mut records: Vec<ConnectionRecord> = state
        .store
        .list_connections()
        .await?
        .into_iter()
        .filter(|c| pattern.is_none_or(|p| like(p, &c.conn_id)))
        .collect();
    order(
        &mut records,
        query.get("order_by"),
        "connection_id",
        &[
            ("connection_id", |a, b| a.conn_id.cmp(&b.conn_id)),
            ("id", |a, b| a.conn_id.cmp(&b.conn_id)),
            ("conn_type", |a, b| a.conn_type.cmp(&b.conn_type)),
            ("host", |a, b| a.host.cmp(&b.host)),
            ("port", |a, b| a.port.cmp(&b.port)),
        ],
    )?;
    let total = records.len() as i64;
    Ok(Json(ConnectionCollectionResponse {
        connections: page
            .apply(records)
            .iter()
            .map(|r| connection_response(&state, r))
            .collect::<ApiResult<_>>()?,
        total_entries: total,
    }))
}

/// One connection (password masked).
#[utoipa::path(get, path = "/api/v2/connections/{connection_id}", tag = "Connection",
    params(("connection_id" = String, Path)),
    responses((status = 200, body = ConnectionResponse)))]
pub async fn get_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(conn_id): Path<String>,
) -> ApiResult<Json<ConnectionResponse>> {
    caller.require(Role::Op)?;
    let record = state
        .store
        .get_connection(&conn_id)
        .await?
        .ok_or_else(|| connection_missing(&conn_id))?;
    Ok(Json(connection_response(&state, &record)?))
}

/// Create a connection; an existing id is a 409.
#[utoipa::path(post, path = "/api/v2/connections", tag = "Connection",
    request_body = ConnectionBody,
    responses((status = 201, body = ConnectionResponse)))]
pub async fn create_connection(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<ConnectionBody>,
) -> ApiResult<(StatusCode, Json<ConnectionResponse>)> {
    caller.require(Role::Op)?;
    let connection = connection_from(body)?;
    if state
        .store
        .get_connection(&connection.conn_id)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "The connection with connection_id: `{}` already exists",
            connection.conn_id
        )));
    }
    let record = state.vault.seal_connection(&connection);
    state.store.set_connection(&record).await?;
    Ok((
        StatusCode::CREATED,
        Json(connection_response(&state, &record)?),
    ))
}

/// Update a connection (`update_mask` limits the fields that change).
#[utoipa::path(patch, path = "/api/v2/connections/{connection_id}", tag = "Connection",
    params(("connection_id" = String, Path), ("update_mask" = Option<Vec<String>>, Query)),
    request_body = ConnectionBody,
    responses((status = 200, body = ConnectionResponse)))]
pub async fn patch_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(conn_id): Path<String>,
    query: QueryPairs,
    Body(body): Body<ConnectionBody>,
) -> ApiResult<Json<ConnectionResponse>> {
    caller.require(Role::Op)?;
    if body.connection_id != conn_id {
        return Err(ApiError::bad_request(
            "The connection_id in the request body does not match the URL parameter",
        ));
    }
    let existing = state
        .store
        .get_connection(&conn_id)
        .await?
        .ok_or_else(|| connection_missing(&conn_id))?;
    let current = state
        .vault
        .open_connection(&existing)
        .map_err(ApiError::internal)?;
    let new = connection_from(body)?;
    let mask = query.all("update_mask");
    const FIELDS: [&str; 8] = [
        "conn_type",
        "description",
        "host",
        "login",
        "schema",
        "port",
        "password",
        "extra",
    ];
    if let Some(bad) = mask.iter().find(|f| !FIELDS.contains(&f.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Invalid field `{bad}` in update mask"
        )));
    }
    let wants = |field: &str| mask.is_empty() || mask.iter().any(|f| f == field);
    let merged = Connection {
        conn_id: conn_id.clone(),
        conn_type: if wants("conn_type") {
            new.conn_type
        } else {
            current.conn_type
        },
        description: if wants("description") {
            new.description
        } else {
            current.description
        },
        host: if wants("host") {
            new.host
        } else {
            current.host
        },
        login: if wants("login") {
            new.login
        } else {
            current.login
        },
        schema: if wants("schema") {
            new.schema
        } else {
            current.schema
        },
        port: if wants("port") {
            new.port
        } else {
            current.port
        },
        // A masked password sent back unchanged keeps the stored one.
        password: if wants("password") && new.password.as_deref() != Some(MASK) {
            new.password
        } else {
            current.password
        },
        extra: if wants("extra") {
            new.extra
        } else {
            current.extra
        },
    };
    let record = state.vault.seal_connection(&merged);
    state.store.set_connection(&record).await?;
    Ok(Json(connection_response(&state, &record)?))
}

/// Delete a connection.
#[utoipa::path(delete, path = "/api/v2/connections/{connection_id}", tag = "Connection",
    params(("connection_id" = String, Path)),
    responses((status = 204)))]
pub async fn delete_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(conn_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Op)?;
    state
        .store
        .delete_connection(&conn_id)
        .await
        .map_err(|err| match err {
            store::StoreError::NotFound(_) => connection_missing(&conn_id),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

// --- pools ------------------------------------------------------------------------------------

async fn pool_stats(state: &AppState, name: &str) -> ApiResult<store::PoolStats> {
    state
        .store
        .list_pools()
        .await?
        .into_iter()
        .find(|p| p.pool.name == name)
        .ok_or_else(|| pool_missing(name))
}

fn check_slots(slots: i64) -> ApiResult<()> {
    if slots < -1 {
        return Err(ApiError::invalid(
            &["body", "slots"],
            "Input should be greater than or equal to -1",
            "greater_than_equal",
        ));
    }
    Ok(())
}

/// Pools with their occupancy.
#[utoipa::path(get, path = "/api/v2/pools", tag = "Pool",
    params(("limit" = Option<i64>, Query, minimum = 0), ("offset" = Option<i64>, Query, minimum = 0),
        ("order_by" = Option<String>, Query), ("pool_name_pattern" = Option<String>, Query)),
    responses((status = 200, body = PoolCollectionResponse)))]
pub async fn list_pools(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<PoolCollectionResponse>> {
    caller.require(Role::Viewer)?;
    let page = query.page()?;
    let pattern = query.get("pool_name_pattern");
    let mut pools: Vec<store::PoolStats> = state
        .store
        .list_pools()
        .await?
        .into_iter()
        .filter(|p| pattern.is_none_or(|pat| like(pat, &p.pool.name)))
        .collect();
    order(
        &mut pools,
        query.get("order_by"),
        "id",
        &[
            ("id", |a, b| a.pool.name.cmp(&b.pool.name)),
            ("pool", |a, b| a.pool.name.cmp(&b.pool.name)),
            ("name", |a, b| a.pool.name.cmp(&b.pool.name)),
            ("slots", |a, b| a.pool.slots.cmp(&b.pool.slots)),
        ],
    )?;
    let total = pools.len() as i64;
    Ok(Json(PoolCollectionResponse {
        pools: page.apply(pools).iter().map(pool_response).collect(),
        total_entries: total,
    }))
}

/// One pool.
#[utoipa::path(get, path = "/api/v2/pools/{pool_name}", tag = "Pool",
    params(("pool_name" = String, Path)),
    responses((status = 200, body = PoolResponse)))]
pub async fn get_pool(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<PoolResponse>> {
    caller.require(Role::Viewer)?;
    Ok(Json(pool_response(&pool_stats(&state, &name).await?)))
}

/// Create a pool; an existing name is a 409.
#[utoipa::path(post, path = "/api/v2/pools", tag = "Pool",
    request_body = PoolBody,
    responses((status = 201, body = PoolResponse)))]
pub async fn create_pool(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<PoolBody>,
) -> ApiResult<(StatusCode, Json<PoolResponse>)> {
    caller.require(Role::Op)?;
    check_key(&["body", "name"], &body.name)?;
    check_slots(body.slots)?;
    if pool_stats(&state, &body.name).await.is_ok() {
        return Err(ApiError::conflict(format!(
            "The Pool with name: `{}` already exists",
            body.name
        )));
    }
    state
        .store
        .set_pool(&PoolRecord {
            name: body.name.clone(),
            slots: body.slots,
            description: body.description,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(pool_response(&pool_stats(&state, &body.name).await?)),
    ))
}

/// Update a pool's slots or description.
#[utoipa::path(patch, path = "/api/v2/pools/{pool_name}", tag = "Pool",
    params(("pool_name" = String, Path), ("update_mask" = Option<Vec<String>>, Query)),
    request_body = PoolPatchBody,
    responses((status = 200, body = PoolResponse)))]
pub async fn patch_pool(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: QueryPairs,
    Body(body): Body<PoolPatchBody>,
) -> ApiResult<Json<PoolResponse>> {
    caller.require(Role::Op)?;
    let current = pool_stats(&state, &name).await?.pool;
    if let Some(new_name) = &body.pool
        && *new_name != name
    {
        return Err(ApiError::bad_request("A pool cannot be renamed"));
    }
    let mask = query.all("update_mask");
    if let Some(bad) = mask.iter().find(|f| {
        !["slots", "description", "pool", "name", "include_deferred"].contains(&f.as_str())
    }) {
        return Err(ApiError::bad_request(format!(
            "Invalid field `{bad}` in update mask"
        )));
    }
    let wants = |field: &str| mask.is_empty() || mask.iter().any(|f| f == field);
    let slots = match body.slots {
        Some(slots) if wants("slots") => {
            check_slots(slots)?;
            slots
        }
        _ => current.slots,
    };
    let description = if wants("description") && body.description.is_some() {
        body.description
    } else {
        current.description
    };
    state
        .store
        .set_pool(&PoolRecord {
            name: name.clone(),
            slots,
            description,
        })
        .await?;
    Ok(Json(pool_response(&pool_stats(&state, &name).await?)))
}

/// Delete a pool; `default_pool` cannot be deleted (400).
#[utoipa::path(delete, path = "/api/v2/pools/{pool_name}", tag = "Pool",
    params(("pool_name" = String, Path)),
    responses((status = 204)))]
pub async fn delete_pool(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Op)?;
    if name == "default_pool" {
        return Err(ApiError::bad_request("Default Pool can't be deleted"));
    }
    state
        .store
        .delete_pool(&name)
        .await
        .map_err(|err| match err {
            store::StoreError::NotFound(_) => pool_missing(&name),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

// --- import errors ----------------------------------------------------------------------------

/// DAG files that failed to import, with the reason.
#[utoipa::path(get, path = "/api/v2/importErrors", tag = "Import Error",
    params(("limit" = Option<i64>, Query, minimum = 0), ("offset" = Option<i64>, Query, minimum = 0),
        ("order_by" = Option<String>, Query), ("filename_pattern" = Option<String>, Query)),
    responses((status = 200, body = ImportErrorCollectionResponse)))]
pub async fn list_import_errors(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<ImportErrorCollectionResponse>> {
    caller.require(Role::Viewer)?;
    let page = query.page()?;
    let pattern = query.get("filename_pattern");
    let mut errors: Vec<store::ImportErrorRecord> = state
        .store
        .list_import_errors()
        .await?
        .into_iter()
        .filter(|e| pattern.is_none_or(|p| like(p, &e.filename)))
        .collect();
    order(
        &mut errors,
        query.get("order_by"),
        "id",
        &[
            ("id", |a, b| a.id.cmp(&b.id)),
            ("import_error_id", |a, b| a.id.cmp(&b.id)),
            ("timestamp", |a, b| a.timestamp.cmp(&b.timestamp)),
            ("filename", |a, b| a.filename.cmp(&b.filename)),
        ],
    )?;
    let total = errors.len() as i64;
    Ok(Json(ImportErrorCollectionResponse {
        import_errors: page
            .apply(errors)
            .iter()
            .map(import_error_response)
            .collect(),
        total_entries: total,
    }))
}

/// One import error.
#[utoipa::path(get, path = "/api/v2/importErrors/{import_error_id}", tag = "Import Error",
    params(("import_error_id" = i64, Path)),
    responses((status = 200, body = ImportErrorResponse)))]
pub async fn get_import_error(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ImportErrorResponse>> {
    caller.require(Role::Viewer)?;
    let id: i64 = path_int(&id, "import_error_id")?;
    let error = state
        .store
        .list_import_errors()
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The ImportError with import_error_id: `{id}` was not found"
            ))
        })?;
    Ok(Json(import_error_response(&error)))
}
