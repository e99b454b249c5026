//! Plain-directory rendering: the YAML and JSON files of an application
//! folder become manifests, in a deterministic order, with Argo CD's
//! `directory.include` / `exclude` / `recurse` meanings.
//!
//! It is not Kustomize, Helm or Jsonnet, and it does no I/O: the caller reads
//! the files (see plumb-engine's `source`) and decides what an empty render
//! means (`allowEmpty`).

use std::collections::HashMap;

use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::model::{
    ApplicationSource, DirectorySource, Manifest, ResourceKey, SourceFile, group_of,
};

/// The error returned by [`render_directory`].
///
/// Variants carry messages rather than their `#[source]` so that a render
/// result can be cached, cloned and compared by the controller; every message
/// already names the file and document it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A file is not valid YAML (or JSON, for `.json` files).
    #[error("render {file} document {document}{}: cannot parse: {message}; fix the syntax there", at_line(.line))]
    Parse {
        /// Path of the file, relative to the application folder.
        file: String,
        /// 1-based index of the document in the file, as an editor counts.
        document: usize,
        /// 1-based line in the file, when the parser knows it.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A document parsed but is not a Kubernetes object that can be applied.
    #[error("render {file} document {document}: {message}")]
    Invalid {
        /// Path of the file, relative to the application folder.
        file: String,
        /// 1-based index of the document in the file.
        document: usize,
        /// What is wrong and what to do.
        message: String,
    },
    /// Two documents render the same object (same group, kind, namespace
    /// and name), so which one is desired is ambiguous.
    #[error(
        "render: {key} is defined twice, in {first} and in {second}; keep one of them, or give them different names or namespaces"
    )]
    Duplicate {
        /// The object defined twice (boxed to keep the error small).
        key: Box<ResourceKey>,
        /// Origin (`path#document`) of the first definition.
        first: String,
        /// Origin of the second definition.
        second: String,
    },
    /// The source itself is not something Plumb can render as written.
    #[error("render: {0}")]
    Source(String),
    /// `directory.include` or `directory.exclude` is not a valid glob.
    #[error("render: spec.source.directory.{field} {pattern:?} is not a valid glob: {message}")]
    Pattern {
        /// `include` or `exclude`.
        field: &'static str,
        /// The pattern as written.
        pattern: String,
        /// Why it does not compile.
        message: String,
    },
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

/// Renders the manifests of a plain directory application.
///
/// `files` is every file the caller read under the application folder, with
/// paths relative to it and `/`-separated. Only `.yaml`, `.yml` and `.json`
/// files are read; `options` selects among them as Argo CD does. The result
/// is ordered by (file path, document, list item), whatever the order of
/// `files`, and every object has gone through [`normalize_desired`]. An empty
/// result is not an error here.
///
/// # Errors
///
/// [`RenderError::Pattern`] when `include` or `exclude` does not compile;
/// [`RenderError::Parse`] for a file that is not valid YAML or JSON;
/// [`RenderError::Invalid`] for a document that is not an object with string
/// `apiVersion`, `kind` and `metadata.name`, or holds a value JSON cannot
/// carry; [`RenderError::Duplicate`] when two documents define the same object.
pub fn render_directory(
    files: &[SourceFile],
    options: &DirectorySource,
) -> Result<Vec<Manifest>, RenderError> {
    let filter = FileFilter::new(options)?;
    let mut selected: Vec<&SourceFile> = files.iter().filter(|f| filter.selects(&f.path)).collect();
    selected.sort_by(|a, b| a.path.cmp(&b.path));

    let mut manifests = Vec::new();
    let mut seen: HashMap<ResourceKey, String> = HashMap::new();
    for file in selected {
        let objects = match file_objects(file) {
            Ok(objects) => objects,
            Err(_) if is_unrelated_yaml(file) => continue,
            Err(e) => return Err(e),
        };
        for (origin, key, object) in objects {
            {
                if let Some(first) = seen.get(&key) {
                    return Err(RenderError::Duplicate {
                        key: Box::new(key),
                        first: first.clone(),
                        second: origin,
                    });
                }
                seen.insert(key, origin.clone());
                manifests.push(Manifest { object, origin });
            }
        }
    }
    Ok(manifests)
}

/// Which renderer a source needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// YAML, JSON and Jsonnet files of a folder.
    Directory,
    /// `kustomize build` of a folder.
    Kustomize,
    /// `helm template` of a chart in the repository or a chart repository.
    Helm,
}

impl SourceKind {
    /// The name Argo CD shows for it (`status.sourceType`).
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Directory => "Directory",
            SourceKind::Kustomize => "Kustomize",
            SourceKind::Helm => "Helm",
        }
    }
}

/// The file names that make a folder a Kustomize source, in the order
/// Kustomize itself looks for them.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Argo CD's choice of renderer: the one whose options are set
/// (`spec.source.helm`, `kustomize` or `directory`; `chart` means Helm);
/// otherwise a kustomization file in the folder means Kustomize, a
/// `Chart.yaml` means Helm, and anything else is a directory. `has_file`
/// says whether the source's folder holds a file of that name (only asked
/// when no options decide).
///
/// # Errors
///
/// [`RenderError::Source`] when the options of more than one renderer are set.
pub fn source_kind(
    source: &ApplicationSource,
    has_file: impl Fn(&str) -> bool,
) -> Result<SourceKind, RenderError> {
    let explicit: Vec<(SourceKind, &str)> = [
        (
            source.helm.is_some() || source.chart_name().is_some(),
            SourceKind::Helm,
            "helm",
        ),
        (
            source.kustomize.is_some(),
            SourceKind::Kustomize,
            "kustomize",
        ),
        (
            source.directory.is_some(),
            SourceKind::Directory,
            "directory",
        ),
    ]
    .into_iter()
    .filter(|(set, _, _)| *set)
    .map(|(_, kind, field)| (kind, field))
    .collect();
    match explicit.as_slice() {
        [(kind, _)] => return Ok(*kind),
        [] => {}
        several => {
            let fields: Vec<&str> = several.iter().map(|(_, f)| *f).collect();
            return Err(RenderError::Source(format!(
                "the source sets the options of several renderers ({}); keep the one the folder needs",
                fields.join(", ")
            )));
        }
    }
    Ok(if KUSTOMIZATION_FILES.iter().any(|f| has_file(f)) {
        SourceKind::Kustomize
    } else if has_file("Chart.yaml") {
        SourceKind::Helm
    } else {
        SourceKind::Directory
    })
}

/// Renders the YAML stream a tool printed (`helm template`, `kustomize
/// build`): documents separated by `---` lines. A document's origin is the
/// template Helm names in its `# Source:` comment, or `label`, with the
/// document's number among those of the same origin. Objects are checked,
/// list kinds expanded and normalized as for files.
///
/// # Errors
///
/// As [`render_directory`], with the origin in place of the file.
pub fn render_stream(label: &str, text: &[u8]) -> Result<Vec<Manifest>, RenderError> {
    let text = String::from_utf8_lossy(text);
    let mut chunks: Vec<String> = vec![String::new()];
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") {
            chunks.push(String::new());
        } else if let Some(current) = chunks.last_mut() {
            current.push_str(line);
        }
    }
    let mut counters: HashMap<String, usize> = HashMap::new();
    let mut manifests = Vec::new();
    for chunk in chunks {
        let origin = chunk
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .map_or_else(|| label.to_string(), |s| s.trim().to_string());
        let file = SourceFile {
            path: origin.clone(),
            data: chunk.into_bytes(),
        };
        for (_, document) in parse_documents(&file)? {
            let counter = counters.entry(origin.clone()).or_default();
            let index = *counter;
            *counter += 1;
            for (origin, mut object) in expand_list(&file, index, document)? {
                normalize_desired(&mut object);
                manifests.push(Manifest { object, origin });
            }
        }
    }
    check_duplicates(&manifests)?;
    Ok(manifests)
}

