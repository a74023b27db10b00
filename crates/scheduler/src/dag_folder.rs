//! The DAG file processor: finds DAG files, re-parses only the ones whose hash changed, and
//! keeps the store's DAGs and import errors in step with the folder.
//!
//! A file caught while it is being written (an editor saving, a copy in progress) may not
//! parse yet. Such a file is not reported as an import error: a file that fails while it
//! still changes (modified within [`SETTLE`], or changed between its read and its parse) is
//! left for the next pass, which the folder watcher's event for the rest of the write brings,
//! or the re-check time the pass reports ([`ProcessReport::recheck_at`]) if no event comes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use dag::Dag;
use dag::parse::MAX_FILE_BYTES;
use futures::StreamExt;
use pydag::{PythonImporter, PythonSettings};
use sha2::{Digest, Sha256};
use store::secrets::Vault;
use store::{Admin, Store, StoreError};

/// How long after its last change a file that does not parse counts as still being written.
pub const SETTLE: Duration = Duration::from_secs(1);

/// What one pass over the folder did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProcessReport {
    /// DAG ids synced because their file is new or changed.
    pub synced: Vec<String>,
    /// Files that failed to parse or validate in this pass, recorded as import errors.
    pub errors: Vec<ImportFailure>,
    /// DAG ids deactivated because their file is gone (or no longer defines them).
    pub deactivated: Vec<String>,
    /// Files that did not parse while they were still changing: no import error was
    /// recorded, and the next pass reads them again.
    pub unsettled: Vec<String>,
    /// When to look at the unsettled files again if no folder event comes first.
    pub recheck_at: Option<DateTime<Utc>>,
}

/// A file that failed to parse or validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFailure {
    pub file: String,
    /// Every problem, one per line, each `file:line:col: message`.
    pub message: String,
}

impl ImportFailure {
    /// The first problem, `file:line:col: message`.
    pub fn first_problem(&self) -> &str {
        self.message.lines().next().unwrap_or(&self.file)
    }

    /// How many problems the file has.
    pub fn problems(&self) -> usize {
        self.message.lines().count().max(1)
    }
}

impl std::fmt::Display for ImportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.problems() {
            1 => write!(f, "{}", self.first_problem()),
            n => write!(f, "{} (and {} more)", self.first_problem(), n - 1),
        }
    }
}

/// Whether a DAG stored for the first time starts paused when its file does not say
/// (`is_paused_upon_creation`): `core.dags_are_paused_at_creation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NewDags {
    /// Airflow's default: a new DAG waits for someone to unpause it.
    Paused,
    /// dag-format.md's default (`is_paused_upon_creation: false`): a new DAG runs at once.
    #[default]
    Unpaused,
}

impl NewDags {
    /// The DAG to store: one whose file does not say gets `is_paused_upon_creation` from
    /// this setting, which the store applies if the DAG is new.
    fn applied_to(self, dag: &Dag) -> Cow<'_, Dag> {
        match dag.is_paused_upon_creation {
            Some(_) => Cow::Borrowed(dag),
            None => Cow::Owned(Dag {
                is_paused_upon_creation: Some(self == NewDags::Paused),
                ..dag.clone()
            }),
        }
    }
}

/// What is known of one file from the last pass.
#[derive(Debug, Clone)]
struct FileState {
    hash: String,
    /// The DAGs the file defines, as of its last good parse (a Python file may define many).
    dag_ids: Vec<String>,
}

/// The DAGs folder and what its files held when last processed.
#[derive(Debug)]
pub struct DagFolder {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    first_pass_done: bool,
    python: PythonLoader,
    new_dags: NewDags,
}

/// What importing Python DAG files needs: the importer (started on the first `.py` file),
/// and the vault that opens Updraft's variables for `Variable.get` at import time.
#[derive(Debug)]
pub struct PythonLoader {
    settings: PythonSettings,
    vault: Arc<Vault>,
    importer: OnceLock<Result<Arc<PythonImporter>, String>>,
}

/// A new or changed file, read in this pass.
struct Changed {
    path: PathBuf,
    name: String,
    bytes: Vec<u8>,
    hash: String,
    /// The file's size and modification time when it was read.
    stamp: Stamp,
}

