#!/usr/bin/env python3
"""Generates the synthetic HL7 v2 samples in sample-messages/hl7v2/<profile>/.

All data is made up (TESTPATIENT names, E1xxxx MRNs, Luhn-valid fake NPIs).
Run from the repository root: python3 adapters/hl7v2/tests/support/gen_samples.py
The files are checked in; this script documents how they were made.
"""
import os

ROOT = "sample-messages/hl7v2"
NPI = ["1234567893", "1987654328", "1555555550", "1666666668", "1777777776", "1444444446"]


def seg(name, fields, n=None):
    """A segment from a {index: value} dict (1-based field numbers)."""
    top = max(fields) if fields else 0
    parts = [name] + [fields.get(i, "") for i in range(1, top + 1)]
    return "|".join(parts)


def msh(app, fac, mtype, ctrl, ver, enc="^~\\&", charset=None, accept=None, when="20261122093000"):
    f = [app, fac, "EHR-GATEWAY", "MSO", when, "", mtype, ctrl, "P", ver]
    if accept or charset:
        f += ["", "", accept or "", "", "", charset or ""]
    while f and f[-1] == "":
        f.pop()
    return "MSH|" + enc + "|" + "|".join(f)


def pid(ids="", name="TESTPATIENT^JANE^Q", dob="19700131", sex="F", addr="100 DEMO ST^APT 1^AUSTIN^TX^78701^USA",
        phone="^PRN^PH^^1^512^5550100", pid2="", pid4="", extra=None):
    f = {1: "1", 2: pid2, 3: ids, 4: pid4, 5: name, 7: dob, 8: sex, 11: addr, 13: phone}
    f.update(extra or {})
    return seg("PID", f)


def in1(seq, plan, payer, name, group, member, rel="SEL"):
    return seg("IN1", {1: str(seq), 2: plan, 3: payer, 4: name, 8: group, 17: rel, 36: member})


def orc(ctl, placer, ordering, prio="", filler=""):
    f = {1: ctl, 2: placer, 3: filler, 12: ordering}
    if prio:
        f[7] = "^^^^^" + prio
    return seg("ORC", f)


def obr(n, placer, code, date, ordering, filler=""):
    return seg("OBR", {1: str(n), 2: placer, 3: filler, 4: code, 16: ordering, 36: date})


def dg1(n, code, text, system="I10"):
    return seg("DG1", {1: str(n), 2: system, 3: f"{code}^{text}^{system}", 6: "F"})


def nte(n, text):
    return seg("NTE", {1: str(n), 3: text})


def write(profile, name, segments, term="\r", encoding="utf-8", bom=False, raw=None):
    os.makedirs(f"{ROOT}/{profile}", exist_ok=True)
    data = raw if raw is not None else (term.join(segments) + term).encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    with open(f"{ROOT}/{profile}/{name}", "wb") as fh:
        fh.write(data)


ORD = f"{NPI[0]}^HEARTDOC^ANN^^^^^^NPI"
REF = f"{NPI[1]}^REFERDOC^BOB^^^^^^NPI"


