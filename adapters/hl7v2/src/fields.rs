//! Field names of the common segments (HL7 v2.5.1), for `inspect` and for
//! readable diagnostics, plus a plain-text tree renderer.
//!
//! Only names: no data types or optionality — the parser does not validate
//! against a message structure, the mapping profile decides what it needs.

use gateway_core::{NodeId, SourceDocument, SourceTree};

/// Segment descriptions.
pub fn segment_name(segment: &str) -> Option<&'static str> {
    Some(match segment {
        "MSH" => "Message Header",
        "EVN" => "Event Type",
        "PID" => "Patient Identification",
        "PD1" => "Patient Additional Demographic",
        "PV1" => "Patient Visit",
        "PV2" => "Patient Visit - Additional Information",
        "IN1" => "Insurance",
        "IN2" => "Insurance Additional Information",
        "GT1" => "Guarantor",
        "ORC" => "Common Order",
        "OBR" => "Observation Request",
        "OBX" => "Observation/Result",
        "DG1" => "Diagnosis",
        "PR1" => "Procedures",
        "AL1" => "Patient Allergy Information",
        "NTE" => "Notes and Comments",
        "SCH" => "Scheduling Activity Information",
        "AIS" => "Appointment Information",
        "AIG" => "Appointment Information - General Resource",
        "AIL" => "Appointment Information - Location Resource",
        "AIP" => "Appointment Information - Personnel Resource",
        "RF1" => "Referral Information",
        "AUT" => "Authorization Information",
        "MSA" => "Message Acknowledgment",
        "ERR" => "Error",
        "TXA" => "Transcription Document Header",
        "FHS" => "File Header",
        "FTS" => "File Trailer",
        "BHS" => "Batch Header",
        "BTS" => "Batch Trailer",
        s if s.starts_with('Z') => "Site-defined segment",
        _ => return None,
    })
}

