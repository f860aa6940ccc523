#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/corpus/<target>/seed-*, from the repository's own
fixtures and small generated documents (the shared conformance files are not copied: the one CDS
Hooks seed taken from them is rebuilt here around a few fields of the spec's draftOrders
example). Run from anywhere; it overwrites the seeds. Kept small on purpose: a seed is a
starting point for mutation, not a test case."""
import json, pathlib, struct, zlib

root = pathlib.Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"


def write(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":")).encode()
    elif isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


def fixture(name):
    return json.loads((root / "fixtures" / name).read_text())


# CDS Hooks: three order-sign / order-select cases, plus a minimal request in the spec's shape
# (one MedicationRequest, STU3-style dosage as some clients send it), plus one with prefetch
# entries of each resource type read.
for case in ["48-cds-order-sign-bedrest-72h", "49-cds-order-sign-opioid",
             "50-cds-order-select-focus-on-bedrest"]:
    write("cds_hooks", case, fixture(f"cases/{case}.json"))
write("cds_hooks", "spec-shape-minimal", {
    "hook": "order-sign", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "context": {"userId": "Practitioner/123", "patientId": "1288992", "encounterId": "456",
                "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": {
                    "resourceType": "MedicationRequest", "id": "123", "status": "draft",
                    "intent": "order",
                    "medicationCodeableConcept": {"coding": [{
                        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                        "code": "1049621", "display": "oxycodone 5 MG Oral Tablet"}]},
                    "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 6,
                                                                 "periodUnit": "h"}},
                                           "doseQuantity": {"value": 5, "unit": "mg"}}],
                    "subject": {"reference": "Patient/1288992"}}}]}}})

# Native: the repository's native fixtures, valid and invalid.
for name in ["valid-minimal", "valid-vcf-full", "valid-dose-range-prn",
             "valid-unknown-unit-and-code", "invalid-conflicting-dose", "invalid-dose-unit-type"]:
    write("native", name, fixture(f"native/{name}.json"))

# Units and frequencies: unit strings, timing codes, "<value> <unit>" amounts, Timing.repeat.
for i, text in enumerate(["mg", "{tablet}", "[iU]", "mcg/h", "q6h", "every 8 hours", "BID",
                          "q2wk", "every 6 months", "5 mg", "1.5 g", "800 [iU]"]):
    write("units", f"text-{i:02}", text)
write("units", "repeat-prn", {"frequency": 1, "frequencyMax": 2, "period": 4, "periodMax": 6,
                              "periodUnit": "h"})
write("units", "repeat-when", {"whenCount": 2, "timeOfDayCount": 1})

# Pathways: the shipped pathway cut down to a few rules of one or two kinds each (with every
# value set and citation, so that they compile), and an empty rule list.
vcf = json.loads((root / "pathways" / "vcf.json").read_text())
groups = [["VCF-BEDREST"], ["VCF-OPIOID-ELDERLY", "VCF-OPIOID-FIRSTLINE"],
          ["DOSE-MAX-DAILY", "DOSE-MME-90"], ["VCF-AUGMENT-TIMING", "VCF-AUGMENT-NODATE"],
          ["DOSE-UNREADABLE", "VCF-CALCIUM-MISSING"]]
for group in groups:
    cut = dict(vcf, rules=[r for r in vcf["rules"] if r["id"] in group])
    assert len(cut["rules"]) == len(group), group
    write("pathway", group[0].lower(), cut)
write("pathway", "no-rules", dict(vcf, rules=[]))


# Spool: segments framed as the writer frames them (len u32 LE | crc32 u32 LE | JSON entry).
def frame(entry):
    payload = json.dumps(entry, separators=(",", ":")).encode()
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


event = {"table": "Event", "event_id": "0190f000-0000-7000-8000-000000000001",
         "occurred_at": "2026-06-01T12:00:00.000000Z",
         "event": {"kind": "replay", "actor": "fuzz", "decision_id": None,
                   "payload": {"n": 1}}}
rejection = {"table": "Rejection", "rejection_id": "0190f000-0000-7000-8000-000000000002",
             "record": {"at": "2026-06-01T12:00:00.000000Z", "client_id": None,
                        "route": "/cds-services/{id}", "reason": "bad json", "status": 400,
                        "body_hash": None, "body_len": 12}}
write("spool", "one-event", frame(event))
write("spool", "event-rejection", frame(event) + frame(rejection))
write("spool", "torn-tail", frame(event) + frame(rejection)[:-3])
