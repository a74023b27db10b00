//! The DAG file processor: finds DAG files, re-parses only the ones whose hash changed, and
//! keeps the store's DAGs and import errors in step with the folder.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use dag::parse::MAX_FILE_BYTES;
use sha2::{Digest, Sha256};
use store::{Catalog, StoreError};

/// What one pass over the folder did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProcessReport {
    /// DAG ids synced because their file is new or changed.
    pub synced: Vec<String>,
    /// Files that failed to parse or validate in this pass.
    pub errors: Vec<String>,
    /// DAG ids deactivated because their file is gone (or no longer defines them).
    pub deactivated: Vec<String>,
}

/// What is known of one file from the last pass.
#[derive(Debug, Clone)]
struct FileState {
    hash: String,
    /// The DAG the file defines, if it parsed.
    dag_id: Option<String>,
}

/// The DAGs folder and what its files held when last processed.
#[derive(Debug)]
pub struct DagFolder {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    first_pass_done: bool,
}

impl DagFolder {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DagFolder {
            root: root.into(),
            files: BTreeMap::new(),
            first_pass_done: false,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// DAG files in the folder, sorted: `*.yaml`, `*.yml`, `*.json`, recursively, skipping
    /// names that start with `.` or `_` and paths matched by `.dagignore`.
    pub fn list_files(&self) -> Vec<PathBuf> {
        let walker = ignore::WalkBuilder::new(&self.root)
            .hidden(true)
            .git_ignore(false)
            .git_global(false)
            .git_exclude(false)
            .ignore(false)
            .parents(false)
            .add_custom_ignore_filename(".dagignore")
            .filter_entry(|entry| {
                entry.depth() == 0 || !entry.file_name().to_string_lossy().starts_with('_')
            })
            .build();
        let mut files: Vec<PathBuf> = walker
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_some_and(|t| t.is_file()))
            .map(ignore::DirEntry::into_path)
            .filter(|path| {
                matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
            })
            .collect();
        files.sort();
        files
    }

    /// One pass: parse new and changed files, record import errors, deactivate DAGs whose
    /// file is gone. A broken file never stops the pass.
    pub async fn process(
        &mut self,
        store: &dyn Catalog,
        now: DateTime<Utc>,
    ) -> Result<ProcessReport, StoreError> {
        let mut report = ProcessReport::default();
        let present = self.list_files();

        // Files that vanished: their DAGs are deactivated and their errors cleared.
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|path| !present.contains(path))
            .cloned()
            .collect();
        for path in gone {
            if let Some(FileState {
                dag_id: Some(dag_id),
                ..
            }) = self.files.remove(&path)
            {
                report.deactivated.push(dag_id);
            }
            store.clear_import_error(&display(&path)).await?;
        }

        // Which file owns which dag_id, so that a duplicate is an error on the later file.
        let mut owners: HashMap<String, PathBuf> = self
            .files
            .iter()
            .filter_map(|(path, state)| state.dag_id.clone().map(|id| (id, path.clone())))
            .collect();

        for path in present {
            let name = display(&path);
            let read = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || read_dag_file(&path)).await
            };
            let (bytes, hash) = match read.unwrap_or_else(|e| Err(format!("{name}:1:1: {e}"))) {
                Ok(read) => read,
                Err(message) => {
                    // An unreadable (or oversized) file is reported once, not on every pass:
                    // its "version" is the error itself until the file changes.
                    let hash = format!("unreadable: {message}");
                    if self.files.get(&path).is_none_or(|s| s.hash != hash) {
                        store.record_import_error(&name, &message, now).await?;
                        report.errors.push(name);
                        let dag_id = self.files.get(&path).and_then(|s| s.dag_id.clone());
                        self.files.insert(path, FileState { hash, dag_id });
                    }
                    continue;
                }
            };
            if self.files.get(&path).is_some_and(|s| s.hash == hash) {
                continue;
            }
            let parsed = dag::parse_dag_bytes(&name, &bytes).map_err(|e| e.to_string());
            let parsed = parsed.and_then(|dag| match owners.get(&dag.dag_id) {
                Some(owner) if owner != &path => Err(format!(
                    "{name}:1:1: dag_id '{}' is already defined in {}",
                    dag.dag_id,
                    display(owner)
                )),
                _ => Ok(dag),
            });
            match parsed {
                Ok(dag) => {
                    let previous = self.files.get(&path).and_then(|s| s.dag_id.clone());
                    if let Some(old) = previous.filter(|old| old != &dag.dag_id) {
                        owners.remove(&old);
                        report.deactivated.push(old);
                    }
                    store.sync_dag(&dag, &hash, now).await?;
                    store.clear_import_error(&name).await?;
                    owners.insert(dag.dag_id.clone(), path.clone());
                    report.synced.push(dag.dag_id.clone());
                    self.files.insert(
                        path,
                        FileState {
                            hash,
                            dag_id: Some(dag.dag_id),
                        },
                    );
                }
                Err(message) => {
                    // The DAG keeps its last good version, as in Airflow: a typo in a file
                    // shows as an import error and does not stop the DAG's schedule.
                    store.record_import_error(&name, &message, now).await?;
                    report.errors.push(name);
                    let dag_id = self.files.get(&path).and_then(|s| s.dag_id.clone());
                    self.files.insert(path, FileState { hash, dag_id });
                }
            }
        }

        if !self.first_pass_done {
            // DAGs the store knows from an earlier process but no file defines any more.
            self.first_pass_done = true;
            let defined: Vec<&String> = owners.keys().collect();
            for record in store.list_dags().await? {
                if record.is_active
                    && !defined.contains(&&record.dag_id)
                    && Path::new(&record.dag.fileloc).starts_with(&self.root)
                {
                    report.deactivated.push(record.dag_id);
                }
            }
        }
        if !report.deactivated.is_empty() {
            report.deactivated.sort();
            report.deactivated.dedup();
            store.deactivate_dags(&report.deactivated).await?;
        }
        Ok(report)
    }
}

/// Read a DAG file and its version (the hash of its bytes), refusing one over the size limit
/// before reading it whole. The error is a located `file:1:1: message`.
pub fn read_dag_file(path: &Path) -> Result<(Vec<u8>, String), String> {
    let name = display(path);
    let meta = std::fs::metadata(path).map_err(|e| format!("{name}:1:1: cannot read file: {e}"))?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(format!(
            "{name}:1:1: file is {} bytes, over the {} MiB limit",
            meta.len(),
            MAX_FILE_BYTES / (1024 * 1024)
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{name}:1:1: cannot read file: {e}"))?;
    let version = hex_sha256(&bytes);
    Ok((bytes, version))
}

/// Read and parse one DAG file: the DAG and its version, or every problem in it.
pub fn load_dag_file(path: &Path) -> Result<(dag::Dag, String), String> {
    let (bytes, version) = read_dag_file(path)?;
    dag::parse_dag_bytes(&display(path), &bytes)
        .map(|dag| (dag, version))
        .map_err(|e| e.to_string())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn hex_sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
