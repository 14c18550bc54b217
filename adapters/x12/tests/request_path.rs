#![cfg(feature = "transports")]
//! The outbound request path's adapter half, in process:
//! * property: any complete case written by the [`RequestWriter`] (as the
//!   daemon's submission worker writes it: fresh trace, our case id as
//!   BHT03, control numbers from the allocator) parses back through the
//!   x12-278 profile with the same patient, member id, payer, service codes,
//!   diagnoses and requesting provider NPI, onto the same case id, carrying
//!   exactly the references recorded for it;
//! * a case without the requesting provider's NPI is refused by name and
//!   uses no control number;
//! * a folder route writes the file once, atomically;
//! * the [`start`] facade keeps no globals: two adapters started side by side
//!   each take in only their own folder's files.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pipeline::MappingPipeline;
use gateway_core::Case;
use gateway_seam::Transport;
use gateway_x12::config::X12Config;
use gateway_x12::control::{ControlNumberAllocator, Need, reserve};
use gateway_x12::outbound::RequestTemplate;
use gateway_x12::parse_documents;
use gateway_x12::requests::{Delivery, RequestError, RequestWriter, Routes, request_references};
use gateway_x12::start::{Context, start};
use gateway_x12::write::{ControlKind, ControlNumbers, MemoryControlNumbers};
use proptest::prelude::*;
use serde_json::{Value, json};

fn section(extra: &str) -> X12Config {
    toml::from_str(&format!(
        "profile = \"x12-278\"\n[identity]\nid = \"EHRGATEWAY\"\n{extra}"
    ))
    .unwrap_or_else(|e| panic!("section: {e}"))
}

fn folder_routes(dir: &std::path::Path) -> Routes {
    Routes::from_config(&section(&format!(
        "[requests]\n[[requests.routes]]\nname = \"folder\"\npayer_ids = [\"*\"]\noutbound = \"{}\"\n",
        dir.display()
    )))
    .expect("routes")
}

fn writer() -> RequestWriter {
    RequestWriter::new(
        RequestTemplate::load(&common::repo().join("mappings/x12-278/outbound/request.toml"))
            .expect("template"),
        Default::default(),
    )
}

/// A valid NPI from 9 digits (the Luhn check digit over `80840` + digits).
fn npi(nine: &str) -> String {
    let check = gateway_core::facts::npi_check_digit(nine).expect("nine digits");
    format!("{nine}{check}")
}

#[allow(clippy::too_many_arguments)]
fn case(
    case_id: &str,
    family: &str,
    given: &str,
    member_id: &str,
    payer_id: &str,
    requester_npi: Option<String>,
    cpt: &[String],
    icd: &[String],
) -> Case {
    let mut requester = json!({"role": "requester", "organization": "SYNTHETIC CLINIC"});
    if let Some(npi) = requester_npi {
        requester["npi"] = json!(npi);
    }
    serde_json::from_value(json!({
        "case_id": case_id,
        "tenant": "mso-test",
        "source": {"adapter": "hl7v2", "profile": "epic", "received_at": "2026-11-22T10:00:00Z"},
        "status": "requested",
        "patient": {
            "name": {"family": family, "given": [given]},
            "birth_date": "1970-01-31",
            "sex": "female"
        },
        "coverages": [{"sequence": 1, "payer": {"id": payer_id, "name": "SYNTHETIC PLAN"},
                       "member_id": member_id, "subscriber_relationship": "self"}],
        "providers": [requester],
        "services": cpt.iter().enumerate().map(|(i, code)| json!({
            "line": i + 1, "code": {"system": "CPT", "code": code}, "quantity": 1, "unit": "UN",
            "service_date": {"start": "2026-12-01"}, "place_of_service": "22"
        })).collect::<Vec<_>>(),
        "diagnoses": icd.iter().enumerate().map(|(i, code)| json!({
            "code": {"system": "ICD-10-CM", "code": code}, "primary": i == 0
        })).collect::<Vec<_>>(),
        // A reference the case arrived with: the written request carries our
        // case id as BHT03 instead.
        "references": {"x12_bht_reference": "THEIR-REF-1"}
    }))
    .expect("valid case")
}

