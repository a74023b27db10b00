//! Listings for the API and the UI: DAGs, runs and task instances filtered, sorted, paged and
//! counted by the database, so that a page costs its own rows and not the whole table's.
//!
//! Why it is shaped so: an order is a column the database can walk an index along only when
//! the ORDER BY names it; an ORDER BY chosen at run time by `CASE` (one static text for every
//! order) sorts every matching row first. So a listing's text is a backend's query file with
//! two markers, filled in here: `{filter}`, the conditions the listing's variants share (its
//! `*_filter` file), and `{order}`, the ORDER BY terms of the order asked for, built from the
//! order enums (never from a caller's text). Each variant is one scope (one DAG, some runs,
//! anything), so the scope's condition is a plain `=` or `IN` an index serves; the optional
//! conditions of the filter only check the rows the scope finds.
//!
//! A listing's last two parameters are its limit and offset, so its count is the same text up
//! to `ORDER BY {order}`, counted, bound without them: the count always has the page's filter.
//! Texts are built once per backend, query and order (a bounded set) and kept for the process.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use store::{
    DagFilter, DagOrder, RunFilter, RunOrder, Sort, SortDirection, StoreError, TagsMatch,
    TaskInstanceFilter, TaskInstanceOrder, TimeRange,
};

use crate::{Arg, Col, Dialect, Result, SqlRow, SqlStore, note_statement, query};

/// Where a listing's page tail starts; the count is the text before it.
const PAGE_TAIL: &str = "ORDER BY {order}";

/// One listing's query: the file of its scope and the file of its shared conditions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listing {
    pub name: &'static str,
    pub filter: Option<&'static str>,
}

/// Whether a listing also counts every match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    Total,
    PageOnly,
}

/// The rows of one page, and the number of matches when counted.
pub(crate) struct Listed<R> {
    pub rows: Vec<R>,
    pub total: Option<u64>,
}

/// A listing text whose markers are missing: a query file this module cannot fill in.
#[derive(Debug, thiserror::Error)]
#[error("listing query `{0}` lacks `{PAGE_TAIL}`")]
struct BadListing(&'static str);

/// Built listing texts by (backend, query, ORDER BY terms; `None` for the count).
type Texts = HashMap<(&'static str, &'static str, Option<String>), &'static str>;

/// The text of `listing` in dialect `D`, ordered by `order`, or its count for `None`.
fn listing_text<D: Dialect>(listing: Listing, order: Option<&str>) -> Result<&'static str> {
    static TEXTS: OnceLock<Mutex<Texts>> = OnceLock::new();
    let key = (D::NAME, listing.name, order.map(str::to_string));
    let texts = TEXTS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(text) = texts
        .lock()
        .expect("the listing texts lock is never held across a panic")
        .get(&key)
    {
        return Ok(text);
    }
    let mut text = query::<D>(listing.name)?.to_string();
    if let Some(filter) = listing.filter {
        text = text.replace("{filter}", &format!("(\n{}\n)", query::<D>(filter)?));
    }
    let tail = text
        .find(PAGE_TAIL)
        .ok_or_else(|| StoreError::Database(Box::new(BadListing(listing.name))))?;
    let built = match order {
        Some(terms) => text.replace("{order}", terms),
        None => format!(
            "SELECT COUNT(*) AS n FROM (\n{}\n) AS matched",
            &text[..tail]
        ),
    };
    // Leaked once per (backend, query, order): a fixed, small set, as the backends' own
    // texts are static.
    let built: &'static str = Box::leak(built.into_boxed_str());
    texts
        .lock()
        .expect("the listing texts lock is never held across a panic")
        .insert(key, built);
    Ok(built)
}

/// How a sort column treats empty values.
#[derive(Debug, Clone, Copy)]
enum Empty {
    Never,
    Possible,
}

/// ORDER BY terms: `columns` in `direction`, then `tie` (a unique key) in the same direction.
/// Empty values come first ascending and last descending on both backends (SQLite's own
/// order); a column that is never empty gets no `NULLS` clause, so Postgres matches it to an
/// index.
fn terms(columns: &[(&str, Empty)], tie: &str, direction: SortDirection) -> String {
    let (way, nulls) = match direction {
        SortDirection::Ascending => ("ASC", "NULLS FIRST"),
        SortDirection::Descending => ("DESC", "NULLS LAST"),
    };
    let mut terms: Vec<String> = columns
        .iter()
        .map(|(column, empty)| match empty {
            Empty::Never => format!("{column} {way}"),
            Empty::Possible => format!("{column} {way} {nulls}"),
        })
        .collect();
    if !columns.iter().any(|(column, _)| *column == tie) {
        terms.push(format!("{tie} {way}"));
    }
    terms.join(", ")
}

