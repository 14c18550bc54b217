#!/usr/bin/env python3
"""Generates the issue-16 synthetic HL7 v2 samples in sample-messages/hl7v2/hl7v2-base/
(provider ids, code systems, demographics/insurance, cancels, SIU S12/S14/S15, ADT A01, DFT/MDM).

All data is made up (TESTPATIENT names, E2xxxx MRNs; 1234567893 and 1245319599 are
Luhn-valid fake NPIs, 1234567890 deliberately fails the check). Run from the repository
root: python3 adapters/hl7v2/tests/support/gen_fact_samples.py. The files are checked in;
this script documents how they were made."""
import os
def seg(name, fields):
    # fields: dict position -> value
    n = max(fields) if fields else 0
    out = [name] + [fields.get(i, '') for i in range(1, n + 1)]
    return '|'.join(out)
def msh(app, typ, ctl, ver='2.5.1'):
    return f"MSH|^~\\&|{app}|DEMO-CLINIC|EHR-GATEWAY|MSO|20261123080000||{typ}|{ctl}|P|{ver}"
def write(path, msgs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        f.write(''.join('\r'.join(m) + '\r' for m in msgs))
base = 'sample-messages/hl7v2/hl7v2-base/'
pid = "PID|1||E20001^^^DEMO-CLINIC^MR||TESTPATIENT^OMAR^T^JR||19660412|M|||12 SAMPLE RD^^AUSTIN^TX^78703^USA||^PRN^PH^^1^512^5550111"
in1 = seg('IN1', {1: '1', 2: 'DPPO^Demo PPO', 3: '60054', 4: 'DEMO HEALTH PLAN', 8: 'G300', 15: 'PPO', 17: '4^SELF', 36: 'W300000003'})
# 1. provider ids: SL licence + NPI repetitions in ORC-12, untyped user name in PV1-8
write(base + 'orm-o01-provider-ids.hl7', [[
    msh('ORDERS', 'ORM^O01^ORM_O01', 'FID0001'),
    pid,
    "PV1|1|O||||||ShephardJ^REFERDOC^RITA^^III",
    in1,
    "ORC|NW|ORD2001|||||^^^^^R|||||3850^SHEPHARD^JOHN^K^JR^DR^^^TXMB^^^^SL~1234567893^SHEPHARD^JOHN^K^JR^DR^^^^^^^NPI",
    "OBR|1|ORD2001||70553^MRI BRAIN WWO^CPT4||||||||||||3850^SHEPHARD^JOHN^K^JR^DR^^^TXMB^^^^SL||||||||||||||||||||20261210",
    "DG1|1|I10|G4489^Demo headache^I10|||F",
]])
# 2. invalid typed NPI (XX, fails Luhn) only in OBR-16, with given and middle names there (ORC-12 empty)
write(base + 'orm-o01-obr16-invalid-npi.hl7', [[
    msh('ORDERS', 'ORM^O01^ORM_O01', 'FID0002'),
    "PID|1||E20002^^^DEMO-CLINIC^MR||TESTPATIENT^PAULA||19800229|F",
    "ORC|NW|ORD2002",
    "OBR|1|ORD2002||72148^MRI LUMBAR SPINE^CPT4||||||||||||1234567890^OBRDOC^OLGA^M^^^^^^^^^XX||||||||||||||||||||20261211",
    "DG1|1|I10|M5450^Demo low back pain^I10|||F",
]])
# 3. code systems: local label, bare mnemonic (CPT in OBR-4.4), dental, ICD-9 diagnosis
write(base + 'orm-o01-code-systems.hl7', [[
    msh('ORDERS', 'ORM^O01^ORM_O01', 'FID0003'),
    "PID|1||E20003^^^DEMO-CLINIC^MR||TESTPATIENT^QUINN||19750605|U",
    "ORC|NW|ORD2003||||||||||1245319599^CODEDOC^CARL^^^^^^NPI",
    "OBR|1|ORD2003||4241^KNEE MRI LOCAL^AllinaCodes||||||||||||||||||||||||||||||||20261212",
    "OBR|2|ORD2003||MRS^MRI SPINE^^72148^MRI LUMBAR SPINE^CPT4||||||||||||||||||||||||||||||||20261212",
    "OBR|3|ORD2003||D0330^PANORAMIC RADIOGRAPHIC IMAGE^CDT||||||||||||||||||||||||||||||||20261212",
    "OBR|4|ORD2003||J1100^DEXAMETHASONE INJ^HCPCS||||||||||||||||||||||||||||||||20261212",
    "DG1|1|I9|428.0^Demo heart failure^I9|||F",
    "DG1|2|I10|I509^Demo heart failure^I10|||F",
]])
# 4. demographics and insurance: suffix, leading spaces, implausible birth date, IN1-15, IN1-17 code^text
write(base + 'orm-o01-demographics-insurance.hl7', [[
    msh('ORDERS', 'ORM^O01^ORM_O01', 'FID0004'),
    "PID|1||  E20004^^^DEMO-CLINIC^MR||  TESTPATIENT ^  RUTH^A^SR||10130101|F|||  34 EXAMPLE WAY^^  AUSTIN^TX^78704",
    in1,
    "ORC|NW|ORD2004|||||^^^^^R|||||1234567893^HEARTDOC^ANN^^^^^^NPI",
    "OBR|1|ORD2004||93306^ECHO TTE COMPLETE^CPT4||||||||||||||||||||||||||||||||20261213",
    "DG1|1|I10|I509^Demo heart failure^I10|||F",
]])
# 5. order cancel by ORC-1 OC (order cancelled)
write(base + 'orm-o01-cancel-oc.hl7', [[
    msh('ORDERS', 'ORM^O01^ORM_O01', 'FID0005'),
    "PID|1||E20004^^^DEMO-CLINIC^MR||TESTPATIENT^RUTH^A^SR||19610101|F",
    "ORC|OC|ORD2004|||||^^^^^R|||||1234567893^HEARTDOC^ANN^^^^^^NPI",
    "OBR|1|ORD2004||93306^ECHO TTE COMPLETE^CPT4||||||||||||||||||||||||||||||||20261213",
]])
# 6. SIU S12 with TQ1-9 urgency and a typed NPI in AIP-3
sch = "SCH|APT5001|APT5001|||||^MRI knee||||^^^20261214080000^20261214090000|||||||||||||||ORD5001"
write(base + 'siu-s12-tq1-urgency.hl7', [[
    msh('SCHED', 'SIU^S12^SIU_S12', 'FID0006'),
    sch,
    "TQ1|1||||||20261214080000|20261214090000|A",
    "PID|1||E20005^^^DEMO-CLINIC^MR||TESTPATIENT^SAM||19900101|M",
    "RGS|1",
    "AIS|1||73721^MRI KNEE WO CONTRAST^CPT4|20261214080000",
    "AIP|1||1245319599^KNEEDOC^KIM^^^^^^^^^^NPI",
]])
# 7. SIU S14 modification then S15 cancellation of that appointment
write(base + 'siu-s14-s15-update-cancel.hl7', [
    [msh('SCHED', 'SIU^S14^SIU_S12', 'FID0007'),
     sch.replace('20261214080000^20261214090000', '20261215080000^20261215090000'),
     "PID|1||E20005^^^DEMO-CLINIC^MR||TESTPATIENT^SAM||19900101|M",
     "RGS|1",
     "AIS|1||73721^MRI KNEE WO CONTRAST^CPT4|20261215080000"],
    [msh('SCHED', 'SIU^S15^SIU_S12', 'FID0008'),
     sch,
     "PID|1||E20005^^^DEMO-CLINIC^MR||TESTPATIENT^SAM||19900101|M",
     "RGS|1",
     "AIS|1||73721^MRI KNEE WO CONTRAST^CPT4|20261215080000"],
])
# 8. SIU S12 without any service (a follow-up visit slot): no case, kept
write(base + 'siu-s12-no-service.hl7', [[
    msh('SCHED', 'SIU^S12^SIU_S12', 'FID0009'),
    "SCH|APT5002|APT5002|||||^Follow-up visit||||^^^20261216100000^20261216101500",
    "PID|1||E20006^^^DEMO-CLINIC^MR||TESTPATIENT^TARA||19850303|F",
    "RGS|1",
    "AIP|1||1234567893^HEARTDOC^ANN^^^^^^NPI",
]])
# 9. ADT A01 admission with new insurance
write(base + 'adt-a01-admit.hl7', [[
    msh('ADT', 'ADT^A01^ADT_A01', 'FID0010'),
    "EVN|A01|20261123080000",
    "PID|1||E20001^^^DEMO-CLINIC^MR||TESTPATIENT^OMAR^T^JR||19660412|M|||99 MOVED AVE^^AUSTIN^TX^78705^USA",
    "PV1|1|I",
    seg('IN1', {1: '1', 2: 'HMO^Demo HMO', 3: '87726', 4: 'DEMO CARE HMO', 8: 'G400', 15: 'HMO', 17: 'SEL', 36: 'H400000004'}),
]])
# 10. DFT P03 charge and MDM T02 document: acknowledged and kept
write(base + 'dft-p03-mdm-t02-kept.hl7', [
    [msh('BILLING', 'DFT^P03^DFT_P03', 'FID0011'),
     "EVN|P03|20261123080000",
     "PID|1||E20001^^^DEMO-CLINIC^MR||TESTPATIENT^OMAR",
     "FT1|1|||20261123||CG|70553^MRI BRAIN WWO^CPT4|||1"],
    [msh('DOCS', 'MDM^T02^MDM_T02', 'FID0012'),
     "EVN|T02|20261123080000",
     "PID|1||E20001^^^DEMO-CLINIC^MR||TESTPATIENT^OMAR",
     "TXA|1|CN|TX|20261123080000",
     "OBX|1|TX|NOTE^Clinic note^L||Synthetic note text"],
])