/// The manifests of an object a program produced (a Jsonnet file's
/// output), checked, list kinds expanded and normalized as for files.
/// `origin` is `file#index`; list items get `/item` appended.
///
/// # Errors
///
/// [`RenderError::Invalid`] for a value that is not a Kubernetes object.
pub fn render_value(origin: &str, value: Value) -> Result<Vec<Manifest>, RenderError> {
    let (path, index) = match origin.rsplit_once('#') {
        Some((path, index)) => (path, index.parse::<usize>().unwrap_or_default()),
        None => (origin, 0),
    };
    let file = SourceFile {
        path: path.to_string(),
        data: Vec::new(),
    };
    let mut manifests = Vec::new();
    for (origin, mut object) in expand_list(&file, index, value)? {
        normalize_desired(&mut object);
        manifests.push(Manifest { object, origin });
    }
    Ok(manifests)
}

/// An error when two manifests define the same object (the renders of
/// several sources, or a folder's YAML and Jsonnet files, together).
///
/// # Errors
///
/// [`RenderError::Duplicate`] naming both origins.
pub fn check_duplicates(manifests: &[Manifest]) -> Result<(), RenderError> {
    let mut seen: HashMap<ResourceKey, &str> = HashMap::with_capacity(manifests.len());
    for m in manifests {
        let Some(key) = ResourceKey::of(&m.object) else {
            continue;
        };
        if let Some(first) = seen.get(&key) {
            return Err(RenderError::Duplicate {
                key: Box::new(key),
                first: (*first).to_string(),
                second: m.origin.clone(),
            });
        }
        seen.insert(key, &m.origin);
    }
    Ok(())
}

/// Every object of one file, normalized, with its origin and key.
fn file_objects(file: &SourceFile) -> Result<Vec<(String, ResourceKey, Value)>, RenderError> {
    let mut out = Vec::new();
    for (index, document) in parse_documents(file)? {
        for (origin, mut object) in expand_list(file, index, document)? {
            normalize_desired(&mut object);
            let key = ResourceKey::of(&object)
                .or_else(|| generated_key(&object))
                .ok_or_else(|| RenderError::Invalid {
                    file: file.path.clone(),
                    document: index + 1,
                    message: "not a Kubernetes object".into(),
                })?;
            out.push((origin, key, object));
        }
    }
    Ok(out)
}

/// The key of a hook that has a `generateName` and no name: the prefix
/// stands for the name until a sync names it.
fn generated_key(object: &Value) -> Option<ResourceKey> {
    let prefix = object.pointer("/metadata/generateName")?.as_str()?;
    let mut named = object.clone();
    named["metadata"]["name"] = Value::String(prefix.to_string());
    ResourceKey::of(&named)
}

/// Argo CD's rule for YAML that does not render: a file that does not even
/// look like a manifest (it lacks any of `apiVersion:`, `kind:`,
/// `metadata:`) is an unrelated YAML file (Helm values, CI configuration)
/// and is skipped; one that does is a broken manifest and an error. JSON
/// files are always manifests.
fn is_unrelated_yaml(file: &SourceFile) -> bool {
    if file.path.ends_with(".json") {
        return false;
    }
    let text = String::from_utf8_lossy(&file.data);
    !(text.contains("apiVersion:") && text.contains("kind:") && text.contains("metadata:"))
}

/// Which files of the folder are read: Argo CD's `recurse`, `include` and
/// `exclude`.
///
/// Argo CD matches the globs (gobwas/glob, compiled without separators, so
/// `*` also matches `/`) against the path relative to the application
/// folder. globset's default (`literal_separator(false)`) behaves the same,
/// and `{a,b}` alternation is native to both. On top of that a glob also
/// matches when it matches the file name alone, so `web.yaml` selects
/// `base/web.yaml` when recursing.
///
/// The source reads only the files this selects, so a large file of another
/// kind beside the manifests costs nothing.
pub struct FileFilter {
    recurse: bool,
    include: Option<GlobMatcher>,
    exclude: Option<GlobMatcher>,
}

impl FileFilter {
    /// The filter of a `directory` source.
    ///
    /// # Errors
    /// [`RenderError::Pattern`] when `include` or `exclude` does not compile.
    pub fn new(options: &DirectorySource) -> Result<FileFilter, RenderError> {
        Ok(FileFilter {
            recurse: options.recurse,
            include: compile("include", options.include.as_deref())?,
            exclude: compile("exclude", options.exclude.as_deref())?,
        })
    }

    /// Whether the file at `path` (relative to the application's folder) is
    /// rendered.
    pub fn selects(&self, path: &str) -> bool {
        is_manifest_file(path) && self.admits(path)
    }

    /// Whether the `.jsonnet` file at `path` (relative to the application's
    /// folder) is evaluated: Argo CD selects Jsonnet files with the same
    /// `recurse`, `include` and `exclude` as YAML files. `.libsonnet` files
    /// are libraries, only ever imported, so this never selects them.
    pub fn selects_jsonnet(&self, path: &str) -> bool {
        path.ends_with(".jsonnet") && self.admits(path)
    }

    /// `recurse`, `include` and `exclude`, whatever the kind of file.
    fn admits(&self, path: &str) -> bool {
        // The caller reads sub-folders only when recursing, but a stray one
        // must not change the result: render is a function of its inputs.
        if !self.recurse && path.contains('/') {
            return false;
        }
        if self.exclude.as_ref().is_some_and(|g| glob_matches(g, path)) {
            return false;
        }
        self.include.as_ref().is_none_or(|g| glob_matches(g, path))
    }
}

fn compile(field: &'static str, pattern: Option<&str>) -> Result<Option<GlobMatcher>, RenderError> {
    // Argo CD treats an empty pattern as unset.
    let Some(pattern) = pattern.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    Glob::new(pattern)
        .map(|g| Some(g.compile_matcher()))
        .map_err(|e| RenderError::Pattern {
            field,
            pattern: pattern.to_string(),
            message: e.kind().to_string(),
        })
}

fn glob_matches(glob: &GlobMatcher, path: &str) -> bool {
    let name = path.rsplit_once('/').map_or(path, |(_, name)| name);
    glob.is_match(path) || glob.is_match(name)
}