/// The facts the request must keep.
fn kept(case: &Case) -> Value {
    let v = serde_json::to_value(case).expect("json");
    json!({
        "patient": v["patient"]["name"],
        "member_id": v["coverages"][0]["member_id"],
        "payer": v["coverages"][0]["payer"]["id"],
        "services": v["services"].as_array().map(|s| s.iter().map(|l| l["code"].clone()).collect::<Vec<_>>()),
        "diagnoses": v["diagnoses"].as_array().map(|d| d.iter().map(|x| x["code"].clone()).collect::<Vec<_>>()),
        "requester_npi": v["providers"].as_array().and_then(|p| p.iter().find(|x| x["role"] == "requester")).map(|x| x["npi"].clone()),
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_written_request_maps_back_to_the_same_facts_on_the_same_case(
        id in "[0-9a-f]{24}",
        family in "[A-Z]{2,20}",
        given in "[A-Z]{2,12}",
        member_id in "[A-Z][0-9A-Z]{4,14}",
        payer_id in "[0-9]{5}",
        npi9 in "[12][0-9]{8}",
        cpt in proptest::collection::vec("[0-9]{5}", 1..4),
        icd in proptest::collection::vec("[A-HJ-NP-T][0-9]{2}\\.[0-9]{1,2}", 1..5),
    ) {
        let case_id = format!("case-{id}");
        let original = case(&case_id, &family, &given, &member_id, &payer_id, Some(npi(&npi9)), &cpt, &icd);
        let dir = tempfile::tempdir().expect("tempdir");
        let routes = folder_routes(dir.path());
        let route = routes.route_for(&original).expect("routed");
        let numbers = MemoryControlNumbers::new();
        let written = runtime()
            .block_on(writer().write(&original, route, &numbers, &common::stamp()))
            .expect("written");
        let text = String::from_utf8_lossy(&written.bytes).into_owned();
        prop_assert!(text.contains(&format!("BHT*0007*13*{case_id}*")), "{}", text);

        let docs = parse_documents(&written.bytes).expect("parses");
        let outcome = common::profile().map(&docs[0], &common::context());
        prop_assert!(!outcome.has_errors(), "{:?}\n{}", outcome.diagnostics, text);
        prop_assert!(outcome.adopted, "BHT03 is our case id");
        let back = outcome.case.expect("case");
        prop_assert_eq!(&back.case_id, &case_id);
        prop_assert_eq!(kept(&back), kept(&original), "\n{}", text);
        // The references recorded for the request are the ones it carries.
        for (name, value) in &written.references {
            prop_assert_eq!(back.references.get(name), Some(value), "{}", name);
        }
        let (references, control) = request_references(&written.bytes).expect("read back");
        prop_assert_eq!(&references, &written.references);
        prop_assert_eq!(&control, &written.control);
        prop_assert_ne!(written.references.get("x12_trace").map(String::as_str), Some(case_id.as_str()));
    }
}

#[test]
fn each_request_gets_a_fresh_trace() {
    let original = case(
        "case-000000000000000000000042",
        "TESTPATIENT",
        "ANN",
        "W000000042",
        "60054",
        Some(npi("123456789")),
        &["78452".to_owned()],
        &["I25.10".to_owned()],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let routes = folder_routes(dir.path());
    let route = routes.route_for(&original).expect("routed");
    let numbers = MemoryControlNumbers::new();
    let rt = runtime();
    let a = rt
        .block_on(writer().write(&original, route, &numbers, &common::stamp()))
        .expect("a");
    let b = rt
        .block_on(writer().write(&original, route, &numbers, &common::stamp()))
        .expect("b");
    assert_ne!(a.references["x12_trace"], b.references["x12_trace"]);
    assert_ne!(a.isa13(), b.isa13(), "control numbers from the allocator");
}

#[test]
fn a_case_without_the_requesting_provider_npi_is_refused_by_name_and_uses_no_number() {
    let incomplete = case(
        "case-000000000000000000000043",
        "TESTPATIENT",
        "ANN",
        "W000000043",
        "60054",
        None,
        &["78452".to_owned()],
        &["I25.10".to_owned()],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let routes = folder_routes(dir.path());
    let route = routes.route_for(&incomplete).expect("routed");
    let numbers = MemoryControlNumbers::new();
    let rt = runtime();
    let err = rt
        .block_on(writer().write(&incomplete, route, &numbers, &common::stamp()))
        .expect_err("refused");
    let RequestError::Refused(facts) = &err else {
        panic!("not a refusal: {err}");
    };
    assert!(
        facts
            .iter()
            .any(|f| f.contains("requesting provider NPI (2010B NM109)")),
        "{facts:?}"
    );
    let reserved = rt
        .block_on(reserve(&numbers, Need::sets(1)))
        .expect("reserve");
    assert_eq!(
        reserved.next(ControlKind::Interchange).expect("isa13"),
        1,
        "the refused case used no control number"
    );
}

#[test]
fn a_folder_route_writes_the_request_once_atomically() {
    let original = case(
        "case-000000000000000000000044",
        "TESTPATIENT",
        "ANN",
        "W000000044",
        "60054",
        Some(npi("123456789")),
        &["78452".to_owned()],
        &["I25.10".to_owned()],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("to-payer");
    let routes = folder_routes(&out);
    let route = routes.route_for(&original).expect("routed");
    let rt = runtime();
    let written = rt
        .block_on(writer().write(
            &original,
            route,
            &MemoryControlNumbers::new(),
            &common::stamp(),
        ))
        .expect("written");
    for _ in 0..2 {
        let delivery = rt
            .block_on(route.deliver(&original.case_id, written.isa13(), &written.bytes))
            .expect("delivered");
        assert_eq!(
            delivery,
            Delivery::Written(format!(
                "278-request-{}-{}.x12",
                original.case_id,
                written.isa13()
            ))
        );
    }
    let names: Vec<String> = std::fs::read_dir(&out)
        .expect("folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(
        std::fs::read(out.join(&names[0])).expect("file"),
        written.bytes
    );
}

#[tokio::test]
async fn two_adapters_started_side_by_side_share_nothing() {
    let dirs = [
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    ];
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut pipelines = Vec::new();
    let mut tasks = Vec::new();
    for dir in &dirs {
        let inbound = dir.path().join("inbound");
        let section = section(&format!(
            "[file_drop]\ninbound = \"{}\"\npoll_interval_ms = 50\nsettle_ms = 0\n",
            inbound.display()
        ));
        assert!(
            gateway_x12::start::problems(&section, &common::repo().join("mappings")).is_empty()
        );
        let pipeline = Arc::new(MappingPipeline::new());
        let numbers: Arc<dyn ControlNumberAllocator> = Arc::new(MemoryControlNumbers::new());
        let started = start(
            &section,
            Context {
                pipeline: pipeline.clone(),
                shutdown: shutdown.clone(),
                numbers,
                audit: None,
                mappings_dir: common::repo().join("mappings"),
            },
        )
        .await
        .expect("started");
        assert_eq!(started.endpoints.len(), 1);
        assert_eq!(started.endpoints[0].transport, Transport::FileDrop);
        assert!(started.writeback.is_none() && started.requests.is_none());
        pipelines.push(pipeline);
        tasks.extend(started.tasks);
    }
    let names = ["request.x12", "request-two-lines.x12"];
    for (dir, name) in dirs.iter().zip(names) {
        std::fs::write(dir.path().join("inbound").join(name), common::sample(name)).expect("drop");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while pipelines.iter().any(|p| p.committed().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "both adapters took their file in"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (pipeline, name) in pipelines.iter().zip(names) {
        let committed = pipeline.committed();
        assert_eq!(committed.len(), 1);
        assert_eq!(committed[0].raw, common::sample(name));
    }
    shutdown.cancel();
    for task in tasks {
        task.await.expect("task ends");
    }
}