def base():
    p = "hl7v2-base"
    write(p, "orm-o01-standard.hl7", [
        msh("ORDERS", "DEMO-CLINIC", "ORM^O01^ORM_O01", "BASE0001", "2.5.1"),
        pid("E10001^^^DEMO-CLINIC^MR~900000001^^^SSA^SS"),
        seg("PV1", {1: "1", 2: "O", 8: REF}),
        in1(1, "PPO^Demo PPO", "60054", "DEMO HEALTH PLAN", "G100", "W100000001"),
        in1(2, "MCR^Demo Medicare", "04412", "DEMO MEDICARE", "", "1EG4TE5MK72", "SEL"),
        orc("NW", "ORD1001", ORD, "R"),
        obr(1, "ORD1001", "78452^SPECT MPI^CPT4", "20261201", ORD),
        dg1(1, "I2510", "Demo coronary disease"),
        dg1(2, "R079", "Demo chest pain"),
        nte(1, "Fasting 12h \\T\\ no caffeine\\.br\\Pacemaker: \\F\\no\\F\\ \\X41\\ ok"),
    ])
    write(p, "omg-o19-v27-truncation.hl7", [
        msh("ORDERS", "DEMO-CLINIC", "OMG^O19^OMG_O19", "BASE0002", "2.7", enc="^~\\&#"),
        pid("E10002^^^DEMO-CLINIC^MR", name="TESTPATIENT^JOHN", dob="19650704", sex="M"),
        orc("NW", "ORD1002", ORD),
        seg("TQ1", {1: "1", 2: "2", 9: "A"}),
        obr(1, "ORD1002", "70553^MRI BRAIN W/WO^CPT4", "20261205", ORD),
        dg1(1, "G43909", "Demo migraine"),
        nte(1, "Dose reduced 5\\P\\ per protocol"),
    ])
    write(p, "ref-i12-authorization.hl7", [
        msh("REFERRALS", "DEMO-CLINIC", "REF^I12^REF_I12", "BASE0003", "2.5.1"),
        seg("RF1", {1: "A", 2: "R", 3: "MED^Medical", 6: "REF3001", 7: "20261120", 8: "20270220"}),
        seg("AUT", {1: "PPO", 2: "60054", 3: "DEMO HEALTH PLAN", 4: "20261201", 5: "20270228", 6: "AUTH3001", 8: "6"}),
        seg("PRD", {1: "RP", 2: "REFERDOC^BOB", 5: "^WPN^PH^^1^512^5550111", 7: NPI[1]}),
        seg("PRD", {1: "RT", 2: "THERAPIST^TINA", 7: NPI[2]}),
        pid("E10003^^^DEMO-CLINIC^MR", name="TESTPATIENT^MARY^A", dob="19801115"),
        in1(1, "PPO^Demo PPO", "60054", "DEMO HEALTH PLAN", "G100", "W100000003", "SPO"),
        dg1(1, "M545", "Demo low back pain"),
        seg("PR1", {1: "1", 2: "C4", 3: "97110^Therapeutic exercise^C4", 5: "20261201"}),
    ])
    write(p, "siu-s12-lf.hl7", [
        msh("SCHED", "DEMO-CLINIC", "SIU^S12^SIU_S12", "BASE0004", "2.5.1"),
        seg("SCH", {1: "APT4001", 2: "APT4001", 7: "^Stress test", 11: "^^^20261203090000^20261203100000^R", 26: "ORD4001"}),
        pid("E10004^^^DEMO-CLINIC^MR", name="TESTPATIENT^ALEX", sex="U"),
        seg("RGS", {1: "1"}),
        seg("AIS", {1: "1", 3: "93015^Cardiovascular stress test^CPT4", 4: "20261203090000"}),
        seg("AIP", {1: "1", 3: f"{NPI[0]}^HEARTDOC^ANN"}),
    ], term="\n")
    write(p, "adt-a08-crlf.hl7", [
        msh("ADT", "DEMO-CLINIC", "ADT^A08^ADT_A01", "BASE0005", "2.5.1"),
        seg("EVN", {1: "A08", 2: "20261122093000"}),
        pid("E10001^^^DEMO-CLINIC^MR", addr="200 NEW DEMO AVE^^AUSTIN^TX^78702^USA"),
        seg("PV1", {1: "1", 2: "O"}),
        in1(1, "HMO^Demo HMO", "87726", "DEMO CARE HMO", "G200", "H200000001"),
    ], term="\r\n")
    m1 = [msh("ORDERS", "DEMO-CLINIC", "ORM^O01^ORM_O01", "BASE0101", "2.5.1"),
          pid("E10011^^^DEMO-CLINIC^MR", name="TESTPATIENT^KIM"),
          orc("NW", "ORD1101", ORD), obr(1, "ORD1101", "74177^CT ABD PELVIS W^CPT4", "20261210", ORD)]
    m2 = [msh("ORDERS", "DEMO-CLINIC", "ORM^O01^ORM_O01", "BASE0102", "2.5.1"),
          pid("E10012^^^DEMO-CLINIC^MR", name="TESTPATIENT^LEE", sex="M"),
          orc("NW", "ORD1102", ORD), obr(1, "ORD1102", "93306^ECHO COMPLETE^CPT4", "20261211", ORD)]
    write(p, "batch-fhs-bhs.hl7", ["FHS|^~\\&|ORDERS|DEMO-CLINIC|EHR-GATEWAY|MSO|20261122093000",
                                    "BHS|^~\\&|ORDERS|DEMO-CLINIC|EHR-GATEWAY|MSO|20261122093000"]
          + m1 + m2 + ["BTS|2", "FTS|1"])
    write(p, "oru-r01-unsupported.hl7", [
        msh("LAB", "DEMO-CLINIC", "ORU^R01^ORU_R01", "BASE0006", "2.5.1"),
        pid("E10001^^^DEMO-CLINIC^MR"),
        seg("OBR", {1: "1", 4: "2345-7^Glucose^LN"}),
        seg("OBX", {1: "1", 2: "NM", 3: "2345-7^Glucose^LN", 5: "95", 11: "F"}),
    ])