/// Argo CD's `^.*\.(yaml|yml|json)$` (case-sensitive; its `.jsonnet` files
/// belong to the Jsonnet renderer).
fn is_manifest_file(path: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// The non-empty documents of a file, with their 0-based position in it.
/// Empty and `null` documents are skipped but still counted, so an index
/// always points at the document an editor shows.
fn parse_documents(file: &SourceFile) -> Result<Vec<(usize, Value)>, RenderError> {
    if file.path.ends_with(".json") {
        return parse_json(file);
    }
    if let Some((document, line)) = too_deep(&file.data) {
        return Err(RenderError::Parse {
            file: file.path.clone(),
            document,
            line: Some(line),
            message: format!(
                "flow collections ([ ] and {{ }}) nested deeper than {MAX_FLOW_DEPTH} levels"
            ),
        });
    }
    let mut documents = Vec::new();
    for (index, deserializer) in serde_yaml::Deserializer::from_slice(&file.data).enumerate() {
        let parse_error = |e: serde_yaml::Error| RenderError::Parse {
            file: file.path.clone(),
            document: index + 1,
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        };
        // After a syntax error serde_yaml's document iterator yields the same
        // error forever, so the first error ends the file.
        let mut value = serde_yaml::Value::deserialize(deserializer).map_err(parse_error)?;
        apply_merge_keys(&mut value).map_err(parse_error)?;
        let mut path = Vec::new();
        let value = yaml_to_json(value, &mut path).map_err(|message| RenderError::Invalid {
            file: file.path.clone(),
            document: index + 1,
            message,
        })?;
        if !value.is_null() {
            documents.push((index, value));
        }
    }
    Ok(documents)
}

/// The deepest nesting of YAML flow collections parsed. serde_yaml refuses
/// anything past 128 levels anyway, but only after libyaml has scanned the
/// whole collection, in time quadratic in its depth (100,000 levels of `[`
/// in a 200 KB file took minutes): deeper input is refused before.
const MAX_FLOW_DEPTH: usize = 1000;

/// Where (1-based document and line) the flow collections of a YAML text
/// nest deeper than [`MAX_FLOW_DEPTH`], if they do. A lexical scan: brackets
/// in comments and quoted scalars do not count, nor quotes inside a plain
/// word (`don't`); it errs towards counting less, so it only ever refuses
/// what serde_yaml would refuse too.
fn too_deep(data: &[u8]) -> Option<(usize, usize)> {
    let mut document = if data.starts_with(b"---") { 0 } else { 1 };
    let (mut depth, mut line) = (0usize, 1usize);
    let (mut single, mut double, mut comment, mut escaped) = (false, false, false, false);
    let mut previous = b'\n';
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            line += 1;
            comment = false;
            if !single && !double && data[i + 1..].starts_with(b"---") {
                document += 1;
                depth = 0;
            }
        } else if comment {
        } else if double {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                double = false;
            }
        } else if single {
            single = b != b'\'';
        } else {
            let token_start = previous.is_ascii_whitespace() || b"[{,:-".contains(&previous);
            match b {
                b'#' if previous.is_ascii_whitespace() => comment = true,
                b'"' if token_start => double = true,
                b'\'' if token_start => single = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some((document, line));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        previous = b;
    }
    None
}

/// A `.json` file is one document, as for Argo CD. A blank file or `null`
/// renders nothing, like an empty YAML file.
fn parse_json(file: &SourceFile) -> Result<Vec<(usize, Value)>, RenderError> {
    let data = file
        .data
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(&file.data);
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(data).map_err(|e| RenderError::Parse {
        file: file.path.clone(),
        document: 1,
        line: Some(e.line()).filter(|l| *l > 0),
        message: e.to_string(),
    })?;
    Ok(if value.is_null() {
        Vec::new()
    } else {
        vec![(0, value)]
    })
}

/// Resolves YAML merge keys (`<<: *base`), which go-yaml (and so kubectl)
/// applies and serde_yaml 0.9 keeps as a literal `<<` key unless asked.
///
/// serde_yaml's `apply_merge` resolves one level: a merged mapping that has
/// its own `<<` brings that key back, so repeat until none is left. Aliases
/// cannot form cycles, so the depth is bounded by the document; the cap only
/// guards against a bug turning into a hang.
fn apply_merge_keys(value: &mut serde_yaml::Value) -> Result<(), serde_yaml::Error> {
    for _ in 0..64 {
        value.apply_merge()?;
        if !has_merge_key(value) {
            break;
        }
    }
    Ok(())
}

fn has_merge_key(value: &serde_yaml::Value) -> bool {
    match value {
        serde_yaml::Value::Mapping(m) => m.contains_key("<<") || m.values().any(has_merge_key),
        serde_yaml::Value::Sequence(s) => s.iter().any(has_merge_key),
        serde_yaml::Value::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

/// Converts a parsed YAML value into the JSON sent to the API server, the
/// way kubectl's YAML-to-JSON step does where serde_json cannot take the
/// value as is:
///
/// - mapping keys that are not strings (`1:`, `true:`, `~:`) become their
///   text (`"1"`, `"true"`, `"null"`), as sigs.k8s.io/yaml does; a list or
///   mapping used as a key is an error;
/// - tags (`!Ref x`) are dropped and the value kept, as go-yaml does for
///   tags it does not know;
/// - `.nan` and `.inf` are errors: JSON has no such numbers (kubectl fails
///   on them too).
///
/// `path` is where in the document the value sits, for error messages.
fn yaml_to_json(value: serde_yaml::Value, path: &mut Vec<String>) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::String(s) => Value::String(s),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(Number::from_f64(f).ok_or_else(|| {
                    format!(
                        "{} is {n}, which JSON (and so Kubernetes) cannot represent; quote it if a string is meant",
                        describe_path(path)
                    )
                })?)
            }
        }
        Y::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                path.push(format!("[{i}]"));
                out.push(yaml_to_json(item, path)?);
                path.pop();
            }
            Value::Array(out)
        }
        Y::Mapping(mapping) => {
            let mut out = Map::with_capacity(mapping.len());
            for (key, item) in mapping {
                let key = key_text(key).ok_or_else(|| {
                    format!(
                        "{} has a list or mapping as a key; Kubernetes objects need string keys",
                        describe_path(path)
                    )
                })?;
                path.push(format!(".{key}"));
                let item = yaml_to_json(item, path)?;
                if out.contains_key(&key) {
                    return Err(format!(
                        "{} is given twice (as a string and as a number or boolean key); keep one",
                        describe_path(path)
                    ));
                }
                path.pop();
                out.insert(key, item);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value, path)?,
    })
}

fn key_text(key: serde_yaml::Value) -> Option<String> {
    use serde_yaml::Value as Y;
    match key {
        Y::String(s) => Some(s),
        Y::Null => Some("null".into()),
        Y::Bool(b) => Some(b.to_string()),
        Y::Number(n) => Some(n.to_string()),
        Y::Tagged(t) => key_text(t.value),
        Y::Sequence(_) | Y::Mapping(_) => None,
    }
}

fn describe_path(path: &[String]) -> String {
    if path.is_empty() {
        "the document".into()
    } else {
        format!("the value at {}", path.concat().trim_start_matches('.'))
    }
}

/// The objects of one document: the document itself, or the items of a
/// `List`, each with its origin.
///
/// A document is a list when its kind is `List`, or ends in `List` and it
/// has an `items` array (Argo CD's `IsList`); a CRD kind that merely ends in
/// `List` without top-level `items` stays an object. Lists do not nest.
fn expand_list(
    file: &SourceFile,
    index: usize,
    document: Value,
) -> Result<Vec<(String, Value)>, RenderError> {
    let invalid = |message: String| RenderError::Invalid {
        file: file.path.clone(),
        document: index + 1,
        message,
    };
    let origin = format!("{}#{index}", file.path);
    let kind = document
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let items = document.get("items");
    let is_list = kind == "List" || (kind.ends_with("List") && items.is_some_and(Value::is_array));
    if !is_list {
        check_object(&document).map_err(invalid)?;
        return Ok(vec![(origin, document)]);
    }
    let items = match document.get("items") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid(format!("kind {kind} needs an items list"))),
    };
    let mut objects = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        check_object(item).map_err(|m| invalid(format!("item {}: {m}", i + 1)))?;
        objects.push((format!("{origin}/{i}"), item.clone()));
    }
    Ok(objects)
}

