//! Shared by the `mllp` and `stages` benches: the synthetic message, the HL7
//! syntax provider and profile loading. CPU time is read with
//! `gateway_testkit::bench`, shared with the X12 and FHIR benches.
#![allow(dead_code)] // each bench uses a different subset

use std::path::Path;

use gateway_mapping::{Profile, SyntaxProvider};

/// Gives the mapping engine the HL7 path syntax.
pub struct Hl7Syntax;

impl SyntaxProvider for Hl7Syntax {
    fn syntax(
        &self,
        format: gateway_core::SourceFormat,
    ) -> Option<&dyn gateway_core::path::PathSyntax> {
        match format {
            gateway_core::SourceFormat::Hl7v2 => Some(&gateway_hl7v2::path::Hl7PathSyntax),
            _ => None,
        }
    }
}

/// A ~1 KB ORM^O01 (synthetic: made-up names, ids and NPIs).
pub fn message(id: &str) -> Vec<u8> {
    let segs = [
        format!("MSH|^~\\&|EPIC|CARDIO-NORTH|GATEWAY|MSO|20261122100000||ORM^O01^ORM_O01|{id}|P|2.5.1|||AL|NE"),
        "PID|1||E10001^^^HOSP^MR~987-65-4320^^^SSA^SS||TESTPATIENT^ALPHA^Q^^^^L||19700131|F|||100 TEST LANE^^AUSTIN^TX^78701^USA^H||^PRN^PH^^1^512^5550100|||||||||||||||||||".to_string(),
        "PV1|1|O|CARD^101^1^CARDIO-NORTH||||1234567893^HEART^ANN^^^^^^NPI|||CAR||||||||||||||||||||||||||||||||||||20261122090000".to_string(),
        "IN1|1|PPO^Preferred Provider|60054^^^^PAYER|TEST HEALTH PLAN|PO BOX 1^^HARTFORD^CT^06101||||G100|||||||TESTPATIENT^ALPHA^Q|SEL|19700131|||||||||||||||||W123456789".to_string(),
        "GT1|1||TESTPATIENT^ALPHA^Q||100 TEST LANE^^AUSTIN^TX^78701|^PRN^PH^^1^512^5550100".to_string(),
        format!("ORC|NW|ORD{id}|||||^^^20261201^^R||20261122100000|||1234567893^HEART^ANN^^^^^^NPI"),
        format!("OBR|1|ORD{id}||78452^SPECT MPI^CPT4|||20261201080000||||||||1234567893^HEART^ANN^^^^^^NPI||||||||CAR|||^^^20261201^^R"),
        "DG1|1|I10|I25.10^Atherosclerotic heart disease^I10|||A".to_string(),
        "DG1|2|I10|R07.9^Chest pain, unspecified^I10|||W".to_string(),
        "NTE|1||Synthetic benchmark order; all values are made up.".to_string(),
        "ZPI|1|BENCH|IGNORED".to_string(),
    ];
    let mut out = segs.join("\r").into_bytes();
    out.push(b'\r');
    out
}

/// A small HL7 ORM profile used when `mappings/epic` is not present.
const BENCH_PROFILE: &str = r#"name = "bench-orm"
format = "hl7v2"
time_zone = "America/Chicago"

[defaults]
tenant = "mso-bench"

[tables.sex]
F = "female"
M = "male"
"#;

const BENCH_ORDERS: &str = r#"description = "Benchmark ORM^O01 mapping"

[match]
message_type = "ORM"

[case_id]
key = ["ORC-2"]

[fields]
status = { const = "requested" }
"patient.identifiers[0].value" = "PID-3[1].1"
"patient.identifiers[0].type" = { const = "MR" }
"patient.name.family" = "PID-5.1"
"patient.name.given" = { paths = ["PID-5.2", "PID-5.3"] }
"patient.birth_date" = { path = "PID-7", transforms = [{ date = "hl7" }] }
"patient.sex" = { path = "PID-8", transforms = [{ table = "sex" }] }
"references.placer_order" = "ORC-2"
"#;

/// The `epic` profile from `mappings/`, or a small built-in ORM profile
/// written to `scratch` when that does not load; with a label saying which.
pub fn load_profile(mappings: &Path, scratch: &Path) -> (Profile, String) {
    let epic = mappings.join("epic");
    if epic.join("profile.toml").is_file() {
        match Profile::load(&epic, &Hl7Syntax) {
            Ok(p) => {
                let label = format!("{} (mappings/epic)", p.name());
                return (p, label);
            }
            Err(e) => eprintln!("mappings/epic does not load ({e}); using the bench profile"),
        }
    }
    let dir = scratch.join("bench-orm");
    std::fs::create_dir_all(&dir).expect("profile dir");
    std::fs::write(dir.join("profile.toml"), BENCH_PROFILE).expect("write profile");
    std::fs::write(dir.join("orders.toml"), BENCH_ORDERS).expect("write orders");
    let p = Profile::load(&dir, &Hl7Syntax).unwrap_or_else(|e| panic!("bench profile: {e}"));
    (p, "bench-orm (built-in ORM profile)".to_string())
}