fn run_terms(sort: Sort<RunOrder>) -> String {
    use Empty::{Never, Possible};
    let column = match sort.key {
        RunOrder::Id => ("id", Never),
        RunOrder::RunId => ("run_id", Never),
        RunOrder::DagId => ("dag_id", Never),
        RunOrder::State => ("state", Never),
        RunOrder::RunType => ("run_type", Never),
        RunOrder::LogicalDate => ("logical_date", Possible),
        // The same expression as the `run_after` indexes (0010), so they serve it.
        RunOrder::RunAfter => ("COALESCE(logical_date, queued_at)", Never),
        RunOrder::StartDate => ("start_date", Possible),
        RunOrder::EndDate => ("end_date", Possible),
        RunOrder::QueuedAt => ("queued_at", Never),
        RunOrder::Duration => ("end_date - start_date", Possible),
    };
    terms(&[column], "id", sort.direction)
}

fn task_instance_terms(sort: Sort<TaskInstanceOrder>) -> String {
    use Empty::{Never, Possible};
    let columns: &[(&str, Empty)] = match sort.key {
        TaskInstanceOrder::Id => &[("ti.id", Never)],
        TaskInstanceOrder::MapIndex => &[("ti.run", Never), ("ti.map_index", Never)],
        TaskInstanceOrder::TaskId => &[("ti.task_id", Never)],
        TaskInstanceOrder::State => &[("ti.state", Never)],
        TaskInstanceOrder::StartDate => &[("ti.start_date", Possible)],
        TaskInstanceOrder::EndDate => &[("ti.end_date", Possible)],
        TaskInstanceOrder::TryNumber => &[("ti.try_number", Never)],
        TaskInstanceOrder::PriorityWeight => &[("ti.priority_weight", Never)],
        TaskInstanceOrder::Pool => &[("ti.pool", Never)],
        TaskInstanceOrder::Queue => &[("ti.queue", Never)],
        TaskInstanceOrder::RunId => &[("ti.run_id", Never)],
        // A lookup per instance rather than a join, so the listings' scopes stay plain
        // conditions on `task_instances` that an index serves.
        TaskInstanceOrder::LogicalDate => &[(
            "(SELECT r.logical_date FROM dag_runs r WHERE r.id = ti.run)",
            Possible,
        )],
    };
    terms(columns, "ti.id", sort.direction)
}

fn dag_terms(sort: Sort<DagOrder>) -> String {
    let column = match sort.key {
        DagOrder::DagId => "d.dag_id",
        DagOrder::IsPaused => "d.is_paused",
        DagOrder::LastParsedAt => "d.last_parsed_at",
        DagOrder::Fileloc => "d.fileloc",
    };
    terms(&[(column, Empty::Never)], "d.dag_id", sort.direction)
}

/// A `LIKE` pattern matching `text` anywhere, as Airflow's `*_pattern` filters do.
fn anywhere(pattern: Option<&str>) -> Option<String> {
    pattern.map(|p| format!("%{p}%"))
}

/// A limit as a parameter: `NULL` for none.
fn limit(limit: Option<usize>) -> Arg<'static> {
    Arg::OptInt(limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)))
}

fn offset(offset: usize) -> Arg<'static> {
    Arg::Int(i64::try_from(offset).unwrap_or(i64::MAX))
}

/// An optional flag as a parameter: 1, 0 or `NULL` (both backends compare it as a number).
fn flag(flag: Option<bool>) -> Arg<'static> {
    Arg::OptInt(flag.map(i64::from))
}

fn bounds(range: &TimeRange) -> [Arg<'static>; 4] {
    [
        Arg::OptTime(range.gte),
        Arg::OptTime(range.gt),
        Arg::OptTime(range.lte),
        Arg::OptTime(range.lt),
    ]
}