/// What Plumb needs of every object to identify and apply it.
fn check_object(object: &Value) -> Result<(), String> {
    const NEEDS: &str = "every object needs a string apiVersion, kind and metadata.name";
    let Some(map) = object.as_object() else {
        return Err(format!(
            "is {}, not a Kubernetes object; {NEEDS}",
            type_name(object)
        ));
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field) {
            None | Some(Value::Null) => return Err(format!("missing {field}; {NEEDS}")),
            Some(Value::String(s)) if s.is_empty() => {
                return Err(format!("empty {field}; {NEEDS}"));
            }
            Some(Value::String(_)) => {}
            Some(other) => return Err(format!("{field} is {}; {NEEDS}", type_name(other))),
        }
    }
    let metadata = match map.get("metadata") {
        None | Some(Value::Null) => return Err(format!("missing metadata.name; {NEEDS}")),
        Some(Value::Object(m)) => m,
        Some(other) => return Err(format!("metadata is {}; {NEEDS}", type_name(other))),
    };
    match metadata.get("name") {
        // A hook may have a generateName instead: each sync names it.
        None | Some(Value::Null)
            if metadata
                .get("generateName")
                .and_then(Value::as_str)
                .is_some_and(|g| !g.is_empty())
                && crate::hooks::is_hook(object) => {}
        None | Some(Value::Null) => {
            let hint = if metadata.contains_key("generateName") {
                " (generateName is only for hooks: Plumb must know the name to track and prune the object)"
            } else {
                ""
            };
            return Err(format!("missing metadata.name{hint}; {NEEDS}"));
        }
        Some(Value::String(s)) if s.is_empty() => {
            return Err(format!("empty metadata.name; {NEEDS}"));
        }
        Some(Value::String(name)) => {
            let api_version = map.get("apiVersion").and_then(Value::as_str);
            let kind = map.get("kind").and_then(Value::as_str);
            check_name(
                api_version.unwrap_or_default(),
                kind.unwrap_or_default(),
                name,
            )?;
        }
        Some(other) => return Err(format!("metadata.name is {}; quote it", type_name(other))),
    }
    match metadata.get("namespace") {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(other) => Err(format!(
            "metadata.namespace is {}; quote it",
            type_name(other)
        )),
    }
}

/// The rule the API server checks `metadata.name` against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameRule {
    /// RFC 1123 subdomain: most kinds, custom resources too.
    Subdomain,
    /// RFC 1123 label: Namespace.
    Label,
    /// RFC 1035 label: Service.
    Rfc1035Label,
    /// Only what every kind needs (a path segment of the API's URLs): the
    /// kinds whose names are freer (RBAC's allow `:`, a CSR's capitals)
    /// and the groups Plumb does not know (an aggregated API has its own
    /// rules).
    PathSegment,
}

/// The API groups whose kinds (but those [`name_rule`] names) take RFC 1123
/// subdomain names, as the API server validates them.
const SUBDOMAIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "node.k8s.io",
    "events.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "argoproj.io",
];

fn name_rule(api_version: &str, kind: &str) -> NameRule {
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    match (group, kind) {
        ("", "Namespace") => NameRule::Label,
        ("", "Service") => NameRule::Rfc1035Label,
        (group, _) if SUBDOMAIN_GROUPS.contains(&group) => NameRule::Subdomain,
        _ => NameRule::PathSegment,
    }
}

/// Lowercase letters, digits and '-', starting and ending with a letter or
/// digit.
fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Checks an object's name as the API server would, so a name it refuses
/// is an error of the render (nothing applied, nothing pruned), not a
/// failed request halfway through a sync.
fn check_name(api_version: &str, kind: &str, name: &str) -> Result<(), String> {
    if name == "." || name == ".." || name.contains(['/', '%']) {
        return Err(format!(
            "{kind} name {name:?} is not a valid name: no kind's name may be \".\" or \"..\" or contain \"/\" or \"%\""
        ));
    }
    let (ok, rule) = match name_rule(api_version, kind) {
        NameRule::PathSegment => return Ok(()),
        NameRule::Subdomain => (
            name.len() <= 253 && name.split('.').all(is_label),
            "a DNS-1123 subdomain (at most 253 characters: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)",
        ),
        NameRule::Label => (
            name.len() <= 63 && is_label(name),
            "a DNS-1123 label (at most 63 characters: lowercase letters, digits and '-', starting and ending with a letter or digit)",
        ),
        NameRule::Rfc1035Label => (
            name.len() <= 63
                && is_label(name)
                && name.starts_with(|c: char| c.is_ascii_lowercase()),
            "a DNS-1035 label (at most 63 characters: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit)",
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{kind} name {name:?} is not a valid name: Kubernetes requires {rule}"
        ))
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Makes a desired object acceptable to server-side apply and stable to
/// compare, without changing what it means:
///
/// - `protocol: TCP` is set on ports that omit it: Service `spec.ports[]`
///   and `ports[]` of containers and init containers wherever a pod spec
///   sits (Pod, PodTemplate, the pod templates of Deployment, ReplicaSet,
///   StatefulSet, DaemonSet, Job, ReplicationController, and CronJob's job
///   template). `protocol` is part of those lists' merge key, and some API
///   servers reject an applied element without it ("associative list with
///   keys has an element that omits key field protocol"). TCP is the
///   server's own default, so this changes nothing in the cluster.
/// - Numbers written as whole floats (`1.0`, `1e3`) become integers, which is
///   what kubectl sends (Go prints `float64(1)` as `1`); the API server
///   rejects `1.0` for an integer field.
///
/// Kinds are matched with their API group, so a custom resource that happens
/// to be called `Deployment` is left alone.
pub fn normalize_desired(object: &mut Value) {
    whole_floats_to_integers(object);
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pod_spec = match (group_of(api_version), kind) {
        ("", "Service") => {
            default_protocol(object.pointer_mut("/spec/ports"));
            return;
        }
        ("", "Pod") => "/spec",
        ("", "PodTemplate") => "/template/spec",
        ("", "ReplicationController")
        | ("apps" | "extensions", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => "/spec/template/spec",
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template/spec",
        _ => return,
    };
    let Some(spec) = object.pointer_mut(pod_spec) else {
        return;
    };
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for container in containers {
                default_protocol(container.get_mut("ports"));
            }
        }
    }
}

fn default_protocol(ports: Option<&mut Value>) {
    let Some(Value::Array(ports)) = ports else {
        return;
    };
    for port in ports.iter_mut().filter_map(Value::as_object_mut) {
        if port.get("protocol").is_none_or(Value::is_null) {
            port.insert("protocol".into(), Value::String("TCP".into()));
        }
    }
}