/// A file's size and modification time, to tell a file that is still being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }

    /// When a file with this stamp has settled, if it has not yet: within [`SETTLE`] of its
    /// modification. A time far in the future is a skewed clock, not a write in progress.
    fn settles_at(&self, now: SystemTime) -> Option<SystemTime> {
        let modified = self.modified?;
        let settled = modified + SETTLE;
        (settled > now && modified <= now + SETTLE).then_some(settled)
    }
}

impl DagFolder {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DagFolder {
            root: root.into(),
            files: BTreeMap::new(),
            first_pass_done: false,
            python: PythonLoader::new(PythonSettings::default(), Arc::new(Vault::clear())),
            new_dags: NewDags::default(),
        }
    }

    /// Whether DAGs stored for the first time start paused when their file does not say.
    pub fn with_new_dags(mut self, new_dags: NewDags) -> Self {
        self.new_dags = new_dags;
        self
    }

    /// Import Python DAG files with these settings, opening variables with `vault`.
    pub fn with_python(mut self, settings: PythonSettings, vault: Arc<Vault>) -> Self {
        self.python = PythonLoader::new(settings, vault);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// DAG files in the folder, sorted: `*.yaml`, `*.yml`, `*.json` and `*.py`, recursively,
    /// skipping names that start with `.` or `_` and paths matched by `.dagignore`. (A `.py`
    /// file is a DAG file only if it passes [`pydag::looks_like_dag_file`].)
    pub fn list_files(&self) -> Vec<PathBuf> {
        list_dag_files(&self.root)
    }

    /// One pass: parse new and changed files, record import errors, deactivate DAGs whose
    /// file is gone. A broken file never stops the pass.
    ///
    /// Shaped for a big folder from cold: every file is read and hashed in one blocking task,
    /// YAML and JSON files are parsed on the blocking pool across the cores (Python files
    /// concurrently through the importer), the changed DAGs are synced a few at a time so
    /// Postgres commits them together, and import errors are cleared only for the files that
    /// have one (one read of the import errors, not one write per file).
    pub async fn process(
        &mut self,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<ProcessReport, StoreError> {
        let mut report = ProcessReport::default();
        let present = self.list_files();

        // Files that vanished: their DAGs are deactivated and their errors cleared.
        let listed: HashSet<&PathBuf> = present.iter().collect();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|path| !listed.contains(path))
            .cloned()
            .collect();
        for path in gone {
            if let Some(state) = self.files.remove(&path) {
                report.deactivated.extend(state.dag_ids);
            }
            store.clear_import_error(&display(&path)).await?;
        }

        // The DAGs an earlier process stored from this folder, read before this pass syncs
        // anything (so it reads only what was there): those no file defines any more are
        // deactivated at its end.
        let stored_before = if self.first_pass_done {
            Vec::new()
        } else {
            store
                .list_dags()
                .await?
                .into_iter()
                .filter(|r| r.is_active && Path::new(&r.dag.fileloc).starts_with(&self.root))
                .map(|r| r.dag_id)
                .collect()
        };

        let reads = blocking(move || {
            present
                .into_iter()
                .map(|path| {
                    let stamp = Stamp::of(&path);
                    let read = read_dag_file(&path);
                    (path, stamp, read)
                })
                .collect::<Vec<_>>()
        })
        .await?;
        let mut changed = Vec::new();
        for (path, stamp, read) in reads {
            let name = display(&path);
            match read {
                Ok((bytes, hash)) => {
                    if self.files.get(&path).is_none_or(|s| s.hash != hash) {
                        changed.push(Changed {
                            path,
                            name,
                            bytes,
                            hash,
                            stamp: stamp.unwrap_or(Stamp {
                                len: 0,
                                modified: None,
                            }),
                        });
                    }
                }
                Err(message) => {
                    // An unreadable (or oversized) file is reported once, not on every pass:
                    // its "version" is the error itself until the file changes.
                    let hash = format!("unreadable: {message}");
                    if self.files.get(&path).is_none_or(|s| s.hash != hash) {
                        store.record_import_error(&name, &message, now).await?;
                        report.errors.push(ImportFailure {
                            file: name,
                            message,
                        });
                        self.keep_last_good(path, hash);
                    }
                }
            }
        }
        let parsed = self.parse_all(store, &mut changed).await?;

        // Which file owns which dag_id, so that a duplicate is an error on the later file.
        let mut owners: HashMap<String, PathBuf> = self
            .files
            .iter()
            .flat_map(|(path, state)| state.dag_ids.iter().map(|id| (id.clone(), path.clone())))
            .collect();

        // Files that parsed, with their DAGs, synced together after this loop.
        let mut good: Vec<(PathBuf, String, String, Vec<Dag>)> = Vec::new();
        for (file, parsed) in changed.into_iter().zip(parsed) {
            let Changed {
                path,
                name,
                hash,
                stamp,
                ..
            } = file;
            let parsed = parsed.and_then(|dags| {
                for dag in &dags {
                    match owners.get(&dag.dag_id) {
                        Some(owner) if owner != &path => {
                            return Err(format!(
                                "{name}:1:1: dag_id '{}' is already defined in {}",
                                dag.dag_id,
                                display(owner)
                            ));
                        }
                        _ => {}
                    }
                }
                if let Some(twice) = dags
                    .iter()
                    .enumerate()
                    .find(|(i, d)| dags[..*i].iter().any(|e| e.dag_id == d.dag_id))
                {
                    return Err(format!(
                        "{name}:1:1: dag_id '{}' is defined twice in this file",
                        twice.1.dag_id
                    ));
                }
                Ok(dags)
            });
            match parsed {
                Ok(dags) => {
                    let ids: Vec<String> = dags.iter().map(|d| d.dag_id.clone()).collect();
                    let previous = self
                        .files
                        .get(&path)
                        .map(|s| s.dag_ids.clone())
                        .unwrap_or_default();
                    for old in previous.into_iter().filter(|old| !ids.contains(old)) {
                        owners.remove(&old);
                        report.deactivated.push(old);
                    }
                    for id in ids {
                        owners.insert(id.clone(), path.clone());
                        report.synced.push(id);
                    }
                    good.push((path, name, hash, dags));
                }
                Err(message) => {
                    if let Some(settles) = still_changing(&path, stamp) {
                        // Caught mid-write: not an error yet. Its state stays as it was, so
                        // the next pass reads it again.
                        let at = DateTime::<Utc>::from(settles).max(now);
                        report.recheck_at = Some(report.recheck_at.map_or(at, |t| t.min(at)));
                        report.unsettled.push(name);
                        continue;
                    }
                    // The DAG keeps its last good version, as in Airflow: a typo in a file
                    // shows as an import error and does not stop the DAG's schedule.
                    store.record_import_error(&name, &message, now).await?;
                    report.errors.push(ImportFailure {
                        file: name,
                        message,
                    });
                    self.keep_last_good(path, hash);
                }
            }
        }

        // Sync every good file's DAGs, a few at a time, in file order; a file is remembered
        // only once all of them are stored, so a failed pass syncs it again.
        let mut syncing = futures::stream::FuturesOrdered::new();
        for (_, _, hash, dags) in &good {
            for dag in dags {
                if syncing.len() >= SYNC_CONCURRENCY
                    && let Some(synced) = syncing.next().await
                {
                    synced?;
                }
                syncing.push_back(sync_one(store, self.new_dags, dag, hash, now));
            }
        }
        while let Some(synced) = syncing.next().await {
            synced?;
        }
        drop(syncing);
        if !good.is_empty() {
            let with_errors: HashSet<String> = store
                .list_import_errors()
                .await?
                .into_iter()
                .map(|e| e.filename)
                .collect();
            for (_, name, _, _) in &good {
                if with_errors.contains(name) {
                    store.clear_import_error(name).await?;
                }
            }
        }
        for (path, _, hash, dags) in good {
            let dag_ids = dags.into_iter().map(|d| d.dag_id).collect();
            self.files.insert(path, FileState { hash, dag_ids });
        }

        if !self.first_pass_done {
            // DAGs the store knows from an earlier process but no file defines any more.
            self.first_pass_done = true;
            for dag_id in stored_before {
                if !owners.contains_key(&dag_id) {
                    report.deactivated.push(dag_id);
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

    /// Remember a broken file's hash, keeping the DAGs of its last good parse.
    fn keep_last_good(&mut self, path: PathBuf, hash: String) {
        let dag_ids = self
            .files
            .get(&path)
            .map(|s| s.dag_ids.clone())
            .unwrap_or_default();
        self.files.insert(path, FileState { hash, dag_ids });
    }

    /// Parse every changed file: YAML and JSON files on the blocking pool, split across the
    /// cores (their bytes are taken, they are not needed after), Python files all at once
    /// through the importer. One result per file, in order; an error is the file's import
    /// error text.
    async fn parse_all(
        &self,
        store: &dyn Store,
        changed: &mut [Changed],
    ) -> Result<Vec<ParseResult>, StoreError> {
        let mut results: Vec<Option<ParseResult>> = Vec::new();
        results.resize_with(changed.len(), || None);
        let plain: Vec<(usize, String, Vec<u8>)> = changed
            .iter_mut()
            .enumerate()
            .filter(|(_, f)| !is_python(&f.path))
            .map(|(i, f)| (i, f.name.clone(), std::mem::take(&mut f.bytes)))
            .collect();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_task = plain.len().div_ceil(cores).max(1);
        let mut chunks = Vec::new();
        let mut plain = plain.into_iter().peekable();
        while plain.peek().is_some() {
            let chunk: Vec<_> = plain.by_ref().take(per_task).collect();
            chunks.push(blocking(move || {
                chunk
                    .into_iter()
                    .map(|(i, name, bytes)| (i, parse_plain(&name, &bytes)))
                    .collect::<Vec<_>>()
            }));
        }
        let python: Vec<&Changed> = changed.iter().filter(|f| is_python(&f.path)).collect();
        let variables = if python.is_empty() {
            BTreeMap::new()
        } else {
            self.python.variables(store).await?
        };
        let imports = python
            .iter()
            .map(|f| parse_dag_file(&f.path, &f.bytes, &self.root, &self.python, &variables));
        let imported = futures::future::join_all(imports).await;
        for (i, result) in changed
            .iter()
            .enumerate()
            .filter(|(_, f)| is_python(&f.path))
            .map(|(i, _)| i)
            .zip(imported)
        {
            results[i] = Some(result);
        }
        for parsed in futures::future::join_all(chunks).await {
            for (i, result) in parsed? {
                results[i] = Some(result);
            }
        }
        Ok(results
            .into_iter()
            .zip(changed.iter())
            .map(|(result, f)| {
                result.unwrap_or_else(|| Err(format!("{}:1:1: the file was not parsed", f.name)))
            })
            .collect())
    }
}

/// The DAGs one file defines, or its import error text.
type ParseResult = Result<Vec<dag::Dag>, String>;

/// DAG syncs in flight at once: enough for Postgres to commit several together, few enough
/// to leave the pool's other connections to the rest of the scheduler.
const SYNC_CONCURRENCY: usize = 8;

/// Run `work` on the blocking pool, started at once. Its panic (a bug) unwinds on in the
/// awaiting task, as it would have had the work run inline; a task cancelled because the
/// runtime is shutting down is an outage.
fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> impl Future<Output = Result<T, StoreError>> {
    let task = tokio::task::spawn_blocking(work);
    async move {
        match task.await {
            Ok(value) => Ok(value),
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(cancelled) => Err(StoreError::Unavailable(Box::new(cancelled))),
            },
        }
    }
}

/// Store one parsed DAG at `version`, with the creation default put in.
async fn sync_one(
    store: &dyn Store,
    new_dags: NewDags,
    dag: &Dag,
    version: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store
        .sync_dag(&new_dags.applied_to(dag), version, now)
        .await
}

/// Parse a YAML or JSON DAG file's bytes.
fn parse_plain(name: &str, bytes: &[u8]) -> ParseResult {
    dag::parse_dag_bytes(name, bytes)
        .map(|dag| vec![dag])
        .map_err(|e| e.to_string())
}

impl PythonLoader {
    pub fn new(settings: PythonSettings, vault: Arc<Vault>) -> Self {
        PythonLoader {
            settings,
            vault,
            importer: OnceLock::new(),
        }
    }

    /// The importer, prepared on first use.
    fn importer(&self) -> Result<&PythonImporter, &str> {
        self.importer
            .get_or_init(|| {
                PythonImporter::new(&self.settings)
                    .map(Arc::new)
                    .map_err(|e| format!("could not prepare the Python importer: {e}"))
            })
            .as_ref()
            .map(|importer| importer.as_ref())
            .map_err(String::as_str)
    }

    /// Updraft's variables as stored text, for `Variable.get` at import time. One that cannot
    /// be opened is left out (an import reading it then fails naming it).
    pub async fn variables(
        &self,
        store: &dyn Admin,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let mut variables = BTreeMap::new();
        for record in store.list_variables().await? {
            if let Ok(value) = self.vault.open_variable(&record) {
                variables.insert(record.key.clone(), value);
            }
        }
        Ok(variables)
    }
}

/// Parse one DAG file's bytes into the DAGs it defines: YAML and JSON in place, Python files
/// (those that pass Airflow's safe-mode check; others define none) through the importer.
/// `dags_folder` goes on the Python path, as in Airflow. The error is the import error text.
pub async fn parse_dag_file(
    path: &Path,
    bytes: &[u8],
    dags_folder: &Path,
    python: &PythonLoader,
    variables: &BTreeMap<String, String>,
) -> Result<Vec<dag::Dag>, String> {
    let name = display(path);
    if !is_python(path) {
        return parse_plain(&name, bytes);
    }
    if !pydag::looks_like_dag_file(bytes) {
        return Ok(Vec::new());
    }
    let importer = python
        .importer()
        .map_err(|reason| format!("{name}:1:1: {reason}"))?;
    let docs = importer
        .import(path, dags_folder, variables)
        .await
        .map_err(|failure| failure.located(&name))?;
    let source = String::from_utf8_lossy(bytes);
    let mut dags = Vec::with_capacity(docs.len());
    let mut errors = Vec::new();
    for doc in &docs {
        match dag::dag_from_python(&name, doc, &source) {
            Ok(dag) => dags.push(dag),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(dags)
    } else {
        Err(errors.join("\n"))
    }
}

/// When a file read with `stamp` will have settled, if it is still being written: it changed
/// since it was read, or it was modified within [`SETTLE`].
fn still_changing(path: &Path, stamp: Stamp) -> Option<SystemTime> {
    let now = SystemTime::now();
    match Stamp::of(path) {
        // Gone meanwhile: the next pass deactivates it, nothing to report.
        None => Some(now),
        Some(current) if current != stamp => Some(current.settles_at(now).unwrap_or(now)),
        Some(current) => current.settles_at(now),
    }
}

/// Every DAG file under `root` (see [`DagFolder::list_files`]).
pub fn list_dag_files(root: &Path) -> Vec<PathBuf> {
    let walker = ignore::WalkBuilder::new(root)
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
                Some("yaml" | "yml" | "json" | "py")
            )
        })
        .collect();
    files.sort();
    files
}

fn is_python(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "py")
}

/// Read a DAG file and its version (the hash of its bytes; for a Python file, of its bytes and
/// of the embedded `airflow` package, which decides what the file means), refusing one over
/// the size limit before reading it whole. The error is a located `file:1:1: message`.
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
    let version = if is_python(path) {
        let mut hashed = bytes.clone();
        hashed.extend_from_slice(pydag::package_digest().as_bytes());
        hex_sha256(&hashed)
    } else {
        hex_sha256(&bytes)
    };
    Ok((bytes, version))
}

/// Read and parse one DAG file: the DAGs it defines and its version, or every problem in it.
pub async fn load_dag_file(
    path: &Path,
    dags_folder: &Path,
    python: &PythonLoader,
    variables: &BTreeMap<String, String>,
) -> Result<(Vec<dag::Dag>, String), String> {
    let owned = path.to_path_buf();
    let (bytes, version) = tokio::task::spawn_blocking(move || read_dag_file(&owned))
        .await
        .map_err(|e| format!("{}:1:1: {e}", display(path)))??;
    let dags = parse_dag_file(path, &bytes, dags_folder, python, variables).await?;
    Ok((dags, version))
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn hex_sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