impl<D: Dialect> SqlStore<D> {
    /// One page of `listing` in the order of `terms`, with `args` (its limit and offset last),
    /// and the count of every match when asked for. The count is skipped when the page itself
    /// shows where the matches end (a short page read from a real position).
    async fn listed(
        &self,
        listing: Listing,
        terms: &str,
        args: &[Arg<'_>],
        page: (Option<usize>, usize),
        count: Count,
    ) -> Result<Listed<D::Row>> {
        let text = listing_text::<D>(listing, Some(terms))?;
        let mut conn = self.dialect.read().await?;
        note_statement();
        let rows = D::fetch_all(&mut conn, text, args).await?;
        if count == Count::PageOnly {
            return Ok(Listed { rows, total: None });
        }
        let (limit, offset) = page;
        let short = limit.is_none_or(|limit| rows.len() < limit);
        let total = if short && (!rows.is_empty() || offset == 0) {
            (offset + rows.len()) as u64
        } else {
            let text = listing_text::<D>(listing, None)?;
            note_statement();
            let found = D::fetch_all(&mut conn, text, &args[..args.len() - 2]).await?;
            let n = found
                .first()
                .ok_or_else(|| StoreError::Corrupt("a count returned no row".into()))?
                .int(Col::Named("n"))?;
            u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("a count of {n}")))?
        };
        Ok(Listed {
            rows,
            total: Some(total),
        })
    }

    /// The rows of the runs `filter` lists.
    pub(crate) async fn run_rows(
        &self,
        filter: &RunFilter,
        count: Count,
    ) -> Result<Listed<D::Row>> {
        let name = if filter.dag_id.is_some() {
            "page_dag_runs"
        } else if !filter.dag_ids.is_empty() {
            "page_runs_of_dags"
        } else {
            "page_runs"
        };
        let pattern = anywhere(filter.run_id_pattern.as_deref());
        let mut args = vec![
            Arg::OptText(filter.dag_id.as_deref()),
            Arg::Texts(filter.dag_ids.iter().map(String::as_str).collect()),
            Arg::Texts(filter.states.iter().map(|s| s.as_str()).collect()),
            Arg::Texts(filter.run_types.iter().map(|t| t.as_str()).collect()),
            Arg::OptText(pattern.as_deref()),
        ];
        for range in [
            &filter.logical_date,
            &filter.run_after,
            &filter.start_date,
            &filter.end_date,
        ] {
            args.extend(bounds(range));
        }
        args.push(Arg::OptText(filter.conf_contains.as_deref()));
        args.push(limit(filter.limit));
        args.push(offset(filter.offset));
        let listing = Listing {
            name,
            filter: Some("run_filter"),
        };
        self.listed(
            listing,
            &run_terms(filter.order),
            &args,
            (filter.limit, filter.offset),
            count,
        )
        .await
    }

    /// The rows of the task instances `filter` lists.
    pub(crate) async fn task_instance_rows(
        &self,
        filter: &TaskInstanceFilter,
        count: Count,
    ) -> Result<Listed<D::Row>> {
        let name = if !filter.runs.is_empty() {
            "page_run_task_instances"
        } else if filter.dag_id.is_some() {
            "page_dag_task_instances"
        } else {
            "page_task_instances"
        };
        let pattern = anywhere(filter.task_id_pattern.as_deref());
        let args = [
            Arg::OptText(filter.dag_id.as_deref()),
            Arg::OptText(filter.run_id.as_deref()),
            Arg::Ints(filter.runs.clone()),
            Arg::OptText(filter.task_id.as_deref()),
            Arg::OptText(pattern.as_deref()),
            Arg::Texts(filter.states.iter().map(|s| s.as_str()).collect()),
            Arg::Ints(filter.map_indexes.iter().map(|&i| i64::from(i)).collect()),
            flag(filter.mapped),
            Arg::Ints(filter.try_numbers.iter().map(|&n| i64::from(n)).collect()),
            Arg::Texts(filter.pools.iter().map(String::as_str).collect()),
            Arg::Texts(filter.queues.iter().map(String::as_str).collect()),
            limit(filter.limit),
            offset(filter.offset),
        ];
        let listing = Listing {
            name,
            filter: Some("task_instance_filter"),
        };
        self.listed(
            listing,
            &task_instance_terms(filter.order),
            &args,
            (filter.limit, filter.offset),
            count,
        )
        .await
    }

    /// The rows (without definitions) of the DAGs `filter` lists.
    pub(crate) async fn dag_rows(
        &self,
        filter: &DagFilter,
        count: Count,
    ) -> Result<Listed<D::Row>> {
        let pattern = anywhere(filter.dag_id_pattern.as_deref());
        let args = [
            Arg::Texts(filter.dag_ids.iter().map(String::as_str).collect()),
            flag(filter.is_active),
            flag(filter.is_paused),
            Arg::OptText(pattern.as_deref()),
            Arg::Texts(filter.owners.iter().map(String::as_str).collect()),
            Arg::Texts(filter.tags.iter().map(String::as_str).collect()),
            Arg::Int(i64::from(filter.tags_match == TagsMatch::All)),
            flag(filter.has_import_errors),
            Arg::OptText(filter.last_run_state.map(|s| s.as_str())),
            limit(filter.limit),
            offset(filter.offset),
        ];
        let listing = Listing {
            name: "page_dags",
            filter: None,
        };
        self.listed(
            listing,
            &dag_terms(filter.order),
            &args,
            (filter.limit, filter.offset),
            count,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_end_with_the_key_and_place_empty_values_first_ascending() {
        assert_eq!(
            run_terms(Sort::descending(RunOrder::RunAfter)),
            "COALESCE(logical_date, queued_at) DESC, id DESC"
        );
        assert_eq!(
            run_terms(Sort::ascending(RunOrder::StartDate)),
            "start_date ASC NULLS FIRST, id ASC"
        );
        assert_eq!(run_terms(Sort::ascending(RunOrder::Id)), "id ASC");
        assert_eq!(
            task_instance_terms(Sort::default()),
            "ti.run ASC, ti.map_index ASC, ti.id ASC"
        );
        assert_eq!(
            dag_terms(Sort::descending(DagOrder::IsPaused)),
            "d.is_paused DESC, d.dag_id DESC"
        );
    }
}