def epic():
    p = "epic"
    ids = "E20001^^^CARDIO-NORTH^MRN~Z900001^^^EPIC^EPI"
    write(p, "orm-o01-v251-eap.hl7", [
        msh("EPIC", "CARDIO-NORTH", "ORM^O01^ORM_O01", "EPIC0001", "2.5.1"),
        pid(ids, name="TESTPATIENT^EMMA^R", dob="19580309"),
        seg("PV1", {1: "1", 2: "O", 3: "CARD^^^CARDIO-NORTH", 8: REF}),
        in1(1, "100^DEMO PPO GOLD", "60054", "DEMO HEALTH PLAN", "G300", "W200000001"),
        orc("NW", "EP5001", ORD, "R"),
        obr(1, "EP5001", "IMG1001^NM MYOCARDIAL SPECT^EAP", "20261201", ORD),
        dg1(1, "I25.10", "Demo CAD"),
        nte(1, "Pt reports SOB \\T\\ fatigue\\.br\\Prior cath 2024"),
        seg("ZPI", {1: "1", 2: "EPIC-CUSTOM", 3: "ignored by the profile"}),
    ])
    write(p, "orm-o01-v23-lf-stat.hl7", [
        msh("EPIC", "CARDIO-NORTH", "ORM^O01", "EPIC0002", "2.3"),
        pid("E20002^^^CARDIO-NORTH^MRN", name="TESTPATIENT^OMAR", dob="19490101", sex="M"),
        in1(1, "200^DEMO MEDICARE ADV", "04412", "DEMO MEDICARE", "", "M200000002"),
        orc("NW", "EP5002", ORD, "S"),
        obr(1, "EP5002", "CARD2002^LEFT HEART CATH^EAP", "20261124", ORD),
        dg1(1, "I214", "Demo NSTEMI"),
    ], term="\n")
    write(p, "omg-o19-v27-header.hl7", [
        msh("EPIC", "CARDIO-NORTH", "OMG^O19^OMG_O19", "EPIC0003", "2.7", enc="^~\\&#", accept="AL"),
        pid(ids.replace("E20001", "E20003").replace("Z900001", "Z900003"), name="TESTPATIENT^NORA"),
        orc("NW", "EP5003", ORD),
        seg("TQ1", {1: "1", 9: "R"}),
        obr(1, "EP5003", "IMG1003^CT ABD/PELV W CONTRAST^EAP", "20261215", ORD),
        dg1(1, "R1030", "Demo abdominal pain"),
        seg("ZPA", {1: "SUPPLY-LOC-7"}),
    ])
    latin = [
        msh("EPIC", "CARDIO-NORTH", "ADT^A08^ADT_A01", "EPIC0004", "2.5.1", charset="8859/1"),
        seg("EVN", {1: "A08"}),
        pid("E20001^^^CARDIO-NORTH^MRN", name="TESTPATIENT^JÖRG", addr="1 MÜHLENWEG DEMO^^AUSTIN^TX^78703^USA"),
        in1(1, "100^DEMO PPO GOLD", "60054", "DEMO HEALTH PLAN", "G300", "W200000001"),
    ]
    write(p, "adt-a08-latin1.hl7", latin, encoding="latin-1")
    write(p, "siu-s12-crlf.hl7", [
        msh("EPIC", "CARDIO-NORTH", "SIU^S12^SIU_S12", "EPIC0005", "2.5.1"),
        seg("SCH", {1: "EPA6001", 2: "EPA6001", 7: "^Echo", 11: "^^^20261208080000", 26: "EP5005"}),
        pid("E20005^^^CARDIO-NORTH^MRN", name="TESTPATIENT^PAT"),
        seg("AIS", {1: "1", 3: "93306^ECHO TTE COMPLETE^CPT4", 4: "20261208080000"}),
        seg("AIP", {1: "1", 3: f"{NPI[3]}^SONODOC^SAM"}),
    ], term="\r\n")
    b = []
    for i in (1, 2):
        b += [msh("EPIC", "CARDIO-NORTH", "ORM^O01^ORM_O01", f"EPIC010{i}", "2.5.1"),
              pid(f"E2010{i}^^^CARDIO-NORTH^MRN", name=f"TESTPATIENT^BATCH{i}"),
              orc("NW", f"EP510{i}", ORD), obr(1, f"EP510{i}", "IMG1002^MRI BRAIN^EAP", "20261220", ORD)]
    write(p, "batch-bhs-orders.hl7", ["BHS|^~\\&|EPIC|CARDIO-NORTH"] + b + ["BTS|2"])
    write(p, "orm-o01-cancel.hl7", [
        msh("EPIC", "CARDIO-NORTH", "ORM^O01^ORM_O01", "EPIC0006", "2.5.1"),
        pid(ids, name="TESTPATIENT^EMMA^R", dob="19580309"),
        orc("CA", "EP5001", ORD),
        obr(1, "EP5001", "IMG1001^NM MYOCARDIAL SPECT^EAP", "20261201", ORD),
    ])


