//! Identifiers and codes are validated, never copied or guessed — properties
//! over random HL7 orders mapped with every shipped HL7 profile:
//!
//! * an id that fails the NPI Luhn check never appears in any Case `npi`
//!   field, whatever type, assigning authority or field carries it (it stays
//!   an identifier of the provider instead);
//! * no code lacking the CPT shape is ever labelled CPT, whatever coding
//!   system label (known, unknown or none) the sender gives.
//!
//! And the fate rule of issue 16: every shipped HL7 profile gives every
//! common message kind a mapping file (`lint` M031 otherwise), which a
//! profile that lacks them is warned about.

use gateway_core::SourceFormat;
use gateway_core::facts::{has_cpt_shape, npi_check_digit, npi_is_valid};
use gateway_core::path::PathSyntax;
use gateway_hl7v2::parse::parse_input;
use gateway_hl7v2::path::Hl7PathSyntax;
use gateway_mapping::{MapContext, Profile, SyntaxProvider, render_all};
use proptest::prelude::*;

struct Syntaxes;

impl SyntaxProvider for Syntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        match format {
            SourceFormat::Hl7v2 => Some(&Hl7PathSyntax),
            _ => None,
        }
    }
}

const PROFILES: &[&str] = &[
    "hl7v2-base",
    "epic",
    "ecw-onprem",
    "nextgen-enterprise",
    "meditech",
];

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn profiles() -> Vec<Profile> {
    PROFILES
        .iter()
        .map(|p| {
            Profile::load(&repo().join("mappings").join(p), &Syntaxes)
                .unwrap_or_else(|e| panic!("{p}: {}", render_all(&e.diagnostics)))
        })
        .collect()
}

/// An XCN: id, names, assigning authority (XCN-9) and identifier type (XCN-13).
fn xcn(id: &str, assigner: &str, kind: &str) -> String {
    format!("{id}^DOC^ANN^^^^^^{assigner}^^^^{kind}")
}

fn order(ids: &Ids, codes: &[(String, String)]) -> Vec<u8> {
    let mut segs = vec![
        "MSH|^~\\&|ORDERS|DEMO-CLINIC|EHR-GATEWAY|MSO|20261123080000||ORM^O01^ORM_O01|PROP0001|P|2.5.1".to_owned(),
        "PID|1||E90001^^^DEMO-CLINIC^MR||TESTPATIENT^PROP||19700101|F".to_owned(),
        format!("PV1|1|O||||||{}", xcn(&ids.pv1.0, &ids.pv1.1, &ids.pv1.2)),
        format!(
            "ORC|NW|ORDP001||||||||||{}",
            xcn(&ids.orc.0, &ids.orc.1, &ids.orc.2)
        ),
    ];
    for (i, (code, system)) in codes.iter().enumerate() {
        segs.push(format!(
            "OBR|{}|ORDP001||{code}^PROCEDURE^{system}||||||||||||{}",
            i + 1,
            xcn(&ids.obr.0, &ids.obr.1, &ids.obr.2)
        ));
    }
    segs.push("DG1|1|I10|I509^Demo^I10|||F".to_owned());
    let mut text = segs.join("\r");
    text.push('\r');
    text.into_bytes()
}

/// (id, XCN-9 assigning authority, XCN-13 type) for ORC-12, OBR-16, PV1-8.
#[derive(Debug, Clone)]
struct Ids {
    orc: (String, String, String),
    obr: (String, String, String),
    pv1: (String, String, String),
}

fn provider_id() -> impl Strategy<Value = String> {
    prop_oneof![
        // Valid NPIs.
        "[12][0-9]{8}".prop_map(|nine| {
            let c = npi_check_digit(&nine).expect("nine digits");
            format!("{nine}{c}")
        }),
        // Ten digits failing the check, short numbers, user names, licences.
        "[0-9]{10}",
        "[0-9]{1,9}",
        "[A-Z][A-Za-z]{2,10}",
        "[A-Z][0-9]{4,8}",
    ]
}

fn typed_id() -> impl Strategy<Value = (String, String, String)> {
    (
        provider_id(),
        prop_oneof![Just(""), Just("NPI"), Just("TXMB"), Just("CMS")],
        prop_oneof![
            Just(""),
            Just("NPI"),
            Just("XX"),
            Just("SL"),
            Just("UPIN"),
            Just("PRN")
        ],
    )
        .prop_map(|(id, a, k)| (id, a.to_owned(), k.to_owned()))
}