const MSH: &[&str] = &[
    "Field Separator",
    "Encoding Characters",
    "Sending Application",
    "Sending Facility",
    "Receiving Application",
    "Receiving Facility",
    "Date/Time of Message",
    "Security",
    "Message Type",
    "Message Control ID",
    "Processing ID",
    "Version ID",
    "Sequence Number",
    "Continuation Pointer",
    "Accept Acknowledgment Type",
    "Application Acknowledgment Type",
    "Country Code",
    "Character Set",
    "Principal Language of Message",
    "Alternate Character Set Handling Scheme",
    "Message Profile Identifier",
];
const EVN: &[&str] = &[
    "Event Type Code",
    "Recorded Date/Time",
    "Date/Time Planned Event",
    "Event Reason Code",
    "Operator ID",
    "Event Occurred",
    "Event Facility",
];
const PID: &[&str] = &[
    "Set ID - PID",
    "Patient ID",
    "Patient Identifier List",
    "Alternate Patient ID - PID",
    "Patient Name",
    "Mother's Maiden Name",
    "Date/Time of Birth",
    "Administrative Sex",
    "Patient Alias",
    "Race",
    "Patient Address",
    "County Code",
    "Phone Number - Home",
    "Phone Number - Business",
    "Primary Language",
    "Marital Status",
    "Religion",
    "Patient Account Number",
    "SSN Number - Patient",
    "Driver's License Number - Patient",
    "Mother's Identifier",
    "Ethnic Group",
    "Birth Place",
    "Multiple Birth Indicator",
    "Birth Order",
    "Citizenship",
    "Veterans Military Status",
    "Nationality",
    "Patient Death Date and Time",
    "Patient Death Indicator",
    "Identity Unknown Indicator",
    "Identity Reliability Code",
    "Last Update Date/Time",
    "Last Update Facility",
    "Species Code",
    "Breed Code",
    "Strain",
    "Production Class Code",
    "Tribal Citizenship",
];
const PD1: &[&str] = &[
    "Living Dependency",
    "Living Arrangement",
    "Patient Primary Facility",
    "Patient Primary Care Provider Name & ID No.",
    "Student Indicator",
    "Handicap",
    "Living Will Code",
    "Organ Donor Code",
    "Separate Bill",
    "Duplicate Patient",
    "Publicity Code",
    "Protection Indicator",
    "Protection Indicator Effective Date",
    "Place of Worship",
    "Advance Directive Code",
    "Immunization Registry Status",
    "Immunization Registry Status Effective Date",
    "Publicity Code Effective Date",
    "Military Branch",
    "Military Rank/Grade",
    "Military Status",
];
const PV1: &[&str] = &[
    "Set ID - PV1",
    "Patient Class",
    "Assigned Patient Location",
    "Admission Type",
    "Preadmit Number",
    "Prior Patient Location",
    "Attending Doctor",
    "Referring Doctor",
    "Consulting Doctor",
    "Hospital Service",
    "Temporary Location",
    "Preadmit Test Indicator",
    "Re-admission Indicator",
    "Admit Source",
    "Ambulatory Status",
    "VIP Indicator",
    "Admitting Doctor",
    "Patient Type",
    "Visit Number",
    "Financial Class",
    "Charge Price Indicator",
    "Courtesy Code",
    "Credit Rating",
    "Contract Code",
    "Contract Effective Date",
    "Contract Amount",
    "Contract Period",
    "Interest Code",
    "Transfer to Bad Debt Code",
    "Transfer to Bad Debt Date",
    "Bad Debt Agency Code",
    "Bad Debt Transfer Amount",
    "Bad Debt Recovery Amount",
    "Delete Account Indicator",
    "Delete Account Date",
    "Discharge Disposition",
    "Discharged to Location",
    "Diet Type",
    "Servicing Facility",
    "Bed Status",
    "Account Status",
    "Pending Location",
    "Prior Temporary Location",
    "Admit Date/Time",
    "Discharge Date/Time",
    "Current Patient Balance",
    "Total Charges",
    "Total Adjustments",
    "Total Payments",
    "Alternate Visit ID",
    "Visit Indicator",
    "Other Healthcare Provider",
];
const PV2: &[&str] = &[
    "Prior Pending Location",
    "Accommodation Code",
    "Admit Reason",
    "Transfer Reason",
    "Patient Valuables",
    "Patient Valuables Location",
    "Visit User Code",
    "Expected Admit Date/Time",
    "Expected Discharge Date/Time",
    "Estimated Length of Inpatient Stay",
    "Actual Length of Inpatient Stay",
    "Visit Description",
    "Referral Source Code",
    "Previous Service Date",
    "Employment Illness Related Indicator",
    "Purge Status Code",
    "Purge Status Date",
    "Special Program Code",
    "Retention Indicator",
    "Expected Number of Insurance Plans",
    "Visit Publicity Code",
    "Visit Protection Indicator",
    "Clinic Organization Name",
    "Patient Status Code",
    "Visit Priority Code",
    "Previous Treatment Date",
    "Expected Discharge Disposition",
    "Signature on File Date",
    "First Similar Illness Date",
    "Patient Charge Adjustment Code",
    "Recurring Service Code",
    "Billing Media Code",
    "Expected Surgery Date and Time",
    "Military Partnership Code",
    "Military Non-Availability Code",
    "Newborn Baby Indicator",
    "Baby Detained Indicator",
    "Mode of Arrival Code",
    "Recreational Drug Use Code",
    "Admission Level of Care Code",
    "Precaution Code",
    "Patient Condition Code",
    "Living Will Code",
    "Organ Donor Code",
    "Advance Directive Code",
    "Patient Status Effective Date",
    "Expected LOA Return Date/Time",
    "Expected Pre-admission Testing Date/Time",
    "Notify Clergy Code",
];
const IN1: &[&str] = &[
    "Set ID - IN1",
    "Insurance Plan ID",
    "Insurance Company ID",
    "Insurance Company Name",
    "Insurance Company Address",
    "Insurance Co Contact Person",
    "Insurance Co Phone Number",
    "Group Number",
    "Group Name",
    "Insured's Group Emp ID",
    "Insured's Group Emp Name",
    "Plan Effective Date",
    "Plan Expiration Date",
    "Authorization Information",
    "Plan Type",
    "Name of Insured",
    "Insured's Relationship to Patient",
    "Insured's Date of Birth",
    "Insured's Address",
    "Assignment of Benefits",
    "Coordination of Benefits",
    "Coord of Ben. Priority",
    "Notice of Admission Flag",
    "Notice of Admission Date",
    "Report of Eligibility Flag",
    "Report of Eligibility Date",
    "Release Information Code",
    "Pre-Admit Cert (PAC)",
    "Verification Date/Time",
    "Verification By",
    "Type of Agreement Code",
    "Billing Status",
    "Lifetime Reserve Days",
    "Delay Before L.R. Day",
    "Company Plan Code",
    "Policy Number",
    "Policy Deductible",
    "Policy Limit - Amount",
    "Policy Limit - Days",
    "Room Rate - Semi-Private",
    "Room Rate - Private",
    "Insured's Employment Status",
    "Insured's Administrative Sex",
    "Insured's Employer's Address",
    "Verification Status",
    "Prior Insurance Plan ID",
    "Coverage Type",
    "Handicap",
    "Insured's ID Number",
    "Signature Code",
    "Signature Code Date",
    "Insured's Birth Place",
    "VIP Indicator",
];
const IN2: &[&str] = &[
    "Insured's Employee ID",
    "Insured's Social Security Number",
    "Insured's Employer's Name and ID",
    "Employer Information Data",
    "Mail Claim Party",
    "Medicare Health Ins Card Number",
    "Medicaid Case Name",
    "Medicaid Case Number",
    "Military Sponsor Name",
    "Military ID Number",
    "Dependent of Military Recipient",
    "Military Organization",
    "Military Station",
    "Military Service",
    "Military Rank/Grade",
    "Military Status",
    "Military Retire Date",
    "Military Non-Avail Cert On File",
    "Baby Coverage",
    "Combine Baby Bill",
    "Blood Deductible",
    "Special Coverage Approval Name",
    "Special Coverage Approval Title",
    "Non-Covered Insurance Code",
    "Payor ID",
    "Payor Subscriber ID",
    "Eligibility Source",
    "Room Coverage Type/Amount",
    "Policy Type/Amount",
    "Daily Deductible",
    "Living Dependency",
    "Ambulatory Status",
    "Citizenship",
    "Primary Language",
    "Living Arrangement",
    "Publicity Code",
    "Protection Indicator",
    "Student Indicator",
    "Religion",
    "Mother's Maiden Name",
    "Nationality",
    "Ethnic Group",
    "Marital Status",
    "Insured's Employment Start Date",
    "Employment Stop Date",
    "Job Title",
    "Job Code/Class",
    "Job Status",
    "Employer Contact Person Name",
    "Employer Contact Person Phone Number",
    "Employer Contact Reason",
    "Insured's Contact Person's Name",
    "Insured's Contact Person Phone Number",
    "Insured's Contact Person Reason",
    "Relationship to the Patient Start Date",
    "Relationship to the Patient Stop Date",
    "Insurance Co. Contact Reason",
    "Insurance Co Contact Phone Number",
    "Policy Scope",
    "Policy Source",
    "Patient Member Number",
    "Guarantor's Relationship to Insured",
    "Insured's Phone Number - Home",
    "Insured's Employer Phone Number",
    "Military Handicapped Program",
    "Suspend Flag",
    "Copay Limit Flag",
    "Stoploss Limit Flag",
    "Insured Organization Name and ID",
    "Insured Employer Organization Name and ID",
    "Race",
    "CMS Patient's Relationship to Insured",
];
const GT1: &[&str] = &[
    "Set ID - GT1",
    "Guarantor Number",
    "Guarantor Name",
    "Guarantor Spouse Name",
    "Guarantor Address",
    "Guarantor Ph Num - Home",
    "Guarantor Ph Num - Business",
    "Guarantor Date/Time of Birth",
    "Guarantor Administrative Sex",
    "Guarantor Type",
    "Guarantor Relationship",
    "Guarantor SSN",
    "Guarantor Date - Begin",
    "Guarantor Date - End",
    "Guarantor Priority",
    "Guarantor Employer Name",
    "Guarantor Employer Address",
    "Guarantor Employer Phone Number",
    "Guarantor Employee ID Number",
    "Guarantor Employment Status",
    "Guarantor Organization Name",
    "Guarantor Billing Hold Flag",
    "Guarantor Credit Rating Code",
    "Guarantor Death Date And Time",
    "Guarantor Death Flag",
    "Guarantor Charge Adjustment Code",
    "Guarantor Household Annual Income",
    "Guarantor Household Size",
    "Guarantor Employer ID Number",
    "Guarantor Marital Status Code",
    "Guarantor Hire Effective Date",
    "Employment Stop Date",
    "Living Dependency",
    "Ambulatory Status",
    "Citizenship",
    "Primary Language",
    "Living Arrangement",
    "Publicity Code",
    "Protection Indicator",
    "Student Indicator",
    "Religion",
    "Mother's Maiden Name",
    "Nationality",
    "Ethnic Group",
    "Contact Person's Name",
    "Contact Person's Telephone Number",
    "Contact Reason",
    "Contact Relationship",
    "Job Title",
    "Job Code/Class",
    "Guarantor Employer's Organization Name",
    "Handicap",
    "Job Status",
    "Guarantor Financial Class",
    "Guarantor Race",
];
const ORC: &[&str] = &[
    "Order Control",
    "Placer Order Number",
    "Filler Order Number",
    "Placer Group Number",
    "Order Status",
    "Response Flag",
    "Quantity/Timing",
    "Parent",
    "Date/Time of Transaction",
    "Entered By",
    "Verified By",
    "Ordering Provider",
    "Enterer's Location",
    "Call Back Phone Number",
    "Order Effective Date/Time",
    "Order Control Code Reason",
    "Entering Organization",
    "Entering Device",
    "Action By",
    "Advanced Beneficiary Notice Code",
    "Ordering Facility Name",
    "Ordering Facility Address",
    "Ordering Facility Phone Number",
    "Ordering Provider Address",
    "Order Status Modifier",
    "Advanced Beneficiary Notice Override Reason",
    "Filler's Expected Availability Date/Time",
    "Confidentiality Code",
    "Order Type",
    "Enterer Authorization Mode",
    "Parent Universal Service Identifier",
];
const OBR: &[&str] = &[
    "Set ID - OBR",
    "Placer Order Number",
    "Filler Order Number",
    "Universal Service Identifier",
    "Priority - OBR",
    "Requested Date/Time",
    "Observation Date/Time",
    "Observation End Date/Time",
    "Collection Volume",
    "Collector Identifier",
    "Specimen Action Code",
    "Danger Code",
    "Relevant Clinical Information",
    "Specimen Received Date/Time",
    "Specimen Source",
    "Ordering Provider",
    "Order Callback Phone Number",
    "Placer Field 1",
    "Placer Field 2",
    "Filler Field 1",
    "Filler Field 2",
    "Results Rpt/Status Chng - Date/Time",
    "Charge to Practice",
    "Diagnostic Serv Sect ID",
    "Result Status",
    "Parent Result",
    "Quantity/Timing",
    "Result Copies To",
    "Parent",
    "Transportation Mode",
    "Reason for Study",
    "Principal Result Interpreter",
    "Assistant Result Interpreter",
    "Technician",
    "Transcriptionist",
    "Scheduled Date/Time",
    "Number of Sample Containers",
    "Transport Logistics of Collected Sample",
    "Collector's Comment",
    "Transport Arrangement Responsibility",
    "Transport Arranged",
    "Escort Required",
    "Planned Patient Transport Comment",
    "Procedure Code",
    "Procedure Code Modifier",
    "Placer Supplemental Service Information",
    "Filler Supplemental Service Information",
    "Medically Necessary Duplicate Procedure Reason",
    "Result Handling",
    "Parent Universal Service Identifier",
];
const OBX: &[&str] = &[
    "Set ID - OBX",
    "Value Type",
    "Observation Identifier",
    "Observation Sub-ID",
    "Observation Value",
    "Units",
    "References Range",
    "Abnormal Flags",
    "Probability",
    "Nature of Abnormal Test",
    "Observation Result Status",
    "Effective Date of Reference Range",
    "User Defined Access Checks",
    "Date/Time of the Observation",
    "Producer's ID",
    "Responsible Observer",
    "Observation Method",
    "Equipment Instance Identifier",
    "Date/Time of the Analysis",
];
const DG1: &[&str] = &[
    "Set ID - DG1",
    "Diagnosis Coding Method",
    "Diagnosis Code - DG1",
    "Diagnosis Description",
    "Diagnosis Date/Time",
    "Diagnosis Type",
    "Major Diagnostic Category",
    "Diagnostic Related Group",
    "DRG Approval Indicator",
    "DRG Grouper Review Code",
    "Outlier Type",
    "Outlier Days",
    "Outlier Cost",
    "Grouper Version And Type",
    "Diagnosis Priority",
    "Diagnosing Clinician",
    "Diagnosis Classification",
    "Confidential Indicator",
    "Attestation Date/Time",
    "Diagnosis Identifier",
    "Diagnosis Action Code",
];
const PR1: &[&str] = &[
    "Set ID - PR1",
    "Procedure Coding Method",
    "Procedure Code",
    "Procedure Description",
    "Procedure Date/Time",
    "Procedure Functional Type",
    "Procedure Minutes",
    "Anesthesiologist",
    "Anesthesia Code",
    "Anesthesia Minutes",
    "Surgeon",
    "Procedure Practitioner",
    "Consent Code",
    "Procedure Priority",
    "Associated Diagnosis Code",
    "Procedure Code Modifier",
    "Procedure DRG Type",
    "Tissue Type Code",
    "Procedure Identifier",
    "Procedure Action Code",
];
const AL1: &[&str] = &[
    "Set ID - AL1",
    "Allergen Type Code",
    "Allergen Code/Mnemonic/Description",
    "Allergy Severity Code",
    "Allergy Reaction Code",
    "Identification Date",
];
const NTE: &[&str] = &[
    "Set ID - NTE",
    "Source of Comment",
    "Comment",
    "Comment Type",
];
const SCH: &[&str] = &[
    "Placer Appointment ID",
    "Filler Appointment ID",
    "Occurrence Number",
    "Placer Group Number",
    "Schedule ID",
    "Event Reason",
    "Appointment Reason",
    "Appointment Type",
    "Appointment Duration",
    "Appointment Duration Units",
    "Appointment Timing Quantity",
    "Placer Contact Person",
    "Placer Contact Phone Number",
    "Placer Contact Address",
    "Placer Contact Location",
    "Filler Contact Person",
    "Filler Contact Phone Number",
    "Filler Contact Address",
    "Filler Contact Location",
    "Entered By Person",
    "Entered By Phone Number",
    "Entered By Location",
    "Parent Placer Appointment ID",
    "Parent Filler Appointment ID",
    "Filler Status Code",
    "Placer Order Number",
    "Filler Order Number",
];
const AIS: &[&str] = &[
    "Set ID - AIS",
    "Segment Action Code",
    "Universal Service Identifier",
    "Start Date/Time",
    "Start Date/Time Offset",
    "Start Date/Time Offset Units",
    "Duration",
    "Duration Units",
    "Allow Substitution Code",
    "Filler Status Code",
    "Placer Supplemental Service Information",
    "Filler Supplemental Service Information",
];
const AIG: &[&str] = &[
    "Set ID - AIG",
    "Segment Action Code",
    "Resource ID",
    "Resource Type",
    "Resource Group",
    "Resource Quantity",
    "Resource Quantity Units",
    "Start Date/Time",
    "Start Date/Time Offset",
    "Start Date/Time Offset Units",
    "Duration",
    "Duration Units",
    "Allow Substitution Code",
    "Filler Status Code",
];
const AIL: &[&str] = &[
    "Set ID - AIL",
    "Segment Action Code",
    "Location Resource ID",
    "Location Type-AIL",
    "Location Group",
    "Start Date/Time",
    "Start Date/Time Offset",
    "Start Date/Time Offset Units",
    "Duration",
    "Duration Units",
    "Allow Substitution Code",
    "Filler Status Code",
];
const AIP: &[&str] = &[
    "Set ID - AIP",
    "Segment Action Code",
    "Personnel Resource ID",
    "Resource Type",
    "Resource Group",
    "Start Date/Time",
    "Start Date/Time Offset",
    "Start Date/Time Offset Units",
    "Duration",
    "Duration Units",
    "Allow Substitution Code",
    "Filler Status Code",
];
const RF1: &[&str] = &[
    "Referral Status",
    "Referral Priority",
    "Referral Type",
    "Referral Disposition",
    "Referral Category",
    "Originating Referral Identifier",
    "Effective Date",
    "Expiration Date",
    "Process Date",
    "Referral Reason",
    "External Referral Identifier",
];
const AUT: &[&str] = &[
    "Authorizing Payor, Plan ID",
    "Authorizing Payor, Company ID",
    "Authorizing Payor, Company Name",
    "Authorization Effective Date",
    "Authorization Expiration Date",
    "Authorization Identifier",
    "Reimbursement Limit",
    "Requested Number of Treatments",
    "Authorized Number of Treatments",
    "Process Date",
];
const MSA: &[&str] = &[
    "Acknowledgment Code",
    "Message Control ID",
    "Text Message",
    "Expected Sequence Number",
    "Delayed Acknowledgment Type",
    "Error Condition",
];
const ERR: &[&str] = &[
    "Error Code and Location",
    "Error Location",
    "HL7 Error Code",
    "Severity",
    "Application Error Code",
    "Application Error Parameter",
    "Diagnostic Information",
    "User Message",
    "Inform Person Indicator",
    "Override Type",
    "Override Reason Code",
    "Help Desk Contact Point",
];