def ecw():
    p = "ecw-onprem"
    ordp = f"{NPI[4]}^ORTHODOC^OLIVIA"
    write(p, "orm-o01-v23-zx1.hl7", [
        msh("ECW", "ORTHO-EAST", "ORM^O01", "ECW0001", "2.3"),
        pid("", name="TESTPATIENT^FRAN", sex="Female", pid2="31001", pid4="CH31001", extra={10: "White", 16: "Married"}),
        in1(1, "", "62308", "DEMO CIGNA", "G400", "U300000001"),
        orc("NW", "EC7001", ordp),
        obr(1, "EC7001", "73721^MRI KNEE WO^CPT", "20261202", ordp),
        dg1(1, "M1711", "Demo knee OA"),
        "ZX1|6|PDF|REFERRAL^Referral letter^L|demo|JVBERi0xLjQKJURFTU8K",
    ])
    write(p, "orm-o01-crlf-escapes.hl7", [
        msh("ECW", "ORTHO-EAST", "ORM^O01", "ECW0002", "2.3"),
        pid("", name="TESTPATIENT^GUS", sex="Male", pid2="31002", pid4="CH31002"),
        orc("NW", "EC7002", ordp, "A"),
        obr(1, "EC7002", "29881^KNEE ARTHROSCOPY\\S\\MENISCECTOMY^CPT", "20261209", ordp),
        dg1(1, "S83241A", "Demo meniscus tear"),
        nte(1, "Pain 7/10 \\T\\ locking\\X0D\\\\X0A\\See PT notes"),
    ], term="\r\n")
    write(p, "siu-s12-aig.hl7", [
        msh("ECW", "ORTHO-EAST", "SIU^S12", "ECW0003", "2.3"),
        seg("SCH", {1: "EAPT01", 2: "EAPT01", 7: "Knee injection", 11: "^^^20261204140000"}),
        pid("", name="TESTPATIENT^FRAN", sex="Female", pid2="31001", pid4="CH31001"),
        seg("AIS", {1: "1", 3: "20610^INJECTION MAJOR JOINT^CPT", 4: "20261204140000"}),
        seg("AIG", {1: "1", 3: f"{NPI[4]}^ORTHODOC^OLIVIA"}),
    ])
    write(p, "adt-a04-textual.hl7", [
        msh("ECW", "ORTHO-EAST", "ADT^A04", "ECW0004", "2.3"),
        seg("EVN", {1: "A04"}),
        pid("", name="TESTPATIENT^HAL", sex="Male", pid2="31004", pid4="CH31004", extra={10: "Other", 16: "Single"}),
        in1(1, "", "62308", "DEMO CIGNA", "G400", "U300000004"),
    ])
    cp = [
        msh("ECW", "ORTHO-EAST", "ADT^A08", "ECW0005", "2.3"),
        seg("EVN", {1: "A08"}),
        pid("", name="TESTPATIENT^IDA", sex="Female", pid2="31005", pid4="CH31005", addr="5 DEMO RD – REAR^^AUSTIN^TX^78704"),
    ]
    write(p, "adt-a08-cp1252-undeclared.hl7", cp, encoding="cp1252")
    b = []
    for i in (1, 2):
        b += [msh("ECW", "ORTHO-EAST", "ORM^O01", f"ECW010{i}", "2.3"),
              pid("", name=f"TESTPATIENT^CONCAT{i}", sex="Female", pid2=f"3110{i}", pid4=f"CH3110{i}"),
              orc("NW", f"EC710{i}", ordp), obr(1, f"EC710{i}", "72148^MRI LUMBAR SPINE^CPT", "20261215", ordp)]
    write(p, "concatenated-lf.hl7", b, term="\n")


