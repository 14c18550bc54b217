//! Suites and cases on disk.
//!
//! ```text
//! conformance/suites/<suite>/suite.toml          optional: profile dir, identity, default rules
//! conformance/suites/<suite>/<case>/case.toml    what the case proves and how to check it
//! conformance/suites/<suite>/<case>/input.*      the input(s), exactly as the EHR sends them
//! conformance/suites/<suite>/<case>/expected.case.json       expected Case (inbound)
//! conformance/suites/<suite>/<case>/expected.writeback.*     expected write-back output
//! ```
//!
//! A suite is named after its profile; without `suite.toml`, the profile is
//! `mappings/<suite>` in the nearest ancestor folder that has `mappings/`.
//! Everything is data: a new EHR gets a suite without recompiling.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::compare::{Rule, Rules};

/// Errors loading suites: always name the file.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A `case.toml`/`suite.toml` is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (from the TOML parser, with line and column).
        message: String,
    },
}

/// `suite.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// Profile folder, relative to the suite folder.
    pub profile: Option<PathBuf>,
    /// Adapter instance name the inputs arrive on (default: the profile's format).
    pub adapter: Option<String>,
    /// Who the gateway is while running this suite.
    #[serde(default)]
    pub identity: IdentityFile,
    /// Rules every case of the suite starts from.
    #[serde(default)]
    pub compare: BTreeMap<String, Rule>,
}

/// The gateway identity stamped on cases during the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    /// Tenant (default `mso-demo`).
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Practice.
    pub practice: Option<String>,
    /// Site.
    pub site: Option<String>,
}

impl Default for IdentityFile {
    fn default() -> Self {
        IdentityFile {
            tenant: default_tenant(),
            practice: None,
            site: None,
        }
    }
}

fn default_tenant() -> String {
    "mso-demo".to_owned()
}

/// What a case exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Inputs go in through the adapter; the case and acknowledgement are checked.
    #[default]
    Inbound,
    /// A decided Case goes out through the adapter's write-back.
    Writeback,
    /// Every input but the last goes in through the adapter; then the
    /// case's `decision` (if any) is recorded as the central platform
    /// returns it; then the last input, a status inquiry, is answered by the
    /// adapter from the store. The answer's code is checked against
    /// `expect.ack` and its body against `expected.writeback.*`.
    Inquiry,
}

/// `case.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// One line saying what the case proves.
    pub description: String,
    /// Requirement ids this case covers (`HL7-ACK-003`, `CASE-COV-001`).
    #[serde(default)]
    pub requirements: Vec<String>,
    /// Inbound (default) or write-back.
    #[serde(default)]
    pub mode: Mode,
    /// Input files in sending order (default: the one file named `input.*`).
    #[serde(default)]
    pub inputs: Vec<PathBuf>,
    /// Inquiry cases: a canonical Decision JSON file recorded on the case
    /// the inputs produced, before the inquiry is answered.
    pub decision: Option<PathBuf>,
    /// Skip the case with this reason (kept visible in reports).
    pub skip: Option<String>,
    /// Field rules on top of the suite's.
    #[serde(default)]
    pub compare: BTreeMap<String, Rule>,
    /// Expected facts beyond the case JSON.
    #[serde(default)]
    pub expect: Expectations,
}

/// Expected facts of the last input (and outcomes of all inputs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Pipeline outcome of each input in order: `accepted`, `duplicate`, `rejected`.
    /// Default: every input `accepted`.
    #[serde(default)]
    pub outcomes: Vec<String>,
    /// Acknowledgement code of the last input: HL7 MSA-1 (`AA`, `AE`, `CA`…),
    /// X12 999 AK9-01 / IK5-01 (`A`, `E`, `R`), TA1-04, or an HTTP status.
    pub ack: Option<String>,
    /// Error codes the acknowledgement must carry (HL7 ERR-3, X12 IK3/IK4/TA1 codes).
    #[serde(default)]
    pub ack_errors: Vec<String>,
    /// Diagnostic codes that must be reported (`H012`, `M010`, `X021`).
    #[serde(default)]
    pub diagnostics: Vec<String>,
    /// True when no case may be produced (negative cases); implied by a `rejected` last outcome.
    #[serde(default)]
    pub no_case: bool,
}

/// One loaded case.
#[derive(Debug, Clone)]
pub struct CaseSpec {
    /// Case folder name.
    pub name: String,
    /// Case folder.
    pub dir: PathBuf,
    /// The parsed `case.toml`.
    pub file: CaseFile,
    /// Inputs, resolved against the case folder.
    pub inputs: Vec<PathBuf>,
    /// Effective field rules.
    pub rules: Rules,
    /// `expected.case.json`, if present.
    pub expected_case: Option<PathBuf>,
    /// `expected.writeback.*`, if present.
    pub expected_writeback: Option<PathBuf>,
}