fn whole_floats_to_integers(value: &mut Value) {
    // Integers beyond 2^53 are not exact in a float, so those stay floats.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() <= EXACT
            {
                // The bounds above make the cast exact.
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(whole_floats_to_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(path: &str, data: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            data: data.as_bytes().to_vec(),
        }
    }

    fn cm(name: &str) -> String {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
    }

    fn render(files: &[SourceFile]) -> Result<Vec<Manifest>, RenderError> {
        render_directory(files, &DirectorySource::default())
    }

    fn recurse(include: Option<&str>, exclude: Option<&str>) -> DirectorySource {
        DirectorySource {
            recurse: true,
            include: include.map(Into::into),
            exclude: exclude.map(Into::into),
            ..Default::default()
        }
    }

    fn origins(manifests: &[Manifest]) -> Vec<&str> {
        manifests.iter().map(|m| m.origin.as_str()).collect()
    }

    fn names(manifests: &[Manifest]) -> Vec<&str> {
        manifests.iter().map(Manifest::name).collect()
    }

    #[test]
    fn only_yaml_yml_and_json_files_are_read() {
        let files = [
            file("a.yaml", &cm("a")),
            file("b.yml", &cm("b")),
            file(
                "c.json",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
            ),
            file("README.md", "# not a manifest"),
            file("d.YAML", &cm("d")),
            file("e.jsonnet", "{}"),
            file("values.txt", &cm("f")),
        ];
        assert_eq!(names(&render(&files).expect("renders")), ["a", "b", "c"]);
    }

    #[test]
    fn file_filter_selects_jsonnet_files_with_the_yaml_rules() {
        let filter = FileFilter::new(&recurse(None, Some("skip/*"))).expect("compiles");
        assert!(filter.selects_jsonnet("main.jsonnet"));
        assert!(filter.selects_jsonnet("sub/app.jsonnet"));
        assert!(!filter.selects_jsonnet("skip/app.jsonnet"));
        assert!(!filter.selects_jsonnet("lib.libsonnet"));
        assert!(!filter.selects_jsonnet("a.yaml"));
        assert!(!filter.selects("main.jsonnet"));

        let flat = FileFilter::new(&DirectorySource {
            include: Some("*.jsonnet".into()),
            ..Default::default()
        })
        .expect("compiles");
        assert!(flat.selects_jsonnet("main.jsonnet"));
        assert!(!flat.selects_jsonnet("sub/app.jsonnet"));
        assert!(!flat.selects("a.yaml"));
    }

    #[test]
    fn an_empty_folder_renders_nothing_without_error() {
        assert_eq!(render(&[]).expect("renders"), []);
        assert_eq!(
            render(&[file("empty.yaml", ""), file("x.json", " \n")]).expect("renders"),
            []
        );
    }

    #[test]
    fn files_in_sub_folders_are_skipped_without_recurse() {
        let files = [
            file("top.yaml", &cm("top")),
            file("sub/deep.yaml", &cm("deep")),
        ];
        assert_eq!(names(&render(&files).expect("renders")), ["top"]);
        let all = render_directory(&files, &recurse(None, None)).expect("renders");
        assert_eq!(names(&all), ["deep", "top"]);
    }

    #[test]
    fn include_star_matches_files_in_sub_folders() {
        let files = [
            file("a.yaml", &cm("a")),
            file("sub/b.yaml", &cm("b")),
            file("sub/c.json", "{}"),
        ];
        let out = render_directory(&files, &recurse(Some("*.yaml"), None)).expect("renders");
        assert_eq!(names(&out), ["a", "b"]);
    }

    #[test]
    fn include_matches_the_file_name_as_well_as_the_path() {
        let files = [
            file("web.yaml", &cm("top")),
            file("base/web.yaml", &cm("base")),
            file("base/db.yaml", &cm("db")),
        ];
        let out = render_directory(&files, &recurse(Some("web.yaml"), None)).expect("renders");
        assert_eq!(names(&out), ["base", "top"]);
        let out = render_directory(&files, &recurse(Some("base/*"), None)).expect("renders");
        assert_eq!(names(&out), ["db", "base"]);
    }

    #[test]
    fn include_brace_list_selects_each_glob() {
        let files = [
            file(
                "config.json",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config"}}"#,
            ),
            file("deployment.yaml", &cm("deployment")),
            file("other.yaml", &cm("other")),
        ];
        let options = DirectorySource {
            include: Some("{config.json,deployment.yaml}".into()),
            ..Default::default()
        };
        assert_eq!(
            names(&render_directory(&files, &options).expect("renders")),
            ["config", "deployment"]
        );
    }

    #[test]
    fn exclude_wins_over_include() {
        let files = [file("a.yaml", &cm("a")), file("b.yaml", &cm("b"))];
        let out =
            render_directory(&files, &recurse(Some("*.yaml"), Some("b.yaml"))).expect("renders");
        assert_eq!(names(&out), ["a"]);
    }

    #[test]
    fn exclude_folder_glob_skips_everything_below_it() {
        let files = [
            file("a.yaml", &cm("a")),
            file("env-usw2/b.yaml", &cm("b")),
            file("env-usw2/deep/c.yaml", &cm("c")),
            file("config.json", "not even json"),
        ];
        let out = render_directory(&files, &recurse(None, Some("{config.json,env-usw2/*}")))
            .expect("renders");
        assert_eq!(names(&out), ["a"]);
    }

    #[test]
    fn empty_include_and_exclude_mean_unset() {
        let files = [file("a.yaml", &cm("a"))];
        let out = render_directory(&files, &recurse(Some(""), Some(""))).expect("renders");
        assert_eq!(names(&out), ["a"]);
    }

    #[test]
    fn invalid_glob_is_a_pattern_error() {
        let err = render_directory(&[], &recurse(Some("[a-"), None)).expect_err("bad glob");
        assert!(
            matches!(
                err,
                RenderError::Pattern {
                    field: "include",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("render: spec.source.directory.include \"[a-\" is not a valid glob"),
            "{err}"
        );
    }

    #[test]
    fn documents_render_in_order_with_zero_based_origins() {
        let data = format!("{}---\n{}", cm("one"), cm("two"));
        let out = render(&[file("web.yaml", &data)]).expect("renders");
        assert_eq!(names(&out), ["one", "two"]);
        assert_eq!(origins(&out), ["web.yaml#0", "web.yaml#1"]);
    }

    #[test]
    fn empty_and_null_documents_are_skipped_but_keep_their_index() {
        let data = format!(
            "---\n{}---\n---\n# only a comment\n---\nnull\n---\n{}---\n",
            cm("a"),
            cm("b")
        );
        let out = render(&[file("x.yaml", &data)]).expect("renders");
        assert_eq!(origins(&out), ["x.yaml#0", "x.yaml#4"]);
        assert_eq!(render(&[file("n.json", "null")]).expect("renders"), []);
    }

    #[test]
    fn list_items_are_expanded_in_order() {
        let data = format!(
            "{}---\napiVersion: v1\nkind: List\nitems:\n- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: l0}}}}\n- {{apiVersion: v1, kind: Secret, metadata: {{name: l1}}}}\n---\n{}",
            cm("before"),
            cm("after")
        );
        let out = render(&[file("all.yaml", &data)]).expect("renders");
        assert_eq!(names(&out), ["before", "l0", "l1", "after"]);
        assert_eq!(
            origins(&out),
            ["all.yaml#0", "all.yaml#1/0", "all.yaml#1/1", "all.yaml#2"]
        );
    }

    #[test]
    fn typed_lists_with_items_are_expanded_and_empty_lists_render_nothing() {
        let data = "apiVersion: v1\nkind: ConfigMapList\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\napiVersion: v1\nkind: List\nitems: []\n---\napiVersion: v1\nkind: List\n";
        let out = render(&[file("l.yaml", data)]).expect("renders");
        assert_eq!(origins(&out), ["l.yaml#0/0"]);
    }

    #[test]
    fn a_kind_ending_in_list_without_items_is_an_ordinary_object() {
        let data = "apiVersion: example.com/v1\nkind: AllowList\nmetadata: {name: ips}\nspec: {cidrs: [10.0.0.0/8]}\n";
        let out = render(&[file("allow.yaml", data)]).expect("renders");
        assert_eq!(out[0].kind(), "AllowList");
    }

    #[test]
    fn list_item_errors_name_the_item() {
        let data = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap}\n";
        let err = render(&[file("l.yaml", data)]).expect_err("item without name");
        assert_eq!(
            err.to_string(),
            "render l.yaml document 1: item 2: missing metadata.name; every object needs a string apiVersion, kind and metadata.name"
        );
    }

    #[test]
    fn a_json_file_is_one_document() {
        let data = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}, "data": {"b": "1", "a": "2"}}"#;
        let out = render(&[file("j.json", data)]).expect("renders");
        assert_eq!(origins(&out), ["j.json#0"]);
        // Key order is kept as written, so diffs read like the source.
        let keys: Vec<&String> = out[0].object["data"]
            .as_object()
            .expect("map")
            .keys()
            .collect();
        assert_eq!(keys, ["b", "a"]);
    }

    #[test]
    fn missing_metadata_name_names_file_and_document() {
        let data = format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: x-\n",
            cm("ok")
        );
        let err = render(&[file("web.yaml", &data)]).expect_err("no name");
        assert!(
            err.to_string()
                .starts_with("render web.yaml document 2: missing metadata.name"),
            "{err}"
        );
        assert!(
            err.to_string().contains("generateName is only for hooks"),
            "{err}"
        );
        // A hook may have one.
        let hook = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n";
        assert!(render(&[file("hook.yaml", hook)]).is_ok());
    }

    #[test]
    fn objects_need_string_api_version_kind_and_name() {
        let cases = [
            // With all of apiVersion:, kind: and metadata: in the text, a
            // file is a manifest and its errors count (see is_unrelated_yaml).
            (
                "- apiVersion: v1\n  kind: X\n  metadata: {}\n",
                "render x.yaml document 1: is a list, not a Kubernetes object",
            ),
            (
                "kind: ConfigMap\nmetadata: {name: a, annotations: {note: 'apiVersion: none'}}\n",
                "render x.yaml document 1: missing apiVersion",
            ),
            (
                "apiVersion: v1\nmetadata: {name: a, annotations: {note: 'kind: none'}}\n",
                "render x.yaml document 1: missing kind",
            ),
            (
                "apiVersion: 1\nkind: X\nmetadata: {name: a}\n",
                "render x.yaml document 1: apiVersion is a number",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 7}\n",
                "render x.yaml document 1: metadata.name is a number",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ''}\n",
                "render x.yaml document 1: empty metadata.name",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: 7}\n",
                "render x.yaml document 1: metadata.namespace is a number",
            ),
            (
                "'apiVersion: kind: metadata:'\n",
                "render x.yaml document 1: is a string",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Valid Name!}\n",
                "render x.yaml document 1: ConfigMap name \"Not_A_Valid Name!\" is not a valid name: Kubernetes requires a DNS-1123 subdomain",
            ),
            (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web.}\n",
                "render x.yaml document 1: Deployment name \"web.\" is not a valid name",
            ),
            (
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n",
                "render x.yaml document 1: Namespace name \"a.b\" is not a valid name: Kubernetes requires a DNS-1123 label",
            ),
            (
                "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\n",
                "render x.yaml document 1: Service name \"1web\" is not a valid name: Kubernetes requires a DNS-1035 label",
            ),
            (
                "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a/b}\n",
                "render x.yaml document 1: Widget name \"a/b\" is not a valid name: no kind's name",
            ),
        ];
        for (data, want) in cases {
            let err = render(&[file("x.yaml", data)]).expect_err(data);
            assert!(
                matches!(err, RenderError::Invalid { .. }),
                "{data}: {err:?}"
            );
            assert!(err.to_string().starts_with(want), "{data}: {err}");
        }
    }

    #[test]
    fn names_are_checked_by_the_rule_of_their_kind() {
        // A subdomain's parts are not limited to 63 characters.
        let long_part = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {}}}\n",
            "a".repeat(100)
        );
        for ok in [
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a.b-c.0}\n",
            // RBAC names allow ':' and capitals, a CSR's too.
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: 'system:Viewer'}\n",
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {name: node-csr-AbC}\n",
            // A group Plumb does not know has its own rules.
            "apiVersion: user.openshift.io/v1\nkind: Group\nmetadata: {name: Admins}\n",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-1}\n",
            "apiVersion: v1\nkind: Service\nmetadata: {name: web-1}\n",
            long_part.as_str(),
        ] {
            assert!(render(&[file("x.yaml", ok)]).is_ok(), "{ok}");
        }
        let long = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {}}}\n",
            "a".repeat(254)
        );
        let err = render(&[file("x.yaml", &long)]).expect_err("too long");
        assert!(err.to_string().contains("at most 253"), "{err}");
    }

    #[test]
    fn yaml_parse_error_names_file_document_and_line() {
        let data = format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [broken\n",
            cm("ok")
        );
        let err = render(&[file("web.yaml", &data)]).expect_err("bad yaml");
        let RenderError::Parse {
            file,
            document,
            line,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((file.as_str(), *document), ("web.yaml", 2));
        assert_eq!(*line, Some(10), "{err}");
        assert!(
            err.to_string()
                .starts_with("render web.yaml document 2 line 10: cannot parse: "),
            "{err}"
        );
        assert!(err.to_string().ends_with("; fix the syntax there"), "{err}");
    }

    #[test]
    fn json_parse_error_names_the_line() {
        let err = render(&[file("j.json", "{\n  \"kind\": \"ConfigMap\",\n  oops\n}")])
            .expect_err("bad json");
        let RenderError::Parse {
            file,
            document,
            line,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((file.as_str(), *document, *line), ("j.json", 1, Some(3)));
    }

    #[test]
    fn duplicate_yaml_keys_are_a_parse_error() {
        // serde_yaml always refuses a mapping with a key twice. kubectl
        // depends on its version: older ones keep the last value silently,
        // newer ones warn or fail. Failing is the safe side: which value was
        // meant is ambiguous.
        let err = render(&[file(
            "d.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: '1', x: '2'}\n",
        )])
        .expect_err("duplicate key");
        assert!(matches!(err, RenderError::Parse { .. }), "{err:?}");
        assert!(
            err.to_string().contains("duplicate entry with key \"x\""),
            "{err}"
        );
    }

    #[test]
    fn nan_and_infinity_are_rejected_with_their_path() {
        let err = render(&[file(
            "n.yaml",
            "apiVersion: v1\nkind: X\nmetadata: {name: a}\nspec:\n  ratio: [1, .nan]\n",
        )])
        .expect_err("nan");
        assert_eq!(
            err.to_string(),
            "render n.yaml document 1: the value at spec.ratio[1] is .nan, which JSON (and so Kubernetes) cannot represent; quote it if a string is meant"
        );
        let err = render(&[file(
            "i.yaml",
            "apiVersion: v1\nkind: X\nmetadata: {name: a}\nlimit: -.inf\n",
        )])
        .expect_err("inf");
        assert!(
            err.to_string().contains("the value at limit is -.inf"),
            "{err}"
        );
    }

    #[test]
    fn non_string_keys_become_strings_and_tags_are_dropped() {
        let data = "apiVersion: v1\nkind: X\nmetadata: {name: a}\nmap: {1: one, true: yes, ~: nothing, 1.5: half}\nref: !Ref other\n";
        let out = render(&[file("k.yaml", data)]).expect("renders");
        assert_eq!(
            out[0].object["map"],
            json!({"1": "one", "true": "yes", "null": "nothing", "1.5": "half"})
        );
        assert_eq!(out[0].object["ref"], json!("other"));
        let err = render(&[file(
            "c.yaml",
            "apiVersion: v1\nkind: X\nmetadata: {name: a}\nmap: {[1, 2]: x}\n",
        )])
        .expect_err("complex key");
        assert!(
            err.to_string()
                .contains("the value at map has a list or mapping as a key"),
            "{err}"
        );
        let err = render(&[file(
            "c.yaml",
            "apiVersion: v1\nkind: X\nmetadata: {name: a}\nmap: {1: x, '1': y}\n",
        )])
        .expect_err("colliding keys");
        assert!(
            err.to_string()
                .contains("the value at map.1 is given twice"),
            "{err}"
        );
    }

    #[test]
    fn merge_keys_are_applied_and_explicit_keys_win() {
        let data = "\
base: &base {a: 1, b: 1}
more: &more {<<: *base, c: 1}
apiVersion: v1
kind: X
metadata: {name: m}
one: {<<: *base, b: 2}
many: {<<: [*base, {d: 1}], a: 3}
chained: {<<: *more}
";
        let out = render(&[file("m.yaml", data)]).expect("renders");
        let o = &out[0].object;
        assert_eq!(o["one"], json!({"b": 2, "a": 1}));
        assert_eq!(o["many"], json!({"a": 3, "b": 1, "d": 1}));
        assert_eq!(o["chained"], json!({"c": 1, "a": 1, "b": 1}));
        assert_eq!(o["more"], json!({"c": 1, "a": 1, "b": 1}));
    }

    #[test]
    fn duplicate_objects_name_both_origins() {
        let files = [
            file("a.yaml", &cm("same")),
            file("b/c.yaml", &format!("{}---\n{}", cm("x"), cm("same"))),
        ];
        let err = render_directory(&files, &recurse(None, None)).expect_err("duplicate");
        let RenderError::Duplicate { key, first, second } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            (key.kind.as_str(), key.name.as_str()),
            ("ConfigMap", "same")
        );
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("a.yaml#0", "b/c.yaml#1")
        );
        assert_eq!(
            err.to_string(),
            "render: ConfigMap/same is defined twice, in a.yaml#0 and in b/c.yaml#1; keep one of them, or give them different names or namespaces"
        );
    }

    #[test]
    fn duplicates_inside_a_list_are_found_too() {
        let data = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n";
        let err = render(&[file("l.yaml", data)]).expect_err("duplicate");
        assert!(
            matches!(&err, RenderError::Duplicate { first, second, .. } if first == "l.yaml#0/0" && second == "l.yaml#0/1")
        );
    }

    #[test]
    fn same_name_in_other_namespace_group_or_kind_is_not_a_duplicate() {
        let data = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: one}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: two}