def nextgen():
    p = "nextgen-enterprise"
    ordp = f"{NPI[5]}^GUTDOC^GIL^^^^^^NPI"
    write(p, "orm-o01-v24-crlf.hl7", [
        msh("NEXTGEN", "GI-WEST", "ORM^O01", "NG0001", "2.4"),
        pid("N40001^^^GI-WEST^MR", name="TESTPATIENT^QUINN", pid2="PN40001", dob="19721212"),
        in1(1, "NG-PPO", "NG1001", "DEMO HEALTH PLAN", "G500", "W400000001"),
        orc("NW", "NG8001", ordp, "R"),
        obr(1, "NG8001", "45378^COLONOSCOPY DIAGNOSTIC^C4", "20261207", ordp),
        dg1(1, "K921", "Demo melena"),
        "ZNG|1|MIRTH-CHANNEL-7",
    ], term="\r\n")
    write(p, "orm-o01-two-obr.hl7", [
        msh("NEXTGEN", "GI-WEST", "ORM^O01", "NG0002", "2.4"),
        pid("N40002^^^GI-WEST^MR~N40002-OLD^^^GI-WEST^MR~900000002^^^SSA^SS", name="TESTPATIENT^RAY", sex="M", pid2="PN40002"),
        in1(1, "NG-HMO", "NG1002", "DEMO UNITED", "G600", "U400000002"),
        in1(2, "NG-MCD", "NG1003", "DEMO MEDICAID", "", "MCD400000002", "SEL"),
        orc("NW", "NG8002", ordp),
        obr(1, "NG8002", "43239^EGD BIOPSY^C4", "20261214", ordp),
        obr(2, "NG8002", "45380^COLONOSCOPY BIOPSY^C4", "20261214", ordp),
        dg1(1, "K219", "Demo GERD"),
        dg1(2, "D509", "Demo anemia"),
    ], term="\r\n")
    write(p, "ref-i12-aut.hl7", [
        msh("NEXTGEN", "GI-WEST", "REF^I12", "NG0003", "2.4"),
        seg("RF1", {1: "P", 2: "A", 6: "NGREF01"}),
        seg("AUT", {1: "NG-PPO", 2: "60054", 3: "DEMO HEALTH PLAN", 4: "20261201", 5: "20261231", 6: "NGAUTH01", 8: "1"}),
        seg("PRD", {1: "RP", 2: "GUTDOC^GIL", 7: NPI[5]}),
        pid("N40003^^^GI-WEST^MR", name="TESTPATIENT^SKY", pid2="PN40003"),
        dg1(1, "K5090", "Demo Crohn"),
        seg("PR1", {1: "1", 3: "91110^CAPSULE ENDOSCOPY^C4", 5: "20261218"}),
    ], term="\r\n")
    write(p, "siu-s12-v27.hl7", [
        msh("NEXTGEN", "GI-WEST", "SIU^S12^SIU_S12", "NG0004", "2.7", enc="^~\\&#"),
        seg("SCH", {1: "NGA01", 2: "NGA01", 7: "^Colonoscopy", 11: "^^^20261207073000^^S", 26: "NG8001"}),
        pid("N40001^^^GI-WEST^MR", name="TESTPATIENT^QUINN", dob="19721212"),
        seg("AIS", {1: "1", 3: "45378^COLONOSCOPY DIAGNOSTIC^C4", 4: "20261207073000"}),
        seg("AIP", {1: "1", 3: f"{NPI[5]}^GUTDOC^GIL"}),
    ], term="\r\n")
    write(p, "adt-a08-insurance.hl7", [
        msh("NEXTGEN", "GI-WEST", "ADT^A08", "NG0005", "2.4"),
        seg("EVN", {1: "A08"}),
        pid("N40002^^^GI-WEST^MR", name="TESTPATIENT^RAY", sex="M", pid2="PN40002"),
        in1(1, "NG-PPO", "NG1001", "DEMO HEALTH PLAN", "G700", "W400000099", "CHD"),
    ], term="\r\n")
    b = []
    for i in (1, 2, 3):
        b += [msh("NEXTGEN", "GI-WEST", "ORM^O01", f"NG010{i}", "2.4"),
              pid(f"N4010{i}^^^GI-WEST^MR", name=f"TESTPATIENT^FILE{i}"),
              orc("NW", f"NG810{i}", ordp), obr(1, f"NG810{i}", "45378^COLONOSCOPY DIAGNOSTIC^C4", "20261220", ordp)]
    write(p, "batch-fhs-three.hl7", ["FHS|^~\\&|NEXTGEN|GI-WEST", "BHS|^~\\&|NEXTGEN|GI-WEST"] + b + ["BTS|3", "FTS|1"], term="\r\n")


