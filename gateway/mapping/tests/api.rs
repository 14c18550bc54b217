//! The public API beyond what the data-driven cases cover: syntax providers,
//! format mismatch, caller context, conversions for the pipeline, and that
//! provenance never prints values through `Debug`.

use std::path::Path;

use gateway_core::json_tree::JsonPathSyntax;
use gateway_core::path::PathSyntax;
use gateway_core::{Severity, SourceFormat};
use gateway_mapping::{
    Code, DefaultSyntaxes, MapAction, MapContext, Profile, SyntaxProvider, json_document,
};
use serde_json::json;

/// Pretends HL7 paths are JSON paths, to load an `hl7v2` profile in a test.
struct FakeHl7;

impl SyntaxProvider for FakeHl7 {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        match format {
            SourceFormat::Hl7v2 | SourceFormat::Json => Some(&JsonPathSyntax),
            _ => None,
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write profile file");
}

fn simple_profile(format: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("simple");
    std::fs::create_dir(&dir).expect("mkdir");
    write(
        &dir,
        "profile.toml",
        &format!(
            "name = \"simple\"\nformat = \"{format}\"\n[defaults]\ntenant = \"mso-demo\"\npractice = \"p1\"\n"
        ),
    );
    write(
        &dir,
        "orders.toml",
        "[case_id]\nkey = [\"id\"]\n[fields]\nstatus = { const = \"requested\" }\n\"patient.name.family\" = \"last\"\n",
    );
    (tmp, dir)
}

#[test]
fn default_syntaxes_only_know_json() {
    assert!(DefaultSyntaxes.syntax(SourceFormat::Json).is_some());
    assert!(DefaultSyntaxes.syntax(SourceFormat::Hl7v2).is_none());
    let (_tmp, dir) = simple_profile("hl7v2");
    let err = Profile::load(&dir, &DefaultSyntaxes).expect_err("no hl7 syntax");
    assert_eq!(err.diagnostics[0].code, Code::UnknownFormat);
    assert_eq!(err.error_count(), 1);
    assert!(err.to_string().contains("M006"));
    let profile = Profile::load(&dir, &FakeHl7).expect("loads with a provider");
    assert_eq!(profile.format(), SourceFormat::Hl7v2);
    assert_eq!(profile.time_zone(), "UTC");
    assert_eq!(profile.mapping_files(), vec!["orders.toml"]);
    assert_eq!(profile.default_tenant(), Some("mso-demo"));
}

#[test]
fn a_document_of_another_format_is_refused() {
    let (_tmp, dir) = simple_profile("hl7v2");
    let profile = Profile::load(&dir, &FakeHl7).expect("loads");
    let outcome = profile.map(
        &json_document(&json!({"id": "1"})),
        &MapContext::new("2026-11-22T10:00:00Z"),
    );
    assert!(!outcome.is_mapped());
    assert_eq!(outcome.action, None);
    assert_eq!(outcome.diagnostics[0].code, Code::FormatMismatch);
}

#[test]
fn context_overrides_defaults_and_sets_source() {
    let (_tmp, dir) = simple_profile("json");
    let profile = Profile::load(&dir, &DefaultSyntaxes).expect("loads");
    let doc = json_document(
        &json!({"_meta": {"message_type": "ORDER", "control_id": "C9"}, "id": "O1", "last": "Testpatient"}),
    );
    let ctx = MapContext {
        received_at: "2026-11-22T10:00:00-06:00".into(),
        adapter: Some("fhir".into()),
        tenant: Some("mso-other".into()),
        site: Some("east".into()),
        ..MapContext::default()
    };
    let outcome = profile.map(&doc, &ctx);
    let case = outcome.case.expect("case");
    assert_eq!(outcome.action, Some(MapAction::Case));
    assert_eq!(case.tenant, "mso-other");
    assert_eq!(case.practice.as_deref(), Some("p1"));
    assert_eq!(case.site.as_deref(), Some("east"));
    assert_eq!(case.source.adapter, "fhir");
    assert_eq!(case.source.profile, "simple");
    assert_eq!(case.source.control_id.as_deref(), Some("C9"));
    assert_eq!(case.source.received_at, "2026-11-22T10:00:00-06:00");
    // The id depends on the tenant: same order, other tenant, other case.
    assert_eq!(
        case.case_id,
        gateway_core::ids::case_id("mso-other", "simple:O1")
    );
}

#[test]
fn a_bad_receive_time_from_the_caller_is_an_error() {
    let (_tmp, dir) = simple_profile("json");
    let profile = Profile::load(&dir, &DefaultSyntaxes).expect("loads");
    let outcome = profile.map(
        &json_document(&json!({"id": "O1"})),
        &MapContext::new("yesterday"),
    );
    assert!(outcome.case.is_none());
    assert!(outcome.has_errors());
    assert_eq!(outcome.diagnostics[0].code, Code::InvalidValue);
}

#[test]
fn provenance_debug_never_shows_values_and_explain_is_opt_in() {
    let (_tmp, dir) = simple_profile("json");
    let profile = Profile::load(&dir, &DefaultSyntaxes).expect("loads");
    let doc = json_document(&json!({"id": "O1", "last": "Secretname"}));
    let quiet = profile.map(&doc, &MapContext::new("2026-11-22T10:00:00Z"));
    let family = quiet
        .provenance
        .iter()
        .find(|p| p.field == "patient.name.family")
        .expect("provenance for the family name");
    assert_eq!(family.raw, None);
    assert_eq!(family.value, None);
    assert_eq!(family.source_path.as_deref(), Some("last"));
    assert_eq!(family.line, 5);
    assert_eq!(&*family.file, "simple/orders.toml");
    let mut ctx = MapContext::new("2026-11-22T10:00:00Z");
    ctx.explain = true;
    let loud = profile.map(&doc, &ctx);
    let family = loud
        .provenance
        .iter()
        .find(|p| p.field == "patient.name.family")
        .expect("provenance");
    assert_eq!(family.raw.as_deref(), Some("Secretname"));
    let debug = format!("{:?}", loud.provenance);
    assert!(!debug.contains("Secretname"), "{debug}");
    assert!(debug.contains("<redacted>"));
    // Diagnostics never quote values either.
    let text = gateway_mapping::render_explain(&quiet);
    assert!(!text.contains("Secretname"));
}

#[test]
fn diagnostics_convert_for_the_pipeline() {
    let (_tmp, dir) = simple_profile("json");
    write(
        &dir,
        "orders.toml",
        "[case_id]\nkey = [\"id\"]\n[fields]\nstatus = { const = \"requested\" }\n\"patient.birth_date\" = { path = \"dob\", required = true }\n",
    );
    let profile = Profile::load(&dir, &DefaultSyntaxes).expect("loads");
    let outcome = profile.map(
        &json_document(&json!({"id": "O1", "dob": "not-a-date"})),
        &MapContext::new("2026-11-22T10:00:00Z"),
    );
    assert!(!outcome.is_mapped());
    let core = outcome.core_diagnostics();
    assert!(
        core.iter()
            .any(|d| d.code == "M022" && d.severity == Severity::Error)
    );
    let invalid = core
        .iter()
        .find(|d| d.code == "M026")
        .expect("invalid value");
    assert_eq!(invalid.location.as_deref(), Some("dob"));
    assert!(invalid.message.contains("rule patient.birth_date"));
    assert!(!invalid.message.contains("not-a-date"));
}

#[test]
fn lint_reports_every_problem_of_every_file() {
    let (_tmp, dir) = simple_profile("json");
    write(&dir, "a.toml", "[fields]\n\"patient.sexx\" = \"s\"\n");
    write(&dir, "b.toml", "actoin = \"case\"\n");
    let diagnostics = Profile::lint(&dir, &DefaultSyntaxes);
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert!(codes.contains(&"M013"), "{codes:?}");
    assert!(codes.contains(&"M003"), "{codes:?}");
    assert!(
        codes.iter().filter(|c| **c == "M016").count() >= 2,
        "{codes:?}"
    );
    let files: std::collections::BTreeSet<_> =
        diagnostics.iter().filter_map(|d| d.file.clone()).collect();
    assert!(
        files.contains("simple/a.toml") && files.contains("simple/b.toml"),
        "{files:?}"
    );
}