/// The standard name of field `index` (1-based) of `segment`, if known.
pub fn field_name(segment: &str, index: usize) -> Option<&'static str> {
    let table: &[&str] = match segment {
        "MSH" => MSH,
        "EVN" => EVN,
        "PID" => PID,
        "PD1" => PD1,
        "PV1" => PV1,
        "PV2" => PV2,
        "IN1" => IN1,
        "IN2" => IN2,
        "GT1" => GT1,
        "ORC" => ORC,
        "OBR" => OBR,
        "OBX" => OBX,
        "DG1" => DG1,
        "PR1" => PR1,
        "AL1" => AL1,
        "NTE" => NTE,
        "SCH" => SCH,
        "AIS" => AIS,
        "AIG" => AIG,
        "AIL" => AIL,
        "AIP" => AIP,
        "RF1" => RF1,
        "AUT" => AUT,
        "MSA" => MSA,
        "ERR" => ERR,
        _ => return None,
    };
    index.checked_sub(1).and_then(|i| table.get(i)).copied()
}

/// Renders a parsed message as indented text, one node per line, with
/// positions (`PID-3[2].1`), standard field names, byte spans and values.
/// For a terminal: this shows the message's data, so it is never logged.
pub fn render_tree(doc: &SourceDocument) -> String {
    let tree = &doc.tree;
    let mut out = String::new();
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for &seg in tree.children(tree.root()) {
        let name = tree.name(seg);
        let n = counts.entry(name).or_insert(0);
        *n += 1;
        let label = if *n > 1 {
            format!("{name}[{n}]")
        } else {
            name.to_owned()
        };
        out.push_str(&label);
        if let Some(d) = segment_name(name) {
            out.push_str(&format!("  {d}"));
        }
        push_span(&mut out, tree, seg);
        out.push('\n');
        let mut reps: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for &field in tree.children(seg) {
            let fname = tree.name(field);
            let r = reps.entry(fname).or_insert(0);
            *r += 1;
            let total = tree.children_named(seg, fname).count();
            let mut pos = format!("{label}-{fname}");
            if total > 1 {
                pos.push_str(&format!("[{r}]"));
            }
            line(
                &mut out,
                1,
                &pos,
                tree,
                field,
                fname.parse().ok().and_then(|i| field_name(name, i)),
            );
            let comps = tree.children(field);
            // A plain value's single component/subcomponent adds nothing.
            if comps.len() == 1 && tree.children(comps[0]).len() <= 1 && tree.name(comps[0]) == "1"
            {
                continue;
            }
            for &c in comps {
                let cpos = format!("{pos}.{}", tree.name(c));
                line(&mut out, 2, &cpos, tree, c, None);
                let subs = tree.children(c);
                if subs.len() == 1 && tree.name(subs[0]) == "1" {
                    continue;
                }
                for &s in subs {
                    line(
                        &mut out,
                        3,
                        &format!("{cpos}.{}", tree.name(s)),
                        tree,
                        s,
                        None,
                    );
                }
            }
        }
    }
    out
}