---
apiVersion: v1
kind: Secret
metadata: {name: a, namespace: one}
---
apiVersion: example.com/v1
kind: ConfigMap
metadata: {name: a, namespace: one}
";
        assert_eq!(render(&[file("ok.yaml", data)]).expect("renders").len(), 4);
    }

    #[test]
    fn versions_of_one_group_are_the_same_object() {
        let data = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n---\napiVersion: apps/v1beta2\nkind: Deployment\nmetadata: {name: a}\n";
        assert!(matches!(
            render(&[file("d.yaml", data)]),
            Err(RenderError::Duplicate { .. })
        ));
    }

    #[test]
    fn output_is_sorted_by_path_then_document_whatever_the_input_order() {
        let files = [
            file("b.yaml", &format!("{}---\n{}", cm("b0"), cm("b1"))),
            file("a/z.yaml", &cm("az")),
            file("a.yaml", &cm("a")),
        ];
        let out = render_directory(&files, &recurse(None, None)).expect("renders");
        assert_eq!(
            origins(&out),
            ["a.yaml#0", "a/z.yaml#0", "b.yaml#0", "b.yaml#1"]
        );
    }

    #[test]
    fn rendering_fifty_files_is_independent_of_input_order() {
        let mut files: Vec<SourceFile> = (0..50)
            .map(|i| {
                let dir = ["", "base/", "overlays/prod/", "z/"][i % 4];
                let data = format!(
                    "{}---\n{}",
                    cm(&format!("cm-{i}-a")),
                    cm(&format!("cm-{i}-b"))
                );
                file(&format!("{dir}f{i:02}.yaml"), &data)
            })
            .collect();
        let options = recurse(None, None);
        let expected = render_directory(&files, &options).expect("renders");
        assert_eq!(expected.len(), 100);
        // A fixed-seed xorshift shuffle: reproducible, and no test dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10 {
            for i in (1..files.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let j = usize::try_from(state % (i as u64 + 1)).expect("below 50");
                files.swap(i, j);
            }
            assert_eq!(
                render_directory(&files, &options).expect("renders"),
                expected
            );
        }
        let mut sorted = origins(&expected);
        sorted.sort_by_key(|o| {
            let (path, doc) = o.split_once('#').expect("origin has #");
            (path.to_string(), doc.to_string())
        });
        assert_eq!(origins(&expected), sorted);
    }

    #[test]
    fn service_ports_default_to_tcp() {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}, {"port": 81, "protocol": null}]}});
        normalize_desired(&mut svc);
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}, {"port": 81, "protocol": "TCP"}])
        );
    }

    #[test]
    fn container_ports_default_to_tcp_wherever_the_pod_spec_sits() {
        let pod_spec = || {
            json!({
                "initContainers": [{"name": "init", "ports": [{"containerPort": 1}]}],
                "containers": [
                    {"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]},
                    {"name": "b"}
                ]
            })
        };
        let template = || json!({"spec": {"template": {"spec": pod_spec()}}});
        let cases = [
            ("v1", "Pod", json!({"spec": pod_spec()}), "/spec"),
            (
                "v1",
                "PodTemplate",
                json!({"template": {"spec": pod_spec()}}),
                "/template/spec",
            ),
            (
                "v1",
                "ReplicationController",
                template(),
                "/spec/template/spec",
            ),
            ("apps/v1", "Deployment", template(), "/spec/template/spec"),
            (
                "extensions/v1beta1",
                "Deployment",
                template(),
                "/spec/template/spec",
            ),
            ("apps/v1", "ReplicaSet", template(), "/spec/template/spec"),
            ("apps/v1", "StatefulSet", template(), "/spec/template/spec"),
            ("apps/v1", "DaemonSet", template(), "/spec/template/spec"),
            ("batch/v1", "Job", template(), "/spec/template/spec"),
            (
                "batch/v1",
                "CronJob",
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec()}}}}}),
                "/spec/jobTemplate/spec/template/spec",
            ),
        ];
        for (api_version, kind, mut object, at) in cases {
            object["apiVersion"] = json!(api_version);
            object["kind"] = json!(kind);
            object["metadata"] = json!({"name": "x"});
            normalize_desired(&mut object);
            let spec = object.pointer(at).expect(kind);
            assert_eq!(
                spec["initContainers"][0]["ports"],
                json!([{"containerPort": 1, "protocol": "TCP"}]),
                "{kind}"
            );
            assert_eq!(
                spec["containers"][0]["ports"],
                json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}]),
                "{kind}"
            );
            assert_eq!(spec["containers"][1], json!({"name": "b"}), "{kind}");
        }
    }

    #[test]
    fn custom_resources_named_like_built_in_kinds_are_left_alone() {
        let mut object = json!({"apiVersion": "example.com/v1", "kind": "Service", "metadata": {"name": "x"},
            "spec": {"ports": [{"port": 80}]}});
        let before = object.clone();
        normalize_desired(&mut object);
        assert_eq!(object, before);
    }

    #[test]
    fn whole_floats_become_integers() {
        let mut object = json!({"a": 1.0, "b": [2.5, 3.0, -0.0], "c": 1e300, "d": 7, "e": "1.0"});
        normalize_desired(&mut object);
        assert_eq!(
            object,
            json!({"a": 1, "b": [2.5, 3, 0], "c": 1e300, "d": 7, "e": "1.0"})
        );
        assert!(object["a"].is_i64());
    }

    #[test]
    fn render_normalizes_every_object() {
        let data = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  replicas: 1.0\n  ports: [{port: 80}]\n";
        let out = render(&[file("s.yaml", data)]).expect("renders");
        assert_eq!(
            out[0].object["spec"],
            json!({"replicas": 1, "ports": [{"port": 80, "protocol": "TCP"}]})
        );
    }

    /// The golden test of tricky YAML. Each case says what serde_yaml 0.9
    /// (YAML 1.2 core schema, mostly) gives Plumb, and what kubectl gives:
    /// kubectl reads YAML with sigs.k8s.io/yaml, i.e. go-yaml v2, which
    /// follows YAML 1.1. Where they disagree, the manifest is ambiguous;
    /// quoting the value makes both agree, and that is the advice to users.
    const TRICKY: &str = r#"
