//! The shipped `legacy-desktop` profile and playbooks, without a display: the
//! playbooks load, and the captures the read playbook would take from the
//! sample order screen map into the right Case.

mod support;

use std::collections::BTreeMap;

use gateway_desktop::playbook::Action;
use gateway_desktop::{Playbook, PlaybookKind};

fn shipped(name: &str) -> Playbook {
    Playbook::load(
        &support::repo_root()
            .join("mappings/legacy-desktop/playbooks")
            .join(name),
    )
    .expect("shipped playbook loads")
}

#[test]
fn sample_order_screen_maps_into_the_expected_case() {
    let read = shipped("read-order.toml");
    assert_eq!(read.kind, PlaybookKind::Read);
    let order: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            support::repo_root().join("sample-messages/desktop/legacy-desktop/order-screen.json"),
        )
        .expect("sample order"),
    )
    .expect("sample JSON");
    // Which screen field each capture copies, from the playbook's coordinates:
    // row i of the Order Entry screen is at y = 33 + 40 * i.
    let fields = [
        "order_number",
        "patient_name",
        "mrn",
        "dob",
        "sex",
        "payer_name",
        "payer_id",
        "member_id",
        "procedure_code",
        "diagnosis_code",
    ];
    let mut captures = BTreeMap::new();
    for step in &read.steps {
        if let Action::Copy {
            at: Some((_, y)),
            capture,
            ..
        } = &step.action
        {
            let row = usize::try_from((y - 33) / 40).expect("row");
            let value = order[fields[row]].as_str().expect("string field");
            captures.insert(capture.clone(), value.to_owned());
        }
    }
    assert_eq!(captures.len(), fields.len());
    let case = support::map_captures(&read, &captures);
    support::assert_sample_order_case(&case);
}

#[test]
fn write_playbook_verifies_every_field_it_types() {
    let write = shipped("write-decision.toml");
    assert_eq!(write.kind, PlaybookKind::Write);
    let typed: Vec<&str> = write
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Type { text } => Some(text.source()),
            _ => None,
        })
        .collect();
    let verified: Vec<&str> = write
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Verify { expect, .. } => Some(expect.source()),
            _ => None,
        })
        .collect();
    assert_eq!(typed.len(), 5);
    assert_eq!(typed, verified);
    let save = write.steps.last().expect("steps");
    assert_eq!(save.id, "save");
    let first_verify = write
        .steps
        .iter()
        .position(|s| matches!(s.action, Action::Verify { .. }))
        .expect("verify");
    assert!(first_verify < save.index);
}

/// The shipped write playbook checks the patient before its first input and
/// again right before Save; without either check the loader refuses it,
/// naming file, line and step.
#[test]
fn shipped_write_playbook_without_its_context_checks_is_refused() {
    let path = support::repo_root().join("mappings/legacy-desktop/playbooks/write-decision.toml");
    let text = std::fs::read_to_string(&path).expect("write-decision.toml");
    let write = shipped("write-decision.toml");
    let checks: Vec<&str> = write
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::CheckContext { .. }))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        checks,
        ["check-patient-before-typing", "check-patient-before-save"]
    );
    let save = write.step("save").expect("save step");
    assert!(save.commit, "Save is the commit step");
    let line_of = |needle: &str| {
        let offset = text.find(needle).expect("in the playbook");
        text[..offset].matches('\n').count() + 1
    };
    // Cut one step (from its `[[step]]` header to the next) out of the file.
    let without = |id: &str| {
        let start = text
            .find(&format!("[[step]]\nid = \"{id}\""))
            .expect("step present");
        let next = text[start + 1..].find("[[step]]").expect("a later step") + start + 1;
        format!("{}{}", &text[..start], &text[next..])
    };
    let file = std::path::Path::new("write-decision.toml");

    let first = without("check-patient-before-typing");
    let err = Playbook::parse(file, &first).expect_err("no check before typing");
    let line = {
        let offset = first.find("id = \"clear-auth-number\"").expect("click");
        first[..offset].matches('\n').count()
    };
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "write-decision.toml:{line}: step 3 `clear-auth-number`: `click` sends input before any `check_context`"
        )),
        "{message}"
    );
    assert!(message.contains("the write rule:"), "{message}");

    let second = without("check-patient-before-save");
    let err = Playbook::parse(file, &second).expect_err("no check before Save");
    let message = err.to_string();
    let save_line = {
        let offset = second.find("id = \"save\"").expect("save");
        second[..offset].matches('\n').count()
    };
    assert!(
        message.contains(&format!("write-decision.toml:{save_line}: step ")),
        "{message}"
    );
    assert!(
        message.contains("`save`: the commit step can be reached after step ")
            && message.contains("`verify-note` (line "),
        "{message}"
    );
    assert!(
        line_of("id = \"save\"") > save_line,
        "the cut moved Save up"
    );
}

/// The checks compare the way the read mapping maps: the banner of the
/// sample order's own patient (name upper-cased, US date) passes every field
/// against the case the read playbook's captures map into; another patient's
/// banner fails every field.
#[test]
fn context_checks_normalize_like_the_read_mapping() {
    let read = shipped("read-order.toml");
    let write = shipped("write-decision.toml");
    let order: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            support::repo_root().join("sample-messages/desktop/legacy-desktop/order-screen.json"),
        )
        .expect("sample order"),
    )
    .expect("order json");
    let text = |k: &str| order[k].as_str().expect("string field").to_owned();
    let captures: BTreeMap<String, String> = [
        ("order.number", "order_number"),
        ("patient.name", "patient_name"),
        ("patient.mrn", "mrn"),
        ("patient.birth_date", "dob"),
        ("patient.sex", "sex"),
        ("insurance.payer_name", "payer_name"),
        ("insurance.payer_id", "payer_id"),
        ("insurance.member_id", "member_id"),
        ("order.procedure_code", "procedure_code"),
        ("order.diagnosis_code", "diagnosis_code"),
    ]
    .into_iter()
    .map(|(capture, key)| (capture.to_owned(), text(key)))
    .collect();
    let case = support::map_captures(&read, &captures);
    let ctx = gateway_desktop::template::Context {
        case: serde_json::to_value(&case).expect("case json"),
        captured: BTreeMap::new(),
        tables: write.tables.clone(),
    };
    // What the test application's banner shows, by check field name.
    let own: BTreeMap<&str, String> = BTreeMap::from([
        ("mrn", text("mrn")),
        ("patient_name", text("patient_name").to_uppercase()),
        ("birth_date", text("dob")),
        ("order_number", text("order_number")),
    ]);
    let other: BTreeMap<&str, String> = BTreeMap::from([
        ("mrn", "E20002".to_owned()),
        ("patient_name", "OKAFOR, ADAEZE".to_owned()),
        ("birth_date", "07/04/1982".to_owned()),
        ("order_number", "ORD-70002".to_owned()),
    ]);
    let mut checked = 0;
    for step in &write.steps {
        let Action::CheckContext { fields } = &step.action else {
            continue;
        };
        for field in fields {
            let expected = field.expect.render(&ctx).expect("the case has the field");
            let compare = |banner: &BTreeMap<&str, String>| {
                gateway_desktop::context::compare(
                    &field.compare,
                    banner.get(field.name.as_str()).map(String::as_str),
                    &expected,
                )
            };
            assert_eq!(compare(&own), None, "field {}", field.name);
            assert_eq!(
                compare(&other),
                Some(gateway_desktop::context::FieldFault::Differs),
                "field {}",
                field.name
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 8, "two checks of four fields");
}