fn push_span(out: &mut String, tree: &SourceTree, node: NodeId) {
    if let Some(s) = tree.span(node) {
        out.push_str(&format!("  @{}..{}", s.start, s.end));
    }
}

fn line(
    out: &mut String,
    depth: usize,
    pos: &str,
    tree: &SourceTree,
    node: NodeId,
    name: Option<&str>,
) {
    out.push_str(&"  ".repeat(depth));
    out.push_str(pos);
    if let Some(n) = name {
        out.push_str(&format!(" ({n})"));
    }
    push_span(out, tree, node);
    if let Some(v) = tree.value(node) {
        out.push_str(&format!("  = {v:?}"));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(field_name("MSH", 9), Some("Message Type"));
        assert_eq!(field_name("MSH", 10), Some("Message Control ID"));
        assert_eq!(field_name("PID", 3), Some("Patient Identifier List"));
        assert_eq!(field_name("PID", 8), Some("Administrative Sex"));
        assert_eq!(field_name("IN1", 36), Some("Policy Number"));
        assert_eq!(field_name("IN1", 49), Some("Insured's ID Number"));
        assert_eq!(field_name("OBR", 4), Some("Universal Service Identifier"));
        assert_eq!(field_name("DG1", 3), Some("Diagnosis Code - DG1"));
        assert_eq!(field_name("ORC", 12), Some("Ordering Provider"));
        assert_eq!(field_name("AUT", 6), Some("Authorization Identifier"));
        assert_eq!(field_name("ERR", 3), Some("HL7 Error Code"));
        assert_eq!(field_name("SCH", 11), Some("Appointment Timing Quantity"));
        assert_eq!(field_name("PID", 0), None);
        assert_eq!(field_name("ZZZ", 1), None);
    }

    #[test]
    fn renders_positions_names_and_values() {
        let doc = crate::parse::parse_message(
            b"MSH|^~\\&|A|B|C|D|20260101||ORM^O01|X1|P|2.5.1\rPID|1||E1^^^H^MR~E2||DOE^JO\r",
        )
        .expect("parses");
        let text = render_tree(&doc);
        assert!(text.contains("MSH-9 (Message Type)"), "{text}");
        assert!(
            text.contains("PID-3[2] (Patient Identifier List)"),
            "{text}"
        );
        assert!(text.contains("PID-5.2  @"), "{text}");
        assert!(text.contains("= \"JO\""), "{text}");
    }
}