apiVersion: example.com/v1
kind: Probe
metadata:
  name: tricky
  labels: &labels
    app: web
    tier: frontend
spec:
  # Agree: an alias copies the anchored node.
  selector: *labels
  # Agree: `true` is a boolean, `"yes"` a string.
  boolTrue: true
  quotedYes: "yes"
  # DISAGREE: serde_yaml reads a bare `yes` / `on` / `no` as the string
  # "yes" / "on" / "no"; kubectl (YAML 1.1) reads booleans true / true /
  # false (also y, n, off, and their capitalised forms).
  bareYes: yes
  bareOn: on
  bareNo: no
  # Agree: a quoted "0755" is the string "0755".
  quotedOctal: "0755"
  # DISAGREE: serde_yaml reads a bare 0755 as the string "0755" (leading
  # zeros are not an integer in YAML 1.2); kubectl reads the octal integer
  # 493. `mode: 0755` in a volume means 493 only to kubectl.
  bareOctal: 0755
  # Agree: 0o755 is 493 (YAML 1.2 octal; go-yaml hands it to Go's
  # ParseInt with base 0, which takes 0o), 0x1F is 31.
  octal12: 0o755
  hex: 0x1F
  # DISAGREE: serde_yaml keeps 1_000 a string; kubectl strips the
  # underscores and reads 1000.
  underscores: 1_000
  # Agree: a float; whole floats are sent as integers (normalize_desired,
  # as Go prints float64(1000) as 1000).
  exponent: 1e3
  wholeFloat: 2.0
  half: 0.5
  # Agree: an unquoted date stays a string (go-yaml resolves it as a
  # timestamp but keeps the string when decoding into interface{}).
  date: 2024-01-01
  # Agree: ~ and null are null.
  tilde: ~
  # Agree: `|` keeps newlines and one final newline, `|-` strips it, `>`
  # folds lines into spaces.
  literal: |
    line one
      indented
    line three
  literalStrip: |-
    no final newline
  folded: >
    folded
    into one line
  # Agree: merge keys. serde_yaml 0.9 keeps `<<` as a plain key; render
  # applies it (serde_yaml's apply_merge) so it means what go-yaml means:
  # the aliased keys are added and keys written here win.
  merged:
    <<: *labels
    tier: backend
