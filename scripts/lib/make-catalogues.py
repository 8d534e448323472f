#!/usr/bin/env python3
"""Writes the NIST CSF, PCI DSS v4.0, HIPAA and GDPR catalogues in
content/compliance/ from the public check mappings in
../shared/data/compliance-mappings (requirement ids and the checks Prowler runs
for each; facts). Titles are ours: short descriptions written for Vigil (NIST
CSF: the category's name and the subcategory's number; PCI DSS: the heading of
the requirement group, as the mapping's section gives it).

    python3 scripts/lib/make-catalogues.py [MAPPINGS_DIR]

Run again when the mappings change; the files it writes are checked in."""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAPPINGS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data", "compliance-mappings")
OUT = os.path.join(ROOT, "content", "compliance")

# NIST CSF category codes and what each covers (CSF 2.0, and the 1.1 categories
# the mapping still uses).
NIST_CATEGORIES = {
    "GV.OC": "Organizational context", "GV.RM": "Risk management strategy",
    "GV.SC": "Cybersecurity supply chain risk management", "GV.RR": "Roles, responsibilities and authorities",
    "GV.PO": "Policy", "GV.OV": "Oversight",
    "ID.AM": "Asset management", "ID.BE": "Business environment", "ID.RA": "Risk assessment",
    "ID.SC": "Supply chain risk management", "ID.IM": "Improvement",
    "PR.AC": "Identity management and access control", "PR.AA": "Identity management, authentication and access control",
    "PR.DS": "Data security", "PR.IP": "Information protection processes and procedures",
    "PR.MA": "Maintenance", "PR.PT": "Protective technology", "PR.PS": "Platform security",
    "PR.IR": "Technology infrastructure resilience",
    "DE.AE": "Adverse event analysis", "DE.CM": "Continuous monitoring", "DE.DP": "Detection processes",
    "RS.AN": "Incident analysis", "RS.MI": "Incident mitigation", "RS.RP": "Response planning",
    "RS.MA": "Incident management", "RC.RP": "Recovery plan execution",
}

HIPAA_TITLES = {
    "164_308_a_1_ii_a": ("164.308(a)(1)(ii)(A)", "Risk analysis: know where ePHI is and the risks to it"),
    "164_308_a_1_ii_b": ("164.308(a)(1)(ii)(B)", "Risk management: reduce those risks to a reasonable level"),
    "164_308_a_1_ii_d": ("164.308(a)(1)(ii)(D)", "Review of information system activity (logs, access reports)"),
    "164_308_a_3_i": ("164.308(a)(3)(i)", "Workforce security: only those who need ePHI can reach it"),
    "164_308_a_3_ii_a": ("164.308(a)(3)(ii)(A)", "Authorization and supervision of workforce access"),
    "164_308_a_3_ii_b": ("164.308(a)(3)(ii)(B)", "Workforce clearance: access fits the role"),
    "164_308_a_3_ii_c": ("164.308(a)(3)(ii)(C)", "Termination: access ends when employment does"),
    "164_308_a_4_i": ("164.308(a)(4)(i)", "Information access management"),
    "164_308_a_4_ii_a": ("164.308(a)(4)(ii)(A)", "Clearinghouse functions are isolated"),
    "164_308_a_4_ii_b": ("164.308(a)(4)(ii)(B)", "Access is authorized before it is granted"),
    "164_308_a_4_ii_c": ("164.308(a)(4)(ii)(C)", "Access is established, reviewed and modified"),
    "164_308_a_5_ii_b": ("164.308(a)(5)(ii)(B)", "Protection from malicious software"),
    "164_308_a_5_ii_c": ("164.308(a)(5)(ii)(C)", "Log-in monitoring"),
    "164_308_a_5_ii_d": ("164.308(a)(5)(ii)(D)", "Password management"),
    "164_308_a_6_i": ("164.308(a)(6)(i)", "Security incident procedures"),
    "164_308_a_6_ii": ("164.308(a)(6)(ii)", "Incidents are identified, responded to and documented"),
    "164_308_a_7_i": ("164.308(a)(7)(i)", "Contingency plan"),
    "164_308_a_7_ii_a": ("164.308(a)(7)(ii)(A)", "Data backup plan"),
    "164_308_a_7_ii_b": ("164.308(a)(7)(ii)(B)", "Disaster recovery plan"),
    "164_308_a_7_ii_c": ("164.308(a)(7)(ii)(C)", "Emergency mode operation plan"),
    "164_308_a_8": ("164.308(a)(8)", "Periodic technical and non-technical evaluation"),
    "164_312_a_1": ("164.312(a)(1)", "Access control: only authorized people and software reach ePHI"),
    "164_312_a_2_i": ("164.312(a)(2)(i)", "Unique user identification"),
    "164_312_a_2_ii": ("164.312(a)(2)(ii)", "Emergency access procedure"),
    "164_312_a_2_iv": ("164.312(a)(2)(iv)", "Encryption and decryption of ePHI"),
    "164_312_b": ("164.312(b)", "Audit controls: activity in systems holding ePHI is recorded"),
    "164_312_c_1": ("164.312(c)(1)", "Integrity: ePHI is not altered or destroyed improperly"),
    "164_312_c_2": ("164.312(c)(2)", "Mechanisms that show ePHI was not altered"),
    "164_312_d": ("164.312(d)", "Person or entity authentication"),
    "164_312_e_1": ("164.312(e)(1)", "Transmission security"),
    "164_312_e_2_i": ("164.312(e)(2)(i)", "Integrity controls in transit"),
    "164_312_e_2_ii": ("164.312(e)(2)(ii)", "Encryption in transit"),
}


