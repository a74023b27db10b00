//! `hooks::sql` against a real Postgres scratch database: parameter types inferred by the
//! server, column types mapped to JSON, and the database's own error messages.

use std::time::Duration;

use hooks::sql::{Parameters, run};
use serde_json::json;
use store::secrets::Connection;
use testkit::postgres::ScratchDatabase;

#[tokio::test]
async fn postgres_types_parameters_and_errors() {
    // Postgres here is a user's database: a scratch one, dropped when the test ends.
    let Some(database) = ScratchDatabase::create().await else {
        return;
    };
    let conn = Connection::from_uri("pg", database.url()).expect("uri");
    let t = Duration::from_secs(30);
    let out = run(
        &conn,
        "create table t (id int4, big int8, name text, price float8, ok bool, doc jsonb, at timestamptz, day date);
         insert into t values ($1, $2, $3, $4, $5, $6, $7, $8);
         select *, null::text as nothing from t where id = %s",
        &Parameters::List(vec![
            json!(1),
            json!(9_000_000_000_i64),
            json!("widget"),
            json!(2.5),
            json!(true),
            json!({"k": [1, 2]}),
            json!("2024-03-01T12:00:00Z"),
            json!("2024-03-01"),
        ]),
        t,
    )
    .await
    .expect("runs");
    assert_eq!(
        out.rows,
        vec![json!({
            "id": 1, "big": 9_000_000_000_i64, "name": "widget", "price": 2.5, "ok": true,
            "doc": {"k": [1, 2]}, "at": "2024-03-01T12:00:00Z", "day": "2024-03-01", "nothing": null
        })]
    );
    // Named parameters, and a string where the column is an integer.
    let out = run(
        &conn,
        "select name from t where id = :id and name = %(name)s",
        &Parameters::Map(
            serde_json::from_value(json!({"id": "1", "name": "widget"})).expect("map"),
        ),
        t,
    )
    .await
    .expect("named");
    assert_eq!(out.rows, vec![json!({"name": "widget"})]);
    // More than 1000 rows are cut, and say so.
    let out = run(
        &conn,
        "select generate_series(1, 1500) as n",
        &Parameters::None,
        t,
    )
    .await
    .expect("series");
    assert_eq!(out.rows.len(), 1000);
    assert!(out.truncated);
    // Types without a JSON mapping are named with the column.
    let err = run(&conn, "select 1.5::numeric as amount", &Parameters::None, t)
        .await
        .expect_err("numeric");
    assert!(
        err.to_string().contains("column 'amount' has type NUMERIC"),
        "{err}"
    );
    let err = run(&conn, "select * from missing_table", &Parameters::None, t)
        .await
        .expect_err("missing");
    assert!(
        err.to_string()
            .contains("relation \"missing_table\" does not exist"),
        "{err}"
    );
    let err = run(&conn, "select :x", &Parameters::Map(Default::default()), t)
        .await
        .expect_err("unnamed");
    assert!(err.to_string().contains("parameter 'x'"), "{err}");
}
