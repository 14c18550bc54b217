//! HL7 paths evaluated over parsed messages (parser + path syntax + core evaluation).

use gateway_core::NodeId;
use gateway_core::path::Path;
use gateway_hl7v2::parse::parse_message;
use gateway_hl7v2::path::compile;

fn msg() -> String {
    let in1 = |seq: u32, plan: &str, payer: &str, name: &str, group: &str, member: &str| {
        let mut f = vec![String::new(); 37];
        f[0] = "IN1".into();
        f[1] = seq.to_string();
        f[2] = plan.into();
        f[3] = payer.into();
        f[4] = name.into();
        f[8] = group.into();
        f[36] = member.into();
        f.join("|")
    };
    [
        "MSH|^~\\&|EPIC|NORTH|GW|MSO|20261122100000||ORM^O01^ORM_O01|C100|P|2.5.1".to_owned(),
        "PID|1|E-ALT|E10001^^^NORTH^MR~999001234^^^SSA^SS~E20001^^^SOUTH^MR||DOE^JANE^Q||19700131|F".into(),
        in1(1, "PPO", "60054", "ACME HEALTH", "G100", "W123456789"),
        in1(2, "HMO", "60055", "BETA CARE", "G200", "W987654321"),
        "OBR|1|ORD1||78452^SPECT&MPI&L^CPT".into(),
        "OBX|1|TX|NOTE^Note||free text".into(),
        "OBX|2|ST|AUTHNUM^Auth number||AUTH123".into(),
    ]
    .join("\r")
}

fn values(path: &str) -> Vec<String> {
    let doc = parse_message(msg().as_bytes()).expect("parses");
    let p = compile(path).expect("compiles");
    p.evaluate(&doc.tree, doc.tree.root())
        .into_iter()
        .map(|n| doc.tree.value(n).unwrap_or("<none>").to_owned())
        .collect()
}

fn first(path: &str) -> Option<String> {
    values(path).into_iter().next()
}

#[test]
fn fields_repetitions_components() {
    assert_eq!(first("PID-3").as_deref(), Some("E10001^^^NORTH^MR"));
    assert_eq!(first("PID-3.1").as_deref(), Some("E10001"));
    assert_eq!(first("PID-3[2].1").as_deref(), Some("999001234"));
    assert_eq!(values("PID-3[*].1"), vec!["E10001", "999001234", "E20001"]);
    assert_eq!(first("PID-8.1").as_deref(), Some("F"));
    assert_eq!(first("PID-5.2").as_deref(), Some("JANE"));
    assert_eq!(first("OBR-4.2.2").as_deref(), Some("MPI"));
    assert_eq!(first("MSH-9.2").as_deref(), Some("O01"));
    assert!(values("PID-3[9]").is_empty());
    assert!(values("PV1-2").is_empty());
}

#[test]
fn filters() {
    assert_eq!(values("PID-3[*](5=MR).1"), vec!["E10001", "E20001"]);
    assert_eq!(values("PID-3(5=MR).1"), vec!["E10001"]);
    assert_eq!(values("PID-3(5=SS|XX).1"), vec!["999001234"]);
    assert_eq!(values("PID-3[*](5!=MR).1"), vec!["999001234"]);
    assert_eq!(values("PID-3[*](4.1=SOUTH,5=MR).1"), vec!["E20001"]);
    assert_eq!(values("PID-3[*](!2).1").len(), 3);
    assert_eq!(first("OBX(3.1=AUTHNUM)-5").as_deref(), Some("AUTH123"));
    assert_eq!(values("OBX[*](2=TX|ST)-1"), vec!["1", "2"]);
}

#[test]
fn segments_and_relative_paths() {
    assert_eq!(first("IN1[2]-36").as_deref(), Some("W987654321"));
    let doc = parse_message(msg().as_bytes()).expect("parses");
    let items: Vec<NodeId> = compile("IN1[*]")
        .expect("c")
        .evaluate(&doc.tree, doc.tree.root());
    assert_eq!(items.len(), 2);
    let rel: Path = compile("-36").expect("c");
    let members: Vec<_> = items
        .iter()
        .map(|n| rel.first_value(&doc.tree, *n).unwrap_or("").to_owned())
        .collect();
    assert_eq!(members, vec!["W123456789", "W987654321"]);
    assert_eq!(
        compile("-4").expect("c").first_value(&doc.tree, items[1]),
        Some("BETA CARE")
    );
    // foreach over repetitions, component paths relative to each
    let reps = compile("PID-3[*]")
        .expect("c")
        .evaluate(&doc.tree, doc.tree.root());
    let kinds: Vec<_> = reps
        .iter()
        .map(|r| {
            compile(".5")
                .expect("c")
                .first_value(&doc.tree, *r)
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, vec!["MR", "SS", "MR"]);
    assert_eq!(
        compile(".4.1").expect("c").first_value(&doc.tree, reps[2]),
        Some("SOUTH")
    );
}