def meditech():
    p = "meditech"
    ordp = f"{NPI[2]}^RADDOC^RITA"
    write(p, "omg-o19-latin1.hl7", [
        msh("MEDITECH", "IMAGING-SOUTH", "OMG^O19^OMG_O19", "MT0001", "2.5.1", charset="8859/1"),
        pid("M50001^^^IMAGING-SOUTH^MR", name="TESTPATIENT^RENÉE", sex="F.ADULT"),
        in1(1, "PPO", "BCBS.TX", "DEMO BLUE", "G800", "XYZ500000001"),
        orc("NW", "MT9001", ordp),
        seg("TQ1", {1: "1", 9: "R"}),
        obr(1, "MT9001", "NM.SPECT^NM MYOCARDIAL PERF SPECT^MTPROC", "20261202", ordp),
        dg1(1, "I209", "Demo angina"),
        nte(1, "Allergie: Jod \\T\\ Latex, Café-Demo"),
        seg("ZMT", {1: "MEDITECH-ONLY", 2: "ignored"}),
    ], encoding="latin-1")
    write(p, "orm-o01-v23.hl7", [
        msh("MEDITECH", "IMAGING-SOUTH", "ORM^O01", "MT0002", "2.3"),
        pid("M50002^^^IMAGING-SOUTH^MR", name="TESTPATIENT^SETH", sex="M.ADULT"),
        in1(1, "MCR", "MCR.A", "DEMO MEDICARE A", "", "1EG4TE5MK73"),
        orc("NW", "MT9002", ordp, "S"),
        obr(1, "MT9002", "CT.ABD.PEL^CT ABD/PELVIS^MTPROC", "20261123", ordp),
        dg1(1, "R109", "Demo abdominal pain"),
    ])
    write(p, "omg-o19-v27-truncation.hl7", [
        msh("MEDITECH", "IMAGING-SOUTH", "OMG^O19^OMG_O19", "MT0003", "2.7", enc="^~\\&#", charset="UNICODE UTF-8"),
        pid("M50003^^^IMAGING-SOUTH^MR", name="TESTPATIENT^ZOË", sex="F"),
        in1(1, "PPO", "AETNA.PPO", "DEMO AETNA", "G900", "W500000003"),
        orc("NW", "MT9003", ordp),
        obr(1, "MT9003", "MR.BRAIN.WWO^MRI BRAIN^MTPROC", "20261216", ordp),
        dg1(1, "G4489", "Demo headache"),
    ])
    write(p, "siu-s12-mnemonic.hl7", [
        msh("MEDITECH", "IMAGING-SOUTH", "SIU^S12^SIU_S12", "MT0004", "2.5.1"),
        seg("SCH", {1: "MTA01", 2: "MTA01", 7: "^Echo", 11: "^^^20261211100000", 26: "MT9004"}),
        pid("M50004^^^IMAGING-SOUTH^MR", name="TESTPATIENT^UMA", sex="F"),
        seg("AIS", {1: "1", 3: "US.ECHO^ECHO COMPLETE^MTPROC", 4: "20261211100000"}),
        seg("AIP", {1: "1", 3: f"{NPI[2]}^RADDOC^RITA"}),
    ])
    write(p, "adt-a08-zmt.hl7", [
        msh("MEDITECH", "IMAGING-SOUTH", "ADT^A08^ADT_A01", "MT0005", "2.5.1"),
        seg("EVN", {1: "A08"}),
        pid("M50002^^^IMAGING-SOUTH^MR", name="TESTPATIENT^SETH", sex="M.ADULT", addr="9 DEMO LN^^AUSTIN^TX^78705"),
        seg("ZMT", {1: "custom"}),
        in1(1, "MCR", "MCR.A", "DEMO MEDICARE A", "", "1EG4TE5MK73"),
        seg("ZMT", {1: "custom-2"}),
    ])
    b = []
    for i in (1, 2):
        b += [msh("MEDITECH", "IMAGING-SOUTH", "OMG^O19^OMG_O19", f"MT010{i}", "2.5.1"),
              pid(f"M5010{i}^^^IMAGING-SOUTH^MR", name=f"TESTPATIENT^BATCH{i}", sex="F"),
              orc("NW", f"MT910{i}", ordp), obr(1, f"MT910{i}", "NM.SPECT^NM SPECT^MTPROC", "20261222", ordp)]
    write(p, "batch-crlf.hl7", ["BHS|^~\\&|MEDITECH|IMAGING-SOUTH"] + b + ["BTS|2"], term="\r\n")
    write(p, "ref-i12-bom.hl7", [
        msh("MEDITECH", "IMAGING-SOUTH", "REF^I12^REF_I12", "MT0006", "2.5.1"),
        seg("RF1", {1: "P", 2: "R", 6: "MTREF01"}),
        seg("PRD", {1: "RP", 2: "RADDOC^RITA", 7: NPI[2]}),
        pid("M50006^^^IMAGING-SOUTH^MR", name="TESTPATIENT^VIC", sex="M"),
        dg1(1, "M5416", "Demo radiculopathy"),
        seg("PR1", {1: "1", 3: "72148^MRI LUMBAR SPINE^C4", 5: "20261228"}),
    ], bom=True)


if __name__ == "__main__":
    base()
    epic()
    ecw()
    nextgen()
    meditech()