fn code() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            "[0-9]{5}",
            "[0-9]{4}[FTU]",
            "[0-9]{3,4}",
            "[A-V][0-9]{4}",
            "D[0-9]{4}",
            "[A-Z]{2,4}",
            "[A-Z]{2}\\.[A-Z]{3,5}",
            "[0-9]{5}-[0-9]",
        ],
        prop_oneof![
            Just(""),
            Just("CPT"),
            Just("CPT4"),
            Just("C4"),
            Just("HCPCS"),
            Just("L"),
            Just("AllinaCodes"),
            Just("EAP"),
            Just("MTPROC"),
            Just("LN"),
        ],
    )
        .prop_map(|(c, s)| (c, s.to_owned()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn no_invalid_npi_and_no_false_cpt(
        orc in typed_id(),
        obr in typed_id(),
        pv1 in typed_id(),
        codes in proptest::collection::vec(code(), 1..4),
    ) {
        let ids = Ids { orc, obr, pv1 };
        let bytes = order(&ids, &codes);
        let input = parse_input(&bytes);
        let doc = input.messages[0].result.as_ref().expect("parses");
        let mut ctx = MapContext::new("2026-11-23T08:00:00Z");
        ctx.adapter = Some("hl7v2".into());
        for profile in profiles() {
            let outcome = profile.map(doc, &ctx);
            let Some(case) = outcome.case else { continue };
            for p in &case.providers {
                if let Some(npi) = &p.npi {
                    prop_assert!(npi_is_valid(npi), "{}: invalid NPI {npi:?} in {:?}", profile.name(), p);
                }
            }
            for s in &case.services {
                if s.code.system == gateway_core::case::CodeSystem::Cpt {
                    prop_assert!(has_cpt_shape(&s.code.code), "{}: {:?} labelled CPT", profile.name(), s.code);
                }
            }
            // Nothing the sender sent as a provider id is lost: each id in
            // ORC-12 is the ordering provider's NPI or one of its identifiers.
            if let Some(ordering) = case.providers.iter().find(|p| p.role == gateway_core::case::ProviderRole::Ordering) {
                let id = &ids.orc.0;
                let kept = ordering.npi.as_deref() == Some(id.as_str())
                    || ordering.identifiers.iter().any(|i| &i.value == id);
                prop_assert!(kept, "{}: ORC-12 id {id:?} lost: {:?}", profile.name(), ordering);
            }
        }
    }
}

#[test]
fn every_shipped_hl7_profile_gives_every_common_kind_a_fate() {
    for profile in profiles() {
        let undefined = profile.undefined_common_kinds();
        assert!(
            undefined.is_empty(),
            "{}:\n{}",
            profile.name(),
            render_all(&undefined)
        );
    }
}

#[test]
fn lint_warns_about_common_kinds_a_profile_leaves_undefined() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("profile.toml"),
        "name = \"narrow\"\nformat = \"hl7v2\"\n[defaults]\ntenant = \"t\"\n",
    )
    .expect("profile");
    std::fs::write(
        dir.path().join("orders.toml"),
        "[match]\nmessage_type = [\"ORM^O01\", \"ADT^*\"]\n[case_id]\nkey = [\"ORC-2.1\"]\n[fields]\nstatus = { const = \"requested\" }\n",
    )
    .expect("orders");
    let found = Profile::lint(dir.path(), &Syntaxes);
    let undefined: Vec<String> = found
        .iter()
        .filter(|d| d.code.as_str() == "M031")
        .map(|d| d.message.clone())
        .collect();
    for kind in ["ORU^R01", "DFT^P03", "SIU^S15", "OMG^O19", "REF^I12"] {
        assert!(
            undefined.iter().any(|m| m.contains(&format!("`{kind}`"))),
            "{kind} not reported: {undefined:#?}"
        );
    }
    for kind in ["ORM^O01", "ADT^A01", "ADT^A08"] {
        assert!(
            !undefined.iter().any(|m| m.contains(&format!("`{kind}`"))),
            "{kind} is handled: {undefined:#?}"
        );
    }
}