/// One loaded suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Suite name (folder name).
    pub name: String,
    /// Suite folder.
    pub dir: PathBuf,
    /// The profile folder the cases run against.
    pub profile_dir: PathBuf,
    /// Adapter name override.
    pub adapter: Option<String>,
    /// Identity during the run.
    pub identity: IdentityFile,
    /// The cases, sorted by name.
    pub cases: Vec<CaseSpec>,
}

/// Rules that hold for every suite unless a suite or case says otherwise:
/// system-generated values are not compared.
pub fn default_rules() -> BTreeMap<String, Rule> {
    [
        ("source.received_at", Rule::Ignore),
        ("decision.decided_at", Rule::Ignore),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Every suite folder under `root` (folders holding at least one `*/case.toml`).
pub fn discover(root: &Path) -> Result<Vec<PathBuf>, SuiteError> {
    let mut out = Vec::new();
    for entry in read_dir_sorted(root)? {
        if entry.is_dir()
            && read_dir_sorted(&entry)?
                .iter()
                .any(|c| c.join("case.toml").is_file())
        {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Loads one suite folder.
pub fn load_suite(dir: &Path) -> Result<Suite, SuiteError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suite_toml = dir.join("suite.toml");
    let file: SuiteFile = if suite_toml.is_file() {
        parse_toml(&suite_toml)?
    } else {
        SuiteFile::default()
    };
    let profile_dir = match &file.profile {
        Some(p) => dir.join(p),
        None => find_profile(dir, &name).ok_or_else(|| SuiteError::Invalid {
            path: dir.to_path_buf(),
            message: format!(
                "no profile: add `profile = \"…\"` to suite.toml or create mappings/{name} in an ancestor folder"
            ),
        })?,
    };
    let mut base = default_rules();
    base.extend(file.compare.clone());
    let mut cases = Vec::new();
    for case_dir in read_dir_sorted(dir)? {
        if case_dir.join("case.toml").is_file() {
            cases.push(load_case(&case_dir, &base)?);
        }
    }
    Ok(Suite {
        name,
        dir: dir.to_path_buf(),
        profile_dir,
        adapter: file.adapter,
        identity: file.identity,
        cases,
    })
}

fn load_case(dir: &Path, base: &BTreeMap<String, Rule>) -> Result<CaseSpec, SuiteError> {
    let case_toml = dir.join("case.toml");
    let file: CaseFile = parse_toml(&case_toml)?;
    let entries = read_dir_sorted(dir)?;
    let inputs: Vec<PathBuf> = if file.inputs.is_empty() {
        entries
            .iter()
            .filter(|p| file_stem_is(p, "input"))
            .cloned()
            .collect()
    } else {
        file.inputs.iter().map(|p| dir.join(p)).collect()
    };
    if inputs.is_empty() {
        return Err(SuiteError::Invalid {
            path: case_toml,
            message: "no input: add an `input.<ext>` file or `inputs = [...]`".to_owned(),
        });
    }
    for input in &inputs {
        if !input.is_file() {
            return Err(SuiteError::Invalid {
                path: case_toml,
                message: format!("input {} does not exist", input.display()),
            });
        }
    }
    if let Some(decision) = &file.decision
        && !dir.join(decision).is_file()
    {
        return Err(SuiteError::Invalid {
            path: case_toml,
            message: format!("decision {} does not exist", dir.join(decision).display()),
        });
    }
    if file.mode == Mode::Inquiry && inputs.len() < 2 && file.decision.is_some() {
        return Err(SuiteError::Invalid {
            path: case_toml,
            message: "an inquiry case with a decision needs a request input before the inquiry"
                .to_owned(),
        });
    }
    let mut rules = base.clone();
    rules.extend(file.compare.clone());
    let expected_case = Some(dir.join("expected.case.json")).filter(|p| p.is_file());
    let expected_writeback = entries
        .iter()
        .find(|p| file_stem_is(p, "expected.writeback"))
        .cloned();
    Ok(CaseSpec {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        dir: dir.to_path_buf(),
        file,
        inputs,
        rules: Rules::new(rules),
        expected_case,
        expected_writeback,
    })
}

fn file_stem_is(path: &Path, stem: &str) -> bool {
    path.is_file()
        && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n.strip_prefix(stem)
                .is_some_and(|rest| rest.starts_with('.'))
        })
}

fn find_profile(suite_dir: &Path, name: &str) -> Option<PathBuf> {
    suite_dir
        .ancestors()
        .map(|a| a.join("mappings").join(name))
        .find(|p| p.join("profile.toml").is_file())
}

fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SuiteError> {
    let text = std::fs::read_to_string(path).map_err(|e| SuiteError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| SuiteError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, SuiteError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| SuiteError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    out.sort();
    Ok(out)
}