def q(s):
    return json.dumps(s, ensure_ascii=False)


def write(name, head, controls):
    lines = [f"# {head['comment']}", "# Written by scripts/lib/make-catalogues.py; do not edit by hand.",
             f"id: {head['id']}", f"name: {q(head['name'])}", f"version: {q(head['version'])}", "controls:"]
    for c in controls:
        lines.append(f"  - id: {q(c['id'])}")
        lines.append(f"    title: {q(c['title'])}")
        if c.get("section"):
            lines.append(f"    section: {q(c['section'])}")
        lines.append(f"    assessment: {'automated' if c['checks'] else 'manual'}")
        lines.append(f"    checks: [{', '.join(c['checks'])}]")
    with open(os.path.join(OUT, name), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{name}: {len(controls)} controls")


def load(name):
    with open(os.path.join(MAPPINGS, name)) as f:
        return json.load(f)


def nist():
    d = load("nist_csf_2.0_aws.json")
    controls = []
    for r in d["requirements"]:
        fn = r["section"].split("(")[-1].rstrip(")").strip()
        parts = r["id"].split("_")
        if len(parts) == 3:  # id_sc_4: the function is named in the id
            fn, cat, num = parts[0].upper(), parts[1].upper(), parts[2]
        else:
            cat, num = parts[0].upper(), parts[1]
        code = f"{fn}.{cat}"
        cid = f"{code}-{int(num):02d}"
        controls.append({"id": cid, "title": f"{NIST_CATEGORIES.get(code, code)}, outcome {int(num)}",
                         "section": r["section"], "checks": r["checks"]})
    write("nist-csf-2.0.yaml", {"comment": "NIST Cybersecurity Framework 2.0: subcategory ids and the checks that support each",
                                "id": "NIST-CSF", "name": "NIST Cybersecurity Framework", "version": "2.0"}, controls)


def pci():
    d = load("pci_4.0_aws.json")
    groups = {}
    for r in d["requirements"]:
        req, _, heading = r["section"].partition(":")
        g = groups.setdefault(req.strip(), {"heading": heading.strip(), "checks": []})
        for c in r["checks"]:
            if c not in g["checks"]:
                g["checks"].append(c)
    controls = []
    for req, g in groups.items():
        top = req.split(".")[0]
        controls.append({"id": req, "title": g["heading"], "section": f"Requirement {top}",
                         "checks": g["checks"]})
    write("pci-dss-4.0.yaml", {"comment": "PCI DSS v4.0: requirements, their group's heading, and the checks that support each",
                               "id": "PCI-DSS", "name": "PCI DSS", "version": "4.0"}, controls)


def hipaa():
    d = load("hipaa_aws.json")
    controls = []
    for r in d["requirements"]:
        cid, title = HIPAA_TITLES[r["id"]]
        controls.append({"id": cid, "title": title, "section": r["section"], "checks": r["checks"]})
    write("hipaa.yaml", {"comment": "HIPAA Security Rule (45 CFR 164.308 and 164.312): safeguards and the checks that support each",
                         "id": "HIPAA", "name": "HIPAA Security Rule", "version": "45 CFR Part 164 Subpart C"}, controls)


def gdpr():
    d = load("gdpr_aws.json")
    controls = []
    for r in d["requirements"]:
        number, _, rest = r["section"].partition(" ")[2].partition(" ")
        controls.append({"id": f"Art. {number}", "title": rest, "section": "Chapter IV", "checks": r["checks"]})
    write("gdpr.yaml", {"comment": "GDPR: the articles with technical measures, and the checks that support each",
                        "id": "GDPR", "name": "General Data Protection Regulation", "version": "2016/679"}, controls)


if __name__ == "__main__":
    nist()
    pci()
    hipaa()
    gdpr()