---
# Agree: ConfigMap data must be strings, so numbers and booleans there are
# quoted; unquoted they would be numbers/booleans to both parsers, and the
# API server would reject the ConfigMap.
apiVersion: v1
kind: ConfigMap
metadata:
  name: tricky-data
data:
  port: "8080"
  enabled: "true"
  mode: "0755"
  ratio: "1.0"
  # DISAGREE: a bare `yes` is already the string "yes" for serde_yaml, so
  # Plumb applies this ConfigMap; kubectl sends the boolean true and the
  # API server rejects it. Quote it.
  answer: yes
  script: |
    #!/bin/sh
    echo "ready"
"#;

    #[test]
    fn tricky_yaml_renders_like_the_golden_snapshot() {
        let out = render(&[file("tricky.yaml", TRICKY)]).expect("renders");
        insta::assert_json_snapshot!(out);
    }

    #[test]
    fn yaml_that_does_not_look_like_a_manifest_is_skipped_like_argo_cd() {
        let files = [
            SourceFile {
                path: "values.yaml".into(),
                data: b"replicas: 3\nimage: {tag: v1}\n".to_vec(),
            },
            SourceFile {
                path: "cm.yaml".into(),
                data: b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n".to_vec(),
            },
        ];
        let out = render_directory(&files, &DirectorySource::default())
            .expect("unrelated YAML is skipped");
        assert_eq!(out.len(), 1);
        let broken = [SourceFile {
            path: "bad.yaml".into(),
            data: b"apiVersion: v1\nkind: ConfigMap\nmetadata: [\n".to_vec(),
        }];
        assert!(
            render_directory(&broken, &DirectorySource::default()).is_err(),
            "a broken manifest is an error"
        );
    }

    #[test]
    fn source_kind_follows_options_then_files() {
        let plain = ApplicationSource::default();
        let none = |_: &str| false;
        assert_eq!(source_kind(&plain, none), Ok(SourceKind::Directory));
        assert_eq!(
            source_kind(&plain, |f| f == "Kustomization"),
            Ok(SourceKind::Kustomize)
        );
        assert_eq!(
            source_kind(&plain, |f| f == "Chart.yaml"),
            Ok(SourceKind::Helm)
        );
        let directory = ApplicationSource {
            directory: Some(DirectorySource::default()),
            ..Default::default()
        };
        assert_eq!(
            source_kind(&directory, |f| f == "Chart.yaml"),
            Ok(SourceKind::Directory)
        );
        let chart = ApplicationSource {
            chart: Some("web".into()),
            ..Default::default()
        };
        assert_eq!(source_kind(&chart, none), Ok(SourceKind::Helm));
        let both = ApplicationSource {
            chart: Some("web".into()),
            kustomize: Some(Default::default()),
            ..Default::default()
        };
        let error = source_kind(&both, none).expect_err("ambiguous");
        assert!(error.to_string().contains("helm, kustomize"), "{error}");
    }

    #[test]
    fn tool_output_keeps_helms_source_comments_as_origins() {
        let out = b"---\n# Source: web/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# Source: web/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {x: \"---\"}\n--- \napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n";
        let manifests = render_stream("helm template", out).expect("renders");
        assert_eq!(
            origins(&manifests),
            [
                "web/templates/a.yaml#0",
                "web/templates/a.yaml#1",
                "helm template#0/0"
            ]
        );
        let twice = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
        assert!(matches!(
            render_stream("kustomize build", twice),
            Err(RenderError::Duplicate { .. })
        ));
        let broken = b"kind: [\n";
        let error = render_stream("kustomize build", broken).expect_err("does not parse");
        assert!(error.to_string().contains("kustomize build"), "{error}");
    }
}
